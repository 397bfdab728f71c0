"""The one exception tree of agentforge.

Third-party errors (litellm, langgraph, yaml, llama.cpp) are mapped into this tree once, at the
boundary that calls them, with ``raise ... from exc`` so the original stays attached.

    AgentforgeError
    ├── ConfigError                 bad settings or aliases
    ├── SpecError                   an invalid workflow (file, line, node, field; all problems at once)
    ├── InputError                  missing or mistyped run inputs
    ├── LLMError                    a model call failed
    │   ├── ModelNotFound           unknown model or alias, or its backend is not installed
    │   ├── RateLimit               transient: retried with backoff
    │   ├── Transport               transient: connection refused, timeout, 5xx
    │   ├── ContextWindow           the prompt does not fit
    │   ├── Auth                    bad or missing credentials
    │   └── OutputError             the reply could not be parsed into the declared types
    ├── ToolError                   a tool failed (inside a ReAct loop it becomes an observation)
    ├── SandboxError                generated code could not be run
    │   └── SandboxUnavailable      no confinement here (bubblewrap missing) and no explicit opt-out
    ├── WeightsError                the local model file is missing or its sha256 does not match
    ├── EnvError                    an environment refused a call (unknown task, step after done, ...)
    │   └── EnvServerError          a remote environment server is down, slow, or answered garbage
    ├── NodeError                   a node failed while the workflow ran (wraps the cause)
    ├── RunNotFound                 --resume named a run that does not exist
    ├── RunFolderError              an evolve run folder is corrupt or belongs to something else
    ├── MemoryStoreError            the experience store (or its Chroma server) failed
    ├── BudgetExceeded              a step, token or cost budget ran out
    └── SafetyViolation             a change broke a safety invariant (never retried, never swallowed)
"""

from __future__ import annotations

from dataclasses import dataclass


class AgentforgeError(Exception):
    """Root of every error agentforge raises on purpose."""

    code: str = "agentforge_error"

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def __str__(self) -> str:
        return self.message


class ConfigError(AgentforgeError):
    code = "config_error"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow, located as precisely as the YAML allows."""

    message: str
    file: str | None = None
    line: int | None = None
    node: str | None = None
    field: str | None = None
    hint: str | None = None
    code: str = "invalid"

    def render(self) -> str:
        where = self.file or "<workflow>"
        if self.line is not None:
            where += f":{self.line}"
        subject = ""
        if self.node:
            subject = f" node '{self.node}'"
        if self.field:
            subject += f" field '{self.field}'"
        text = f"{where}:{subject} {self.message}" if subject else f"{where}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class SpecError(AgentforgeError):
    """A workflow that cannot run. Carries every problem found, not just the first."""

    code = "spec_error"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = [p.render() for p in self.problems]
        head = f"{len(lines)} problems found" if len(lines) != 1 else "1 problem found"
        super().__init__(head + ":\n  " + "\n  ".join(lines))


class InputError(AgentforgeError):
    code = "input_error"


class LLMError(AgentforgeError):
    code = "llm_error"
    retryable: bool = False


class ModelNotFound(LLMError):
    code = "model_not_found"


class RateLimit(LLMError):
    code = "rate_limit"
    retryable = True


class Transport(LLMError):
    code = "transport"
    retryable = True


class ContextWindow(LLMError):
    code = "context_window"


class Auth(LLMError):
    code = "auth"


class OutputError(LLMError):
    code = "output_error"


class ToolError(AgentforgeError):
    code = "tool_error"


class SandboxError(AgentforgeError):
    code = "sandbox_error"


class SandboxUnavailable(SandboxError):
    code = "sandbox_unavailable"


class WeightsError(AgentforgeError):
    code = "weights_error"


class EnvError(AgentforgeError):
    code = "env_error"


class EnvServerError(EnvError):
    """Transport-level trouble with a remote environment: refused, timed out, 5xx, malformed JSON."""

    code = "env_server_error"
    retryable = True


class NodeError(AgentforgeError):
    code = "node_error"


class RunNotFound(AgentforgeError):
    code = "run_not_found"


class BudgetExceeded(AgentforgeError):
    code = "budget_exceeded"


class RunFolderError(AgentforgeError):
    """A run folder that cannot be resumed: missing files, a corrupt store, or another program's folder."""

    code = "run_folder_error"


class MemoryStoreError(AgentforgeError):
    code = "memory_store_error"


class SafetyViolation(AgentforgeError):
    code = "safety_violation"
