"""agentforge: a self-evolving multi-agent workflow engine.

Importing this package is cheap: the public names below are loaded on first use, so litellm,
langgraph and llama.cpp are imported only when a workflow actually runs.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # not typing's: importing typing costs the command line's start-up ~10 ms

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Workflow": "agentforge.runtime.workflow",
    "RunResult": "agentforge.runtime.workflow",
    "WorkflowSpec": "agentforge.workflow.spec",
    "Change": "agentforge.workflow.edits",
    "Candidate": "agentforge.workflow.edits",
    "Edit": "agentforge.workflow.edits",
    "diff": "agentforge.workflow.edits",
    "RunStore": "agentforge.runtime.store",
    "Score": "agentforge.envs.base",
    "EvalSink": "agentforge.evaluation.evaluator",
    "TraceSink": "agentforge.evaluation.evaluator",
    "TaskError": "agentforge.evaluation.report",
    "load_spec": "agentforge.workflow.loader",
    "spec_from_text": "agentforge.workflow.loader",
    "find_problems": "agentforge.workflow.validate",
    "Trace": "agentforge.runtime.trace",
    "Gateway": "agentforge.llm.gateway",
    "LLMRequest": "agentforge.llm.base",
    "LLMResponse": "agentforge.llm.base",
    "Message": "agentforge.llm.base",
    "ScriptedModel": "agentforge.llm.scripted",
    "register_script": "agentforge.llm.scripted",
    "Settings": "agentforge.config",
    "get_settings": "agentforge.config",
    "use_settings": "agentforge.config",
    "tool": "agentforge.tools.base",
    "Tool": "agentforge.tools.base",
    "ToolRegistry": "agentforge.tools.base",
    "AgentforgeError": "agentforge.errors",
    "SpecError": "agentforge.errors",
    "InputError": "agentforge.errors",
    "LLMError": "agentforge.errors",
    "NodeError": "agentforge.errors",
    "EnvError": "agentforge.errors",
    "Environment": "agentforge.envs.base",
    "Session": "agentforge.envs.base",
    "Task": "agentforge.envs.base",
    "Observation": "agentforge.envs.base",
    "StepResult": "agentforge.envs.base",
    "load_env": "agentforge.envs.registry",
    "evaluate": "agentforge.evaluation.evaluator",
    "aevaluate": "agentforge.evaluation.evaluator",
    "EvalReport": "agentforge.evaluation.report",
    "TaskResult": "agentforge.evaluation.report",
    "evolve": "agentforge.evolve.loop",
    "aevolve": "agentforge.evolve.loop",
    "EvolveResult": "agentforge.evolve.loop",
    "EvolveConfig": "agentforge.evolve.config",
    "BudgetConfig": "agentforge.evolve.config",
    "Limits": "agentforge.evolve.config",
    "Verdict": "agentforge.safety.base",
    "Gate": "agentforge.safety.base",
    "Experience": "agentforge.memory.base",
    "MemoryStore": "agentforge.memory.base",
    "open_memory": "agentforge.memory.config",
}

__all__ = [
    "AgentforgeError",
    "BudgetConfig",
    "Candidate",
    "Change",
    "Edit",
    "EnvError",
    "Environment",
    "EvalReport",
    "EvalSink",
    "EvolveConfig",
    "EvolveResult",
    "Experience",
    "Gate",
    "Gateway",
    "InputError",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "Limits",
    "MemoryStore",
    "Message",
    "NodeError",
    "Observation",
    "RunResult",
    "RunStore",
    "Score",
    "ScriptedModel",
    "Session",
    "Settings",
    "SpecError",
    "StepResult",
    "Task",
    "TaskError",
    "TaskResult",
    "Tool",
    "ToolRegistry",
    "Trace",
    "TraceSink",
    "Verdict",
    "Workflow",
    "WorkflowSpec",
    "aevaluate",
    "aevolve",
    "diff",
    "evaluate",
    "evolve",
    "find_problems",
    "get_settings",
    "load_env",
    "load_spec",
    "open_memory",
    "register_script",
    "spec_from_text",
    "tool",
    "use_settings",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentforge' has no attribute '{name}'")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from typing import Any

    from agentforge.config import Settings, get_settings, use_settings
    from agentforge.envs.base import Environment, Observation, Score, Session, StepResult, Task
    from agentforge.envs.registry import load_env
    from agentforge.errors import AgentforgeError, EnvError, InputError, LLMError, NodeError, SpecError
    from agentforge.evaluation.evaluator import EvalSink, TraceSink, aevaluate, evaluate
    from agentforge.evaluation.report import EvalReport, TaskError, TaskResult
    from agentforge.evolve.config import BudgetConfig, EvolveConfig, Limits
    from agentforge.evolve.loop import EvolveResult, aevolve, evolve
    from agentforge.llm.base import LLMRequest, LLMResponse, Message
    from agentforge.llm.gateway import Gateway
    from agentforge.llm.scripted import ScriptedModel, register_script
    from agentforge.memory.base import Experience, MemoryStore
    from agentforge.memory.config import open_memory
    from agentforge.runtime.store import RunStore
    from agentforge.runtime.trace import Trace
    from agentforge.runtime.workflow import RunResult, Workflow
    from agentforge.safety.base import Gate, Verdict
    from agentforge.tools.base import Tool, ToolRegistry, tool
    from agentforge.workflow.edits import Candidate, Change, Edit, diff
    from agentforge.workflow.loader import load_spec, spec_from_text
    from agentforge.workflow.spec import WorkflowSpec
    from agentforge.workflow.validate import find_problems
