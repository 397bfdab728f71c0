"""Names of the built-in environments and where their classes live (imported on first use)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from agentforge.errors import EnvError

BUILTIN_ENVS: dict[str, str] = {
    "dataset": "agentforge.envs.datasets.dataset:DatasetEnv",
    "bigbench": "agentforge.envs.datasets.bigbench:BigBenchEnv",
    "wordle": "agentforge.envs.games.wordle:WordleEnv",
    "maze": "agentforge.envs.games.maze:MazeEnv",
    "textcraft": "agentforge.envs.games.textcraft:TextCraftEnv",
    "sql": "agentforge.envs.games.sql:SqlEnv",
    "todo": "agentforge.envs.games.todo:TodoEnv",
}


def builtin_class(name: str) -> Any:
    ref = BUILTIN_ENVS.get(name)
    if ref is None:
        from difflib import get_close_matches

        close = get_close_matches(name, list(BUILTIN_ENVS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; built-in: {', '.join(BUILTIN_ENVS)}"
        raise EnvError(f"unknown built-in environment '{name}'{hint}", env=name)
    module, attr = ref.split(":")
    return getattr(import_module(module), attr)
