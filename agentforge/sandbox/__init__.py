"""Confined execution of generated Python: the low-level primitive under code nodes, tools and metrics.

``run_python`` / ``arun_python`` run code under bubblewrap (see ``confinement``): an allow-listed view,
an unprivileged user, no network, resource limits. Without bubblewrap they refuse
(``SandboxUnavailable``) unless ``AGENTFORGE_SANDBOX=unconfined`` opts out.
"""

from agentforge.sandbox.python import SandboxResult, arun_python, extract_code, network_isolation, run_python

__all__ = ["SandboxResult", "arun_python", "extract_code", "network_isolation", "run_python"]
