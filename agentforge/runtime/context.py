"""The per-run context that node executors read: gateway, tools, trace, workspace, overrides."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentforge.runtime.trace import Trace
from agentforge.workflow.spec import Defaults

if TYPE_CHECKING:
    from agentforge.llm.gateway import Gateway
    from agentforge.tools.base import ToolRegistry


@dataclass
class RunContext:
    gateway: Gateway
    tools: ToolRegistry
    trace: Trace
    workspace_dir: Path
    defaults: Defaults
    spec_dir: Path | None = None
    model_override: str | None = None
    run_id: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    workspace_made: bool = False

    @property
    def workspace(self) -> Path:
        """The run's working folder, created on first use (most runs never need one)."""
        if not self.workspace_made:
            self.workspace_dir.mkdir(parents=True, exist_ok=True)
            self.workspace_made = True
        return self.workspace_dir


current_run: ContextVar[RunContext] = ContextVar("agentforge_run")
