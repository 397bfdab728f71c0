"""Tools an agent may call: the registry, the ``@tool`` decorator and the built-ins."""

from agentforge.tools.base import Tool, ToolContext, ToolRegistry, default_registry, tool

__all__ = ["Tool", "ToolContext", "ToolRegistry", "default_registry", "tool"]
