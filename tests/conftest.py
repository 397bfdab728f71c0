"""Shared fixtures: every test gets its own cache, runs folder and working directory."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agentforge.llm.scripted import ScriptedModel

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
# The assembled local model is shared across tests (it is 491 MB); caches and runs are not.
MODEL_DIR = os.environ.get("AGENTFORGE_MODEL_DIR", os.path.expanduser("~/.cache/agentforge/models"))

_names = itertools.count()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AGENTFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTFORGE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("AGENTFORGE_MODEL_DIR", MODEL_DIR)
    monkeypatch.delenv("AGENTFORGE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@contextmanager
def fresh_script(prefix: str = "test") -> Iterator[tuple[str, ScriptedModel]]:
    """A new scripted model registered under a unique name while the block runs: (model_string, model)."""
    from agentforge.llm.scripted import ScriptedModel, register_script, unregister_script

    name = f"{prefix}{next(_names)}"
    model = register_script(name, ScriptedModel())
    try:
        yield f"scripted/{name}", model
    finally:
        unregister_script(name)


@pytest.fixture
def scripted() -> Iterator[tuple[str, ScriptedModel]]:
    """A fresh scripted model registered under a unique name: yields (model_string, model)."""
    with fresh_script() as pair:
        yield pair
