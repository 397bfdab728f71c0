"""Node kinds, one module each, and the registry the spec's node union is built from."""

from agentforge.workflow.nodes.agent import AgentNode
from agentforge.workflow.nodes.base import (
    END,
    START,
    Branch,
    CheckContext,
    Component,
    Demo,
    NodeBase,
    NodeRecord,
    NodeRuntime,
    Params,
    Sampling,
    node_class,
    node_kinds,
    node_union,
    register,
    unregister,
)
from agentforge.workflow.nodes.code import CodeNode
from agentforge.workflow.nodes.ensemble import EnsembleMember, EnsembleNode
from agentforge.workflow.nodes.router import Route, RouterChoice, RouterNode
from agentforge.workflow.nodes.subworkflow import SubworkflowNode
from agentforge.workflow.nodes.tool import ToolNode

__all__ = [
    "END", "START", "AgentNode", "Branch", "CheckContext", "CodeNode", "Component", "Demo", "EnsembleMember",
    "EnsembleNode", "NodeBase", "NodeRecord", "NodeRuntime", "Params", "Route", "RouterChoice", "RouterNode",
    "Sampling", "SubworkflowNode", "ToolNode", "node_class", "node_kinds", "node_union", "register", "unregister",
]
