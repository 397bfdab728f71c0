"""Maze: generated mazes are perfect, observations are partial, limits are per task."""

from __future__ import annotations

import random

import pytest

from agentforge.envs.games.maze import MOVES, MazeEnv, carve, is_open, parse_move, shortest_path


@pytest.mark.parametrize("size", [3, 5, 7, 9, 12])
def test_carved_mazes_are_perfect(size: int) -> None:
    grid = carve(size, random.Random(size))
    cells = [(r, c) for r in range(size) for c in range(size)]
    openings = sum(is_open(grid, cell, m) for cell in cells for m in ("down", "right"))
    assert openings == size * size - 1  # a spanning tree: connected with no cycles
    assert all(len(shortest_path(grid, (0, 0), cell)) >= 0 for cell in cells)
    assert grid[0] == "#" * (2 * size + 1) and grid[-1] == grid[0]


def test_tasks_cycle_sizes_and_carry_their_step_limit() -> None:
    env = MazeEnv(num_tasks=30, seed=4, sizes=(5, 9))
    sizes = [t.meta["size"] for t in env.tasks()]
    assert sizes[:4] == [5, 9, 5, 9]
    for task in env.tasks():
        shortest = len(shortest_path(task.meta["grid"], tuple(task.meta["start"]), tuple(task.meta["goal"])))
        assert shortest == task.meta["shortest"] == task.answer >= 4
        assert task.meta["max_steps"] == max(30, 4 * shortest) <= env.max_steps
    assert env.max_steps == max(t.meta["max_steps"] for t in env.tasks())


def test_observation_shows_position_goal_and_neighbours_only() -> None:
    env = MazeEnv(num_tasks=5)
    task = env.tasks()[0]
    session = env.session()
    obs = session.reset(task.id)
    r, c = task.meta["start"]
    assert f"You are at (row {r}, col {c})" in obs.text
    assert "The goal is at (row {}, col {})".format(*task.meta["goal"]) in obs.text
    assert obs.available_actions == ("up", "down", "left", "right")
    for move in MOVES:
        state = "open" if is_open(task.meta["grid"], (r, c), move) else "wall"
        assert f"{move}: {state}" in obs.text
    assert "#" not in obs.text  # the map itself is hidden


def test_bumping_into_a_wall_costs_a_step_but_does_not_move() -> None:
    env = MazeEnv(num_tasks=5)
    task = env.tasks()[0]
    start = tuple(task.meta["start"])
    wall = next(m for m in MOVES if not is_open(task.meta["grid"], start, m))
    session = env.session()
    session.reset(task.id)
    result = session.step(wall)
    assert result.info == {"bumped": True} and not result.done and session.steps == 1
    assert result.observation.fields["position"] == list(start)


def test_per_task_step_limit_is_enforced_by_the_session() -> None:
    env = MazeEnv(num_tasks=5)
    task = env.tasks()[0]
    session = env.session()
    session.reset(task.id)
    for _ in range(task.meta["max_steps"] - 1):
        assert not session.step("jump").done
    last = session.step("jump")
    assert last.done and last.reward == 0.0 and last.info["truncated"] is True
    assert last.info["distance_left"] == task.meta["shortest"]
    assert "Out of moves" in last.observation.text


@pytest.mark.parametrize(("action", "move"), [
    ("up", "up"), ("UP", "up"), ("move left", "left"), ("go down.", "down"), ("Action: right", "right"),
    ("north", "up"), ("east", "right"), ("up down", None), ("jump", None), ("", None),
])
def test_parse_move(action: str, move: str | None) -> None:
    assert parse_move(action) == move


def test_bad_sizes_are_refused() -> None:
    from agentforge.errors import EnvError

    with pytest.raises(EnvError, match="sizes"):
        MazeEnv(num_tasks=5, sizes=(2,))
