"""DatasetEnv: JSONL tasks, one scored step, splits, located errors; and the shipped data files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentforge.envs.base import Environment, Task
from agentforge.envs.datasets.dataset import DatasetEnv, content_id, render_inputs, split_ids
from agentforge.envs.registry import load_env
from agentforge.errors import ConfigError, EnvError, SpecError

REPO = Path(__file__).resolve().parents[2]
ENVS = REPO / "envs"
DATASETS = ("arithmetic", "capitals", "mcq_science", "code_funcs")


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


QA_ROWS = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": 2 * i, "level": i % 3} for i in range(20)]


@pytest.fixture
def qa(tmp_path: Path) -> DatasetEnv:
    return DatasetEnv(write_jsonl(tmp_path / "qa.jsonl", QA_ROWS), metric="numeric", input_fields=["question"])


def test_input_fields_default_to_every_other_field(tmp_path: Path) -> None:
    env = DatasetEnv(write_jsonl(tmp_path / "qa.jsonl", QA_ROWS))
    assert env.task("q1").inputs == {"question": "What is 1 + 1?", "level": 1}
    assert env.session().reset("q1").text == "question: What is 1 + 1?\nlevel: 1"


def test_reset_shows_inputs_and_step_scores(qa: DatasetEnv) -> None:
    assert (qa.name, qa.multi_turn, qa.max_steps) == ("qa", False, 1)
    session = qa.session()
    obs = session.reset("q3")
    assert obs.text == "What is 3 + 3?"
    assert obs.fields == {"question": "What is 3 + 3?"}  # the answer and other fields stay hidden
    result = session.step("It is 6.")
    assert (result.reward, result.done) == (1.0, True)
    assert result.info == {"answer": 6, "metric": "numeric"}
    session.reset("q3")
    assert session.step("7").reward == 0.0


def test_hidden_fields_go_to_meta(qa: DatasetEnv) -> None:
    task = qa.task("q4")
    assert task.inputs == {"question": "What is 4 + 4?"}
    assert task.answer == 8
    assert task.meta == {"level": 1, "source": "qa.jsonl", "line": 5}


def test_episode_rules(qa: DatasetEnv) -> None:
    session = qa.session()
    with pytest.raises(EnvError, match="step before reset"):
        session.step("6")
    session.reset("q3")
    session.step("6")
    with pytest.raises(EnvError, match="has finished"):
        session.step("6")
    with pytest.raises(EnvError, match="unknown task id"):
        session.reset("nope")


async def test_async_session(qa: DatasetEnv) -> None:
    session = qa.session()
    obs = await session.areset("q2")
    assert obs.text == "What is 2 + 2?"
    result = await session.astep("4")
    assert result.reward == 1.0 and result.done


def test_splits_are_seeded_and_cover_every_task(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    a = DatasetEnv(path, splits={"train": 0.5, "val": 0.25, "test": 0.25}, seed=1)
    b = DatasetEnv(path, splits={"train": 0.5, "val": 0.25, "test": 0.25}, seed=1)
    c = DatasetEnv(path, splits={"train": 0.5, "val": 0.25, "test": 0.25}, seed=2)
    split_a = {t.id: t.split for t in a.tasks()}
    assert split_a == {t.id: t.split for t in b.tasks()}
    assert split_a != {t.id: t.split for t in c.tasks()}
    # Each task's split is its own seeded hash, so sizes are near the fractions (10/5/5), not exact.
    assert [len(a.tasks(s)) for s in ("train", "val", "test")] == [10, 6, 4]
    assert [t.id for t in a.tasks()] == [f"q{i}" for i in range(20)]  # file order is kept


def test_split_fractions_never_ask_for_more_tasks_than_exist() -> None:
    ids = [str(i) for i in range(323)]  # rounding 60/20/20 of 323 would ask for 324
    splits = split_ids(ids, None, seed=0)
    assert len(splits) == 323
    assert sorted(splits.values()).count("test") == 53  # near 20% of 323 (64.6); hashed per task
    with pytest.raises(EnvError, match="sum to"):
        split_ids(ids, {"train": 0.7, "val": 0.2, "test": 0.2}, seed=0)
    assert list(split_ids(ids[:10], {"val": 3, "test": 2}, seed=0).values()).count("val") == 3  # counts


def test_num_tasks_samples_with_the_seed(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    a = [t.id for t in DatasetEnv(path, num_tasks=5, seed=3).tasks()]
    assert len(a) == 5 and a == [t.id for t in DatasetEnv(path, num_tasks=5, seed=3).tasks()]
    assert a == sorted(a, key=lambda i: int(i[1:]))  # original order kept
    assert a != [t.id for t in DatasetEnv(path, num_tasks=5, seed=4).tasks()]


def test_ids_default_to_content_and_fields_are_configurable(tmp_path: Path) -> None:
    rows = [{"q": "2+2?", "ctx": "math", "gold": "4"}, "", {"q": "3+3?", "ctx": "math", "gold": "6"}]
    env = DatasetEnv(write_jsonl(tmp_path / "d.jsonl", rows), input_fields=["ctx", "q"], answer_field="gold",
                     name="custom", instruction="Add.")
    ids = [content_id(rows[0]), content_id(rows[2])]  # from each row's content, not its line number
    assert [t.id for t in env.tasks()] == ids and all(len(i) == 12 for i in ids)
    assert [t.meta["line"] for t in env.tasks()] == [1, 3]  # blank lines are skipped but counted
    assert (env.name, env.instruction) == ("custom", "Add.")
    obs = env.session().reset(ids[1])
    assert obs.text == "ctx: math\nq: 3+3?"
    assert obs.fields == {"ctx": "math", "q": "3+3?"}


def test_multiple_choice_options_are_shown_lettered(tmp_path: Path) -> None:
    rows = [{"id": "m", "question": "Largest planet?", "options": ["Mars", "Jupiter", "Venus"], "answer": "Jupiter"}]
    env = DatasetEnv(write_jsonl(tmp_path / "mc.jsonl", rows), metric="multiple_choice")
    session = env.session()
    obs = session.reset("m")
    assert obs.text == "Largest planet?\n\nOptions:\nA. Mars\nB. Jupiter\nC. Venus"
    assert obs.fields["options"] == ["Mars", "Jupiter", "Venus"]
    assert session.step("(B)").reward == 1.0
    session.reset("m")
    assert session.step("Mars").reward == 0.0
    assert "letter" in env.instruction


def test_render_inputs() -> None:
    assert render_inputs({"question": 5}) == "5"
    assert render_inputs({"a": 1, "b": "x"}) == "a: 1\nb: x"


def test_code_tasks_run_their_tests(tmp_path: Path) -> None:
    rows = [{"id": "sq", "question": "Write square(x).", "tests": ["assert square(3) == 9", "assert square(-2) == 4"],
             "answer": "def square(x):\n    return x * x\n"}]
    env = DatasetEnv(write_jsonl(tmp_path / "code.jsonl", rows), metric="code_tests")
    task = env.task("sq")
    assert "tests" not in task.inputs and task.meta["tests"] == rows[0]["tests"]
    session = env.session()
    session.reset("sq")
    assert session.step("```python\ndef square(x):\n    return x ** 2\n```").reward == 1.0
    session.reset("sq")
    assert session.step("def square(x):\n    return 2 * x\n").reward == 0.0  # wrong: 6 != 9, -4 != 4
    session.reset("sq")
    assert session.step("def square(x):\n    return abs(x) * 2\n").reward == 0.5  # right for -2 only


@pytest.mark.parametrize(
    ("lines", "metric", "line", "message"),
    [
        (['{"question": "a", "answer": 1}', '{"question": "b", "answer": 2'], "exact_match", 2, "invalid JSON"),
        (['[1, 2]'], "exact_match", 1, "must be a JSON object"),
        (['{"question": "a"}'], "exact_match", 1, "missing answer field 'answer'"),
        (['{"id": 1, "question": "a", "answer": 1}', '{"id": 1, "question": "b", "answer": 2}'], "exact_match", 2,
         "duplicate task id '1'"),
        (['{"question": "a", "answer": "x"}'], "multiple_choice", 1, "needs an 'options' list"),
        (['{"question": "a", "answer": "x", "options": ["y", "z"]}'], "multiple_choice", 1, "none of the options"),
        (['{"question": "a", "answer": "x", "options": "xyz"}'], "multiple_choice", 1, "list of at least two"),
        (['{"question": "a", "answer": "def f(): pass"}'], "code_tests", 1, "needs a 'tests' field"),
        (['{"answer": 1}'], "exact_match", 1, "no input fields"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path: Path, lines: list[str], metric: str, line: int,
                                       message: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(SpecError, match=message) as info:
        DatasetEnv(path, metric=metric)
    problem = info.value.problems[0]
    assert (problem.file, problem.line) == (str(path), line)
    assert f"{path}:{line}" in str(info.value)


def test_missing_input_field_and_empty_or_missing_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ['{"question": "a", "answer": 1}'])
    with pytest.raises(SpecError, match=r"missing input field\(s\) \['context'\]"):
        DatasetEnv(path, input_fields=["context"])
    with pytest.raises(SpecError, match="no tasks"):
        DatasetEnv(write_jsonl(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(SpecError, match="not found") as info:
        DatasetEnv(tmp_path / "missing.jsonl")
    assert info.value.problems[0].file == str(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="needs the path"):
        DatasetEnv()
    with pytest.raises(ConfigError, match="num_tasks must be at least 1"):
        DatasetEnv(path, num_tasks=0)


# ---------------------------------------------------------------- the shipped data files


def oracle(task: Task) -> str:
    """The gold answer as an action: the first alias, or the reference solution."""
    answer = task.answer[0] if isinstance(task.answer, list) else task.answer
    return str(answer)


def wrong(env: Environment, task: Task) -> str:
    """A plausible wrong answer: another task's gold, another option, or broken code."""
    if "options" in task.inputs:
        return next(o for o in task.inputs["options"] if o not in _aliases(task.answer))
    if env.name == "code_funcs":
        return "def unrelated():\n    return None\n"
    if env.name == "arithmetic":
        return str(int(task.answer) + 1)
    other = next(t for t in env.tasks() if t.id != task.id)
    return oracle(other)


def _aliases(answer: Any) -> list[Any]:
    return answer if isinstance(answer, list) else [answer]


async def _score_all(env: Environment, actions: dict[str, str]) -> dict[str, float]:
    async def one(task_id: str, action: str) -> tuple[str, float]:
        session = env.session()
        await session.areset(task_id)
        result = await session.astep(action)
        assert result.done
        return task_id, result.reward

    return dict(await asyncio.gather(*(one(i, a) for i, a in actions.items())))


@pytest.mark.parametrize("name", DATASETS)
async def test_shipped_dataset_oracle_scores_one_and_wrong_scores_zero(name: str) -> None:
    env = load_env(ENVS / f"{name}.yaml")
    assert isinstance(env, DatasetEnv) and env.name == name
    splits = {s: env.tasks(s) for s in ("train", "val", "test")}
    assert all(splits.values()) and sum(len(v) for v in splits.values()) == len(env.tasks())
    tasks = [t for s in splits.values() for t in s]
    gold = await _score_all(env, {t.id: oracle(t) for t in tasks})
    assert [i for i, score in gold.items() if score != 1.0] == []
    bad = await _score_all(env, {t.id: wrong(env, t) for t in tasks})
    assert [i for i, score in bad.items() if score != 0.0] == []


def test_shipped_dataset_sizes_and_splits_are_stable() -> None:
    sizes = {name: len(load_env(ENVS / f"{name}.yaml").tasks()) for name in DATASETS}
    assert sizes == {"arithmetic": 200, "capitals": 100, "mcq_science": 60, "code_funcs": 40}
    first = {t.id: t.split for t in load_env(ENVS / "arithmetic.yaml").tasks()}
    assert first == {t.id: t.split for t in load_env(ENVS / "arithmetic.yaml").tasks()}
    for path in (ENVS / "data").glob("*.jsonl"):
        assert path.stat().st_size < 200_000, path


def test_shipped_data_is_reproducible_and_documented(tmp_path: Path) -> None:
    script = ENVS / "data" / "make_data.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    readme = (ENVS / "data" / "README.md").read_text(encoding="utf-8")
    for path in (ENVS / "data").glob("*.jsonl"):
        assert path.name in readme, f"{path.name} has no provenance in envs/data/README.md"
