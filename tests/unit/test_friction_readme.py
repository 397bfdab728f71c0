"""The README a new user reads first: its opening is the two commands, and its command table names
every command the CLI has (groups and their sub-commands included)."""

from __future__ import annotations

import typer

from agentforge.cli import app
from tests.conftest import REPO

README = REPO / "README.md"


def command_paths() -> list[str]:
    """'validate', 'env serve', 'runs show', ...: every command and group, as typed after `agentforge`."""
    root = typer.main.get_command(app)
    paths: list[str] = []

    def walk(group: object, prefix: str) -> None:  # typer vendors its own click: duck-type the groups
        for name, cmd in getattr(group, "commands", {}).items():
            paths.append(f"{prefix}{name}")
            walk(cmd, f"{prefix}{name} ")

    walk(root, "")
    return sorted(paths)


def test_readme_opens_with_exactly_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[:6] == [
        "# agentforge", "", "```sh",
        "make demo   # set up .venv with the local model, evolve a plain workflow on it, print seed vs best on "
        "held-out tasks",
        "make test   # install the dev tools, run ruff and every test (unit + real local model integration)",
        "```",
    ]


def test_every_command_is_in_the_readme_table() -> None:
    table = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `agentforge ")]
    paths = command_paths()
    assert {"runs", "runs show", "eval", "graph"} <= set(paths)
    missing = [p for p in paths if not any(row.startswith(f"| `agentforge {p}") for row in table)]
    assert not missing, f"commands missing from README's command table: {missing}"
