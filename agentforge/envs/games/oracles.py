"""Scripted oracle policies for the built-in multi-turn environments.

An oracle reads the hidden ``task.answer``/``task.meta``, so it is a tool for tests and benchmarks
(an upper bound, a check that every task is solvable), never something an agent sees. Each oracle is
``(task, observation, history) -> action``, where ``history`` holds the ``(action, observation text)``
pairs of the episode so far, as the evaluator keeps them. :func:`play` runs one episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from agentforge.envs.base import Environment, Observation, StepResult, Task
from agentforge.envs.games import maze, sql, textcraft, todo, wordle
from agentforge.errors import EnvError

History = Sequence[tuple[str, str]]
Oracle = Callable[[Task, Observation, History], str]


# --- wordle: keep the words consistent with the marks so far; guess the one that splits them best --------------

WORDLE_OPENER = "trace"  # the best first guess over wordle.WORDS by the score below, fixed to save a second


def _split_score(guess: str, candidates: Sequence[str]) -> tuple[int, int, bool]:
    buckets: dict[str, int] = {}
    for secret in candidates:
        marks = wordle.feedback(guess, secret)
        buckets[marks] = buckets.get(marks, 0) + 1
    return sum(n * n for n in buckets.values()), max(buckets.values()), guess not in candidates


@lru_cache(maxsize=4096)
def _wordle_candidates(clues: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    if not clues:
        return wordle.WORDS
    guess, marks = clues[-1]
    return tuple(w for w in _wordle_candidates(clues[:-1]) if wordle.feedback(guess, w) == marks)


@lru_cache(maxsize=4096)
def _wordle_next(clues: tuple[tuple[str, str], ...]) -> str:
    if not clues:
        return WORDLE_OPENER
    candidates = _wordle_candidates(clues)
    if not candidates:
        raise EnvError("wordle oracle: no word fits the marks so far", env="wordle")
    if len(candidates) <= 2:
        return candidates[0]
    return min(wordle.WORDS, key=lambda g: _split_score(g, candidates))


def wordle_oracle(task: Task, observation: Observation, history: History) -> str:
    secret = str(task.answer)
    guesses = [g for g in (wordle.parse_guess(a) for a, _ in history) if g in wordle.WORDS]
    return f"guess {_wordle_next(tuple((g, wordle.feedback(g, secret)) for g in guesses))}"


# --- maze: breadth-first search from where the moves so far lead -----------------------------------------------

def maze_oracle(task: Task, observation: Observation, history: History) -> str:
    grid = task.meta["grid"]
    r, c = task.meta["start"]
    for action, _ in history:
        move = maze.parse_move(action)
        if move is not None and maze.is_open(grid, (r, c), move):
            dr, dc = maze.MOVES[move]
            r, c = r + dr, c + dc
    goal = (task.meta["goal"][0], task.meta["goal"][1])
    return maze.shortest_path(grid, (r, c), goal)[0]


# --- textcraft: a recursive planner over the task's recipes ------------------------------------------------------

def textcraft_oracle(task: Task, observation: Observation, history: History) -> str:
    steps = textcraft.plan(str(task.answer), textcraft.recipes_of(task))
    return steps[len(history)] if len(history) < len(steps) else "inventory"


# --- sql: run the gold query, then answer -------------------------------------------------------------------------

def sql_oracle(task: Task, observation: Observation, history: History) -> str:
    if not history:
        return f"query: {task.meta['gold_sql']}"
    return f"answer: {sql.format_answer(task.answer)}"


# --- todo: diff the original list against the goal and emit the commands ---------------------------------------

def todo_plan(task: Task) -> list[str]:
    initial = [(int(i), str(t), bool(d)) for i, t, d in task.meta["initial"]]
    kept = task.answer["kept"]
    actions = ["list"]
    for item_id, title, done in initial:
        want = kept.get(str(item_id))
        if want is None:
            actions.append(f"remove {item_id}")
            continue
        if todo.norm_title(want[0]) != todo.norm_title(title):
            actions.append(f"rename {item_id} {want[0]}")
        if bool(want[1]) != done:
            actions.append(f"{'done' if want[1] else 'undo'} {item_id}")
    next_id = max(i for i, _, _ in initial) + 1
    for title, done in task.answer["new"]:
        actions.append(f"add {title}")
        if done:
            actions.append(f"done {next_id}")
        next_id += 1
    return [*actions, "submit"]


def todo_oracle(task: Task, observation: Observation, history: History) -> str:
    steps = todo_plan(task)
    return steps[len(history)] if len(history) < len(steps) else "submit"


ORACLES: dict[str, Oracle] = {
    "wordle": wordle_oracle,
    "maze": maze_oracle,
    "textcraft": textcraft_oracle,
    "sql": sql_oracle,
    "todo": todo_oracle,
}


def oracle_action(env_name: str, task: Task, observation: Observation, history: History) -> str:
    """The oracle's next action for ``task`` of the built-in environment ``env_name``."""
    oracle = ORACLES.get(env_name)
    if oracle is None:
        raise EnvError(f"no oracle for environment '{env_name}'; oracles exist for {', '.join(ORACLES)}",
                       env=env_name)
    return oracle(task, observation, history)


@dataclass
class Episode:
    """One played episode: the final step, and every (action, observation text) along the way."""

    task_id: str
    first: Observation
    transcript: list[tuple[str, str]] = field(default_factory=list)
    last: StepResult | None = None

    @property
    def reward(self) -> float:
        return self.last.reward if self.last is not None else 0.0


Policy = Callable[[Task, Observation, History], str]


def play(env: Environment, task_id: str, policy: Policy | None = None) -> Episode:
    """Play ``task_id`` of ``env`` to the end (sync, local sessions only) with ``policy`` (default: the oracle)."""
    chosen: Policy = policy or (lambda task, obs, history: oracle_action(env.name, task, obs, history))
    task = env.task(task_id)
    session = env.session()
    try:
        obs = session.reset(task_id)
        episode = Episode(task_id=task_id, first=obs)
        while True:
            action = chosen(task, obs, episode.transcript)
            result = session.step(action)
            episode.transcript.append((action, result.observation.text))
            episode.last = result
            obs = result.observation
            if result.done:
                return episode
    finally:
        session.close()
