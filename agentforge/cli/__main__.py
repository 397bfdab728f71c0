"""``python -m agentforge.cli``: the same command line as ``agentforge``."""

from agentforge.cli import main

main()
