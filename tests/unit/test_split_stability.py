"""Splits that hold when the task list changes: each task's split depends on its own id (content) and the seed.

Before: adding one task to 100 moved 17 existing tasks between splits, 6 of them from val to train, and
default dataset ids were line numbers, so inserting a line re-id'd every later task.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from agentforge.envs.base import assign_splits
from agentforge.envs.datasets.bigbench import BigBenchEnv
from agentforge.envs.datasets.dataset import DatasetEnv

IDS = [f"task-{i:03d}" for i in range(100)]


def moved(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {i: (before[i], after[i]) for i in before if i in after and before[i] != after[i]}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_adding_one_task_to_a_hundred_moves_none(seed: int) -> None:
    before = assign_splits(IDS, seed=seed)
    for new in ("task-100", "aaa", "zzz-inserted"):
        assert moved(before, assign_splits([*IDS, new], seed=seed)) == {}
        assert moved(before, assign_splits([new, *IDS], seed=seed)) == {}


@pytest.mark.parametrize("seed", [0, 3])
def test_reordering_or_removing_tasks_moves_none(seed: int) -> None:
    before = assign_splits(IDS, seed=seed)
    shuffled = IDS[:]
    random.Random(seed).shuffle(shuffled)
    assert moved(before, assign_splits(shuffled, seed=seed)) == {}
    assert moved(before, assign_splits(IDS[::2], seed=seed)) == {}


def test_val_and_test_never_drift_into_train_as_the_data_grows() -> None:
    grown = IDS[:]
    first = assign_splits(grown)
    for step in range(50):
        grown.append(f"later-{step}")
        now = assign_splits(grown)
        assert moved(first, now) == {}
    held_out = {i for i, s in first.items() if s in ("val", "test")}
    assert all(now[i] == first[i] for i in held_out)


@pytest.mark.parametrize(("n", "fractions"), [
    (100, {"train": 0.6, "val": 0.2, "test": 0.2}),
    (1000, {"train": 0.6, "val": 0.2, "test": 0.2}),
    (1000, {"train": 0.8, "val": 0.1, "test": 0.1}),
    (500, {"val": 0.3}),  # the rest trains
])
def test_sizes_stay_near_the_fractions(n: int, fractions: dict[str, float]) -> None:
    counts = Counter(assign_splits([f"id{i}" for i in range(n)], fractions, seed=0).values())
    assert sum(counts.values()) == n
    for name in ("val", "test"):
        p = fractions.get(name, 0.0)
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(counts[name] - n * p) <= 3 * sd + 1, (name, counts)
    assert counts["train"] >= n * fractions.get("train", 0.0) - 3 * (n * 0.25) ** 0.5


def test_the_seed_changes_the_assignment_and_counts_stay_exact() -> None:
    assert assign_splits(IDS, seed=0) != assign_splits(IDS, seed=1)
    counted = assign_splits(IDS, {"train": 50, "val": 30, "test": 20}, seed=0)
    assert Counter(counted.values()) == {"train": 50, "val": 30, "test": 20}
    assert counted == assign_splits(list(reversed(IDS)), {"train": 50, "val": 30, "test": 20}, seed=0)


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [{"question": f"What is {i} + {i}?", "answer": 2 * i} for i in range(100)]


def test_dataset_ids_without_an_id_field_come_from_content_not_line_numbers(tmp_path: Path) -> None:
    before = DatasetEnv(_write(tmp_path / "a.jsonl", ROWS), metric="numeric")
    inserted = [ROWS[0], {"question": "What is 1000 + 1?", "answer": 1001}, *ROWS[1:]]
    after = DatasetEnv(_write(tmp_path / "b.jsonl", inserted), metric="numeric")
    by_question = {t.inputs["question"]: (t.id, t.split) for t in before.tasks()}
    for task in after.tasks():
        if task.inputs["question"] in by_question:
            assert by_question[task.inputs["question"]] == (task.id, task.split)
    shuffled = ROWS[:]
    random.Random(1).shuffle(shuffled)
    reordered = DatasetEnv(_write(tmp_path / "c.jsonl", shuffled), metric="numeric")
    assert {t.id: t.split for t in reordered.tasks()} == {t.id: t.split for t in before.tasks()}


def test_repeated_rows_get_distinct_ids_and_explicit_ids_are_kept(tmp_path: Path) -> None:
    env = DatasetEnv(_write(tmp_path / "d.jsonl", [ROWS[0], ROWS[1], ROWS[0]]), metric="numeric")
    ids = [t.id for t in env.tasks()]
    assert len(set(ids)) == 3 and ids[2] == ids[0] + "-2"
    named = DatasetEnv(_write(tmp_path / "e.jsonl", [{"id": "q7", **ROWS[0]}]), metric="numeric")
    assert [t.id for t in named.tasks()] == ["q7"]


def test_bigbench_splits_follow_the_example_not_its_index(tmp_path: Path) -> None:
    examples = [{"input": f"{i} + 1 =", "target": str(i + 1)} for i in range(60)]
    task = {"name": "t", "description": "Add.", "keywords": [], "metrics": ["exact_str_match"],
            "preferred_score": "exact_str_match", "examples": examples}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "task.json").write_text(json.dumps(task), encoding="utf-8")
    (tmp_path / "b").mkdir()
    grown = {**task, "examples": [{"input": "new =", "target": "0"}, *examples]}
    (tmp_path / "b" / "task.json").write_text(json.dumps(grown), encoding="utf-8")
    before = {t.inputs["input"]: t.split for t in BigBenchEnv(path=tmp_path / "a").tasks()}
    after = {t.inputs["input"]: t.split for t in BigBenchEnv(path=tmp_path / "b").tasks()}
    assert {q: s for q, s in after.items() if q in before} == before


@pytest.mark.parametrize("name", ["wordle", "maze", "textcraft", "sql", "todo"])
def test_generating_more_game_tasks_keeps_each_task_and_its_split(name: str) -> None:
    from agentforge.envs.builtin import builtin_class

    cls = builtin_class(name)
    before = {t.id: t for t in cls(num_tasks=60, seed=0).tasks()}
    after = {t.id: t for t in cls(num_tasks=61, seed=0).tasks()}
    assert all(after[i] == task for i, task in before.items())  # same content, same split
