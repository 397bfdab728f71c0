"""Maze: walk to the goal of a generated perfect maze, seeing only the four cells around you.

Mazes are ``n`` by ``n`` cells (``n`` from ``sizes``, 5, 7 and 9 by default) carved by a seeded
depth-first search, so exactly one path joins any two cells. Rows count from 0 at the top, columns
from 0 at the left; ``up`` lowers the row. Each observation gives the position, the goal's position
and offset, and which of the four neighbouring cells are open. Bumping into a wall is a legal move
that costs a step. Reaching the goal scores 1. Every task has its own step limit,
``max(30, 4 * shortest path)``, kept in ``task.meta["max_steps"]`` and enforced by the session;
the class-level ``max_steps`` bounds every task's limit.

Example::

    obs:    Maze 5x5. ... You are at (row 0, col 0). The goal is at (row 2, col 3): 2 rows down, 3 columns right.
            up: wall, down: open, left: wall, right: wall.
    action: down
    obs:    You moved down. You are at (row 1, col 0). ...
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Mapping, Sequence

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task, assign_splits
from agentforge.errors import EnvError

Cell = tuple[int, int]
MOVES: dict[str, Cell] = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
_SYNONYMS = {"north": "up", "south": "down", "west": "left", "east": "right", "u": "up", "d": "down",
             "l": "left", "r": "right"}
_ACTION = re.compile(r"^(?:action\s*:\s*)?(?:(?:move|go|step)\s+)?[\"'`]?([a-z]+)[\"'`]?[.!]?$", re.IGNORECASE)
DEFAULT_SIZES = (5, 7, 9)
MIN_STEPS = 30

_INSTRUCTION = (
    "You are in a maze of square cells and must walk to the goal cell. You only see the four cells next "
    "to you (open or wall). Rows are numbered from 0 at the top, columns from 0 at the left; `up` lowers "
    "the row number, `right` raises the column number. Reply with one move per turn: up, down, left or "
    "right. Walking into a wall wastes a move. Remember where you have been: dead ends are common."
)


def carve(size: int, rng: random.Random) -> list[str]:
    """A perfect maze as ``2*size+1`` text rows: ``#`` wall, ``.`` open; cell (r, c) is at (2r+1, 2c+1)."""
    grid = [["#"] * (2 * size + 1) for _ in range(2 * size + 1)]
    start = (rng.randrange(size), rng.randrange(size))
    seen = {start}
    stack = [start]
    grid[2 * start[0] + 1][2 * start[1] + 1] = "."
    while stack:
        r, c = stack[-1]
        nexts = [(r + dr, c + dc) for dr, dc in MOVES.values()
                 if 0 <= r + dr < size and 0 <= c + dc < size and (r + dr, c + dc) not in seen]
        if not nexts:
            stack.pop()
            continue
        nr, nc = rng.choice(nexts)
        grid[r + nr + 1][c + nc + 1] = "."
        grid[2 * nr + 1][2 * nc + 1] = "."
        seen.add((nr, nc))
        stack.append((nr, nc))
    return ["".join(row) for row in grid]


def is_open(grid: Sequence[str], cell: Cell, move: str) -> bool:
    """Whether ``move`` from ``cell`` passes through an opening."""
    dr, dc = MOVES[move]
    return grid[2 * cell[0] + 1 + dr][2 * cell[1] + 1 + dc] == "."


def shortest_path(grid: Sequence[str], start: Cell, goal: Cell) -> list[str]:
    """The moves of the (unique) path from ``start`` to ``goal``, by breadth-first search."""
    came: dict[Cell, tuple[Cell, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        for move, (dr, dc) in MOVES.items():
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt not in came and is_open(grid, cell, move):
                came[nxt] = (cell, move)
                queue.append(nxt)
    if goal not in came:
        raise EnvError(f"maze: goal {goal} unreachable from {start}", env="maze")
    path: list[str] = []
    cell = goal
    while (link := came[cell]) is not None:
        cell, move = link
        path.append(move)
    return path[::-1]


def _distances(grid: Sequence[str], start: Cell) -> dict[Cell, int]:
    dist = {start: 0}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for move, (dr, dc) in MOVES.items():
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt not in dist and is_open(grid, cell, move):
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return dist


def parse_move(action: str) -> str | None:
    match = _ACTION.match(action.strip())
    if not match:
        return None
    word = match.group(1).lower()
    return word if word in MOVES else _SYNONYMS.get(word)


def _offset(here: Cell, goal: Cell) -> str:
    dr, dc = goal[0] - here[0], goal[1] - here[1]
    parts = []
    if dr:
        parts.append(f"{abs(dr)} row{'s' if abs(dr) != 1 else ''} {'down' if dr > 0 else 'up'}")
    if dc:
        parts.append(f"{abs(dc)} column{'s' if abs(dc) != 1 else ''} {'right' if dc > 0 else 'left'}")
    return ", ".join(parts) or "here"


class MazeSession(LocalSession):
    env: MazeEnv

    def _reset(self, task: Task) -> Observation:
        meta = task.meta
        self.grid: list[str] = list(meta["grid"])
        self.size = int(meta["size"])
        self.pos: Cell = (int(meta["start"][0]), int(meta["start"][1]))
        self.goal: Cell = (int(meta["goal"][0]), int(meta["goal"][1]))
        self.limit = int(meta["max_steps"])
        head = (f"Maze {self.size}x{self.size} (rows and columns 0-{self.size - 1}; row 0 is the top). "
                f"You have {self.limit} moves.")
        return self._observation(head)

    def _observation(self, head: str) -> Observation:
        r, c = self.pos
        around = ", ".join(f"{m}: {'open' if is_open(self.grid, self.pos, m) else 'wall'}" for m in MOVES)
        text = (f"{head}\nYou are at (row {r}, col {c}). The goal is at (row {self.goal[0]}, col {self.goal[1]}): "
                f"{_offset(self.pos, self.goal)}.\n{around}.")
        return Observation(text=text, available_actions=tuple(MOVES),
                           fields={"size": self.size, "position": [r, c], "goal_position": list(self.goal)})

    def _step(self, action: str) -> StepResult:
        move = parse_move(action)
        if move is None:
            shown = action.strip()[:40]
            result = self._result(f"Invalid action '{shown}'. Reply with exactly one move: up, down, left or right.",
                                  info={"invalid": True})
        elif not is_open(self.grid, self.pos, move):
            result = self._result(f"You bumped into a wall going {move}; you did not move.", info={"bumped": True})
        else:
            dr, dc = MOVES[move]
            self.pos = (self.pos[0] + dr, self.pos[1] + dc)
            if self.pos == self.goal:
                return StepResult(observation=self._observation(f"You moved {move} and reached the goal!"),
                                  reward=1.0, done=True, info={"solved": True, "moves": self.steps})
            result = self._result(f"You moved {move}.")
        return self._truncate(result)

    def _result(self, head: str, info: dict[str, object] | None = None) -> StepResult:
        left = self.limit - self.steps
        return StepResult(observation=self._observation(f"{head} {left} moves left."), reward=0.0, done=False,
                          info=dict(info or {}))

    def _truncate(self, result: StepResult) -> StepResult:
        if self.steps < self.limit:
            return result
        left = len(shortest_path(self.grid, self.pos, self.goal))
        text = result.observation.text + "\nOut of moves: the goal was not reached."
        return result.model_copy(update={
            "done": True, "observation": result.observation.model_copy(update={"text": text}),
            "info": {**result.info, "solved": False, "truncated": True, "distance_left": left}})


class MazeEnv(Environment):
    """Generated perfect mazes; ``sizes`` cycles over the tasks (task i has size ``sizes[i % len]``)."""

    name = "maze"
    instruction = _INSTRUCTION
    multi_turn = True
    max_steps = 4 * 3 * max(DEFAULT_SIZES)  # the default sizes' bound; instances use their own sizes'

    def __init__(self, num_tasks: int = 300, seed: int = 0, splits: Mapping[str, float | int] | None = None,
                 *, sizes: Sequence[int] = DEFAULT_SIZES) -> None:
        sizes = tuple(int(s) for s in sizes)
        if not sizes or any(not 3 <= s <= 25 for s in sizes):
            raise EnvError(f"maze: sizes must be between 3 and 25, got {list(sizes)}", env=self.name)
        if num_tasks < 1:
            raise EnvError(f"maze: num_tasks must be at least 1, got {num_tasks}", env=self.name)
        self.seed = seed
        self.sizes = sizes
        tasks = _make_tasks(num_tasks, seed, sizes, splits)
        self.max_steps = max(int(t.meta["max_steps"]) for t in tasks)
        super().__init__(tasks)

    def session(self) -> MazeSession:
        return MazeSession(self)


def _make_task(size: int, rng: random.Random) -> tuple[list[str], Cell, Cell, int]:
    grid = carve(size, rng)
    start = (rng.randrange(size), rng.randrange(size))
    dist = _distances(grid, start)
    lo, hi = max(4, size - 1), 3 * size
    goals = sorted(cell for cell, d in dist.items() if lo <= d <= hi)
    goal = rng.choice(goals) if goals else max(dist, key=lambda cell: (dist[cell], cell))
    return grid, start, goal, dist[goal]


def _make_tasks(num_tasks: int, seed: int, sizes: Sequence[int],
                splits: Mapping[str, float | int] | None) -> list[Task]:
    rng = random.Random(f"maze:{seed}")
    seen: set[tuple[tuple[str, ...], Cell, Cell]] = set()
    made: list[tuple[int, list[str], Cell, Cell, int]] = []
    attempts = 0
    while len(made) < num_tasks:
        attempts += 1
        if attempts > 20 * num_tasks + 100:
            raise EnvError(f"maze: could not make {num_tasks} distinct mazes of sizes {list(sizes)}", env="maze")
        size = sizes[len(made) % len(sizes)]
        grid, start, goal, length = _make_task(size, rng)
        key = (tuple(grid), start, goal)
        if key in seen:
            continue
        seen.add(key)
        made.append((size, grid, start, goal, length))
    ids = [f"maze-{i:04d}" for i in range(num_tasks)]
    split_of = assign_splits(ids, splits, seed)
    return [Task(id=task_id, split=split_of[task_id], inputs={"size": size},
                 answer=length,
                 meta={"size": size, "grid": grid, "start": list(start), "goal": list(goal), "shortest": length,
                       "max_steps": max(MIN_STEPS, 4 * length)})
            for task_id, (size, grid, start, goal, length) in zip(ids, made, strict=True)]
