"""Conformance of the built-in multi-turn environments (wordle, maze, textcraft, sql, todo) and their oracles."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentforge.envs.base import SPLITS, Environment, Observation, Task
from agentforge.envs.builtin import BUILTIN_ENVS, builtin_class
from agentforge.envs.games.maze import MazeEnv
from agentforge.envs.games.oracles import ORACLES, oracle_action, play
from agentforge.envs.games.sql import SqlEnv
from agentforge.envs.games.textcraft import TextCraftEnv
from agentforge.envs.games.todo import TodoEnv
from agentforge.envs.games.wordle import WordleEnv
from agentforge.errors import EnvError

REPO = Path(__file__).resolve().parents[2]
CLASSES: dict[str, type[Environment]] = {
    "wordle": WordleEnv, "maze": MazeEnv, "textcraft": TextCraftEnv, "sql": SqlEnv, "todo": TodoEnv,
}
NAMES = list(CLASSES)
NUM_TASKS = 300
SPLIT_SIZES = {
    "wordle": {"train": 191, "val": 53, "test": 56},
    "maze": {"train": 175, "val": 65, "test": 60},
    "textcraft": {"train": 153, "val": 70, "test": 77},
    "sql": {"train": 185, "val": 57, "test": 58},
    "todo": {"train": 152, "val": 67, "test": 81},
}

Policy = Callable[[Task, Observation, list[tuple[str, str]]], str]


@pytest.fixture(scope="module")
def envs() -> dict[str, Environment]:
    return {name: cls(num_tasks=NUM_TASKS, seed=0) for name, cls in CLASSES.items()}


def limit_of(env: Environment, task: Task) -> int:
    return int(task.meta.get("max_steps", env.max_steps))


def content(task: Task) -> str:
    return json.dumps([task.inputs, task.answer, task.meta], sort_keys=True)


# --- every task is solvable ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_oracle_solves_every_task(envs: dict[str, Environment], name: str) -> None:
    env = envs[name]
    assert env.multi_turn is True
    assert len(env.tasks()) == NUM_TASKS
    for task in env.tasks():
        episode = play(env, task.id)
        assert episode.reward == 1.0, (task.id, episode.transcript[-3:])
        assert episode.last is not None and episode.last.done and not episode.last.info.get("truncated")
        assert len(episode.transcript) <= limit_of(env, task) <= env.max_steps


@pytest.mark.parametrize("name", NAMES)
def test_oracle_reads_only_the_task_and_its_own_actions(envs: dict[str, Environment], name: str) -> None:
    """The oracle needs no observation text and no ``info``: blind it and it still solves the tasks."""
    env = envs[name]

    def blind(task: Task, obs: Observation, history: list[tuple[str, str]]) -> str:
        return oracle_action(name, task, Observation(text=""), [(a, "") for a, _ in history])

    for task in env.tasks()[:40]:
        assert play(env, task.id, blind).reward == 1.0


def test_wordle_oracle_solves_every_word_within_six_guesses() -> None:
    from agentforge.envs.games.wordle import GUESSES, WORDS

    env = WordleEnv(num_tasks=len(WORDS), seed=3)
    episodes = [play(env, t.id) for t in env.tasks()]
    assert all(e.reward == 1.0 for e in episodes)
    assert max(len(e.transcript) for e in episodes) <= GUESSES


def test_oracle_action_rejects_unknown_env(envs: dict[str, Environment]) -> None:
    assert set(ORACLES) == set(NAMES)
    with pytest.raises(EnvError, match="no oracle"):
        oracle_action("chess", envs["todo"].tasks()[0], Observation(text=""), [])


@pytest.mark.parametrize("name", NAMES)
def test_every_observation_carries_the_visible_task_inputs(envs: dict[str, Environment], name: str) -> None:
    """Workflows bind ``obs.fields``; a task's ``inputs`` must be there on every step, and nothing hidden."""
    env = envs[name]
    for task in env.tasks()[:10]:
        episode = play(env, task.id)
        observations = [episode.first, *([episode.last.observation] if episode.last else [])]
        for obs in observations:
            assert {k: obs.fields.get(k) for k in task.inputs} == task.inputs
            assert "answer" not in obs.fields and "meta" not in obs.fields
            assert not {"goal", "observation", "history", "step", "instruction"} & set(obs.fields)


# --- wrong and idle policies score 0 -------------------------------------------------------------------------------


def _wrong_wordle(task: Task, obs: Observation, history: list[tuple[str, str]]) -> str:
    return "about" if task.answer != "about" else "above"


def _idle_maze(task: Task, obs: Observation, history: list[tuple[str, str]]) -> str:
    return "up" if len(history) % 2 == 0 else "down"  # never more than one cell from the start


WRONG: dict[str, list[Policy]] = {
    "wordle": [_wrong_wordle, lambda t, o, h: "zzzzz"],
    "maze": [_idle_maze, lambda t, o, h: "wait"],
    "textcraft": [lambda t, o, h: "inventory", lambda t, o, h: "get 1 pebble"],
    "sql": [lambda t, o, h: "answer: no idea", lambda t, o, h: "query: SELECT 1"],
    "todo": [lambda t, o, h: "submit", lambda t, o, h: "list"],
}


@pytest.mark.parametrize("name", NAMES)
def test_wrong_or_idle_policy_scores_zero(envs: dict[str, Environment], name: str) -> None:
    env = envs[name]
    for policy in WRONG[name]:
        for task in env.tasks()[:60]:
            episode = play(env, task.id, policy)
            assert episode.reward == 0.0, (task.id, episode.transcript[-1])
            assert len(episode.transcript) <= limit_of(env, task)


# --- invalid actions -----------------------------------------------------------------------------------------------

GARBAGE = ["", "   ", "??", "x" * 5000, "do a barrel roll", "\u00e9\u00e8 \U0001f600", "Action:", "12 34"]
HINTS = {"wordle": "guess crane", "maze": "up, down, left or right", "textcraft": "get N item",
         "sql": "query:", "todo": "add <title>"}


@pytest.mark.parametrize("name", NAMES)
def test_invalid_actions_are_explained_and_count_as_steps(envs: dict[str, Environment], name: str) -> None:
    env = envs[name]
    task = env.tasks()[0]
    session = env.session()
    session.reset(task.id)
    for n, action in enumerate(GARBAGE, start=1):
        result = session.step(action)
        assert result.reward == 0.0 and not result.done, action
        assert result.info.get("invalid") is True, action
        assert HINTS[name] in result.observation.text, result.observation.text
        assert len(result.observation.text) < 600
        assert session.steps == n
    # the episode still works afterwards
    assert oracle_action(name, task, result.observation, []) and not session.done
    session.close()


@pytest.mark.parametrize("name", NAMES)
def test_episode_rules(envs: dict[str, Environment], name: str) -> None:
    env = envs[name]
    session = env.session()
    with pytest.raises(EnvError, match="before reset"):
        session.step("anything")
    with pytest.raises(EnvError, match="unknown task"):
        session.reset(f"{name}-9999")
    task = env.tasks()[1]
    first = session.reset(task.id)
    episode = play(env, task.id)
    for action, _ in episode.transcript:
        result = session.step(action)
    assert result.done and result.reward == 1.0
    with pytest.raises(EnvError, match="has finished"):
        session.step("anything")
    assert session.reset(task.id) == first  # a reset starts afresh
    session.close()


@pytest.mark.parametrize("name", NAMES)
async def test_async_twins(envs: dict[str, Environment], name: str) -> None:
    env = envs[name]
    task = env.tasks()[2]
    session = env.session()
    obs = await session.areset(task.id)
    history: list[tuple[str, str]] = []
    while True:
        action = oracle_action(name, task, obs, history)
        result = await session.astep(action)
        history.append((action, result.observation.text))
        obs = result.observation
        if result.done:
            break
    await session.aclose()
    assert result.reward == 1.0


# --- tasks: determinism, distinctness, splits ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_tasks_and_observations(envs: dict[str, Environment], name: str) -> None:
    again = CLASSES[name](num_tasks=NUM_TASKS, seed=0)
    assert [t.model_dump() for t in again.tasks()] == [t.model_dump() for t in envs[name].tasks()]
    for task in again.tasks()[:15]:
        a, b = play(again, task.id), play(envs[name], task.id)
        assert a.first == b.first and a.transcript == b.transcript


@pytest.mark.parametrize("name", NAMES)
def test_different_seed_different_tasks(envs: dict[str, Environment], name: str) -> None:
    other = CLASSES[name](num_tasks=NUM_TASKS, seed=1)
    mine = [content(t) for t in envs[name].tasks()]
    theirs = [content(t) for t in other.tasks()]
    assert mine != theirs
    assert len(set(mine) & set(theirs)) < NUM_TASKS // 2


@pytest.mark.parametrize("name", NAMES)
def test_tasks_are_distinct_and_well_named(envs: dict[str, Environment], name: str) -> None:
    tasks = envs[name].tasks()
    assert [t.id for t in tasks] == [f"{name}-{i:04d}" for i in range(NUM_TASKS)]
    assert len({content(t) for t in tasks}) == NUM_TASKS
    for task in tasks:
        json.dumps(task.model_dump())  # tasks travel to workers and servers


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_disjoint_and_cover(envs: dict[str, Environment], name: str) -> None:
    env = envs[name]
    by_split = {split: {t.id for t in env.tasks(split)} for split in SPLITS}
    assert sum(len(ids) for ids in by_split.values()) == NUM_TASKS
    assert set().union(*by_split.values()) == {t.id for t in env.tasks()}
    # Each task's split is its own seeded hash (stable as tasks are added), so sizes are near 180/60/60.
    assert {k: len(v) for k, v in by_split.items()} == SPLIT_SIZES[name]
    counted = CLASSES[name](num_tasks=40, seed=5, splits={"train": 20, "val": 10, "test": 10})
    assert Counter(t.split for t in counted.tasks()) == {"train": 20, "val": 10, "test": 10}


@pytest.mark.parametrize("name", NAMES)
def test_bad_constructor_arguments(name: str) -> None:
    with pytest.raises(EnvError):
        CLASSES[name](num_tasks=0)
    with pytest.raises(EnvError):
        CLASSES[name](num_tasks=10, splits={"train": 0.9, "holdout": 0.1})


def test_hundreds_of_tasks_are_possible() -> None:
    for cls in (MazeEnv, TextCraftEnv, SqlEnv, TodoEnv):
        assert len(cls(num_tasks=800, seed=2).tasks()) == 800
    from agentforge.envs.games.wordle import WORDS

    assert len(WORDS) >= 800
    with pytest.raises(EnvError, match="one task per word"):
        WordleEnv(num_tasks=len(WORDS) + 1)


# --- YAML definitions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_yaml_definition(name: str) -> None:
    path = REPO / "envs" / f"{name}.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(data) == {"version", "kind", "name", "description", "source", "num_tasks", "splits", "seed"}
    assert data["version"] == 1 and data["kind"] == "env" and data["name"] == name
    assert data["source"]["type"] == "builtin" and data["source"]["class"] == name
    assert name in BUILTIN_ENVS and builtin_class(name) is CLASSES[name]
    env = builtin_class(name)(num_tasks=data["num_tasks"], seed=data["seed"], splits=data["splits"],
                              **data["source"]["params"])
    assert len(env.tasks()) == data["num_tasks"] == NUM_TASKS
    assert data["description"].strip()


@pytest.mark.parametrize("name", NAMES)
def test_load_env_from_yaml(name: str) -> None:
    registry = pytest.importorskip("agentforge.envs.registry")
    env = registry.load_env(str(REPO / "envs" / f"{name}.yaml"))
    assert isinstance(env, CLASSES[name])
    assert len(env.tasks()) == NUM_TASKS
