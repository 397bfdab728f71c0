"""BigBenchEnv on small task.json files in BIG-bench's format, and on a real task when it is installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from agentforge.envs.datasets import bigbench
from agentforge.envs.datasets.bigbench import BigBenchEnv, bigbench_tasks_dir, postprocess
from agentforge.envs.registry import load_env
from agentforge.errors import EnvError, SpecError

REPO = Path(__file__).resolve().parents[2]

GENERATIVE = {
    "canary": "test canary",
    "name": "tiny_math",
    "description": "Tiny arithmetic.",
    "keywords": ["arithmetic"],
    "metrics": ["exact_str_match"],
    "preferred_score": "exact_str_match",
    "task_prefix": "Compute.",
    "example_input_prefix": "\nProblem: ",
    "example_output_prefix": "\nResult: ",
    "output_regex": "[-+]?\\d+",
    "examples": [
        {"input": "2 + 2", "target": "4"},
        {"input": "10 - 3", "target": ["7", "seven"]},
        {"input": "3 * 3", "target": "9"},
        {"input": "1 - 5", "target": "-4"},
        {"input": "8 / 2", "target": "4"},
    ],
}

MULTIPLE_CHOICE = {
    "canary": "test canary",
    "name": "tiny_facts",
    "description": "Tiny facts",
    "keywords": ["facts"],
    "metrics": ["multiple_choice_grade"],
    "preferred_score": "multiple_choice_grade",
    "choice_prefix": "\n  option: ",
    "examples": [
        {"input": "How many legs does a spider have?", "target_scores": {"six": 0, "eight": 1, "four": 0}},
        {"input": "What colour is the sky on a clear day?", "target_scores": {"blue": 1, "green": 0, "red": 0}},
        {"input": "Which is a fruit?", "target_scores": {"apple": 1, "carrot": 0, "pear": 1, "leek": 0}},
        {"input": "Which is heavier?", "target_scores": {"a tonne of lead": 0.2, "a kilogram of feathers": 0}},
    ],
}


def write_task(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def gold(answer: Any) -> str:
    return str(answer[0] if isinstance(answer, list) else answer)


def test_generative_task_prompt_and_scoring(tmp_path: Path) -> None:
    env = BigBenchEnv(path=write_task(tmp_path / "tiny_math", GENERATIVE))
    assert (env.name, env.metric.name, env.max_steps, env.multi_turn) == ("tiny_math", "exact_str_match", 1, False)
    assert env.instruction.startswith("Tiny arithmetic.")
    assert [t.id for t in env.tasks()] == ["0", "1", "2", "3", "4"]
    session = env.session()
    obs = session.reset("1")
    assert obs.text == "Compute.\nProblem: 10 - 3\nResult:"  # BIG-bench's own prompt, stripped
    assert obs.fields == {"question": obs.text, "input": "10 - 3"}
    assert "options" not in obs.fields
    result = session.step("7")
    assert (result.reward, result.done, result.info["answer"]) == (1.0, True, ["7", "seven"])
    session.reset("3")
    assert session.step("The result is -4, I think").reward == 1.0  # output_regex keeps the first number
    session.reset("2")
    assert session.step("3 times 3 is 9").reward == 0.0  # ... the first one, as BIG-bench does
    for task in env.tasks():
        session.reset(task.id)
        assert session.step(gold(task.answer)).reward == 1.0


def test_multiple_choice_task(tmp_path: Path) -> None:
    write_task(tmp_path / "tiny_facts", MULTIPLE_CHOICE)
    env = BigBenchEnv(path=tmp_path / "tiny_facts")  # a task folder works as well as its task.json
    assert env.metric.name == "multiple_choice"
    assert env.instruction == "Tiny facts. Answer with the text of the correct choice."
    task = env.task("0")
    assert sorted(task.inputs["options"]) == ["eight", "four", "six"]
    assert task.answer == ["eight"]
    assert task.meta["target_scores"] == {"six": 0, "eight": 1, "four": 0}
    choices = "".join(f"\n  option: {c}" for c in task.inputs["options"])
    assert task.inputs["question"] == f"Q: How many legs does a spider have?{choices}\nA:"
    session = env.session()
    session.reset("0")
    assert session.step("A spider has eight legs.").reward == 1.0
    session.reset("0")
    assert session.step("six").reward == 0.0
    session.reset("2")  # two right choices
    assert session.step("pear").reward == 1.0
    session.reset("3")  # fractional scores: the highest one is right
    assert session.step("a tonne of lead").reward == 1.0
    # choices are not lettered in BIG-bench prompts, so a letter does not pick one
    options = env.task("1").inputs["options"]
    session.reset("1")
    assert session.step("ABC"[options.index("blue")]).reward == 0.0


def test_choices_are_shuffled_per_example_and_seeded(tmp_path: Path) -> None:
    data = {**MULTIPLE_CHOICE, "examples": [
        {"input": f"q{i}", "target_scores": {"a": 1, "b": 0, "c": 0, "d": 0, "e": 0}} for i in range(12)]}
    path = write_task(tmp_path / "t", data)
    orders = [tuple(t.inputs["options"]) for t in BigBenchEnv(path=path, seed=0).tasks()]
    assert orders == [tuple(t.inputs["options"]) for t in BigBenchEnv(path=path, seed=0).tasks()]
    assert len(set(orders)) > 1  # not the file's order every time
    assert orders != [tuple(t.inputs["options"]) for t in BigBenchEnv(path=path, seed=1).tasks()]
    plain = BigBenchEnv(path=path, shuffle_choices=False)
    assert all(t.inputs["options"] == ["a", "b", "c", "d", "e"] for t in plain.tasks())


def test_choices_not_appended_when_the_task_says_so(tmp_path: Path) -> None:
    data = {**MULTIPLE_CHOICE, "append_choices_to_input": "false", "examples": MULTIPLE_CHOICE["examples"][:1]}
    env = BigBenchEnv(path=write_task(tmp_path / "t", data))
    assert env.task("0").inputs["question"] == "Q: How many legs does a spider have?\nA:"
    assert len(env.task("0").inputs["options"]) == 3  # still given as a field


@pytest.mark.parametrize(
    ("preferred", "metrics", "metric", "params"),
    [
        ("bleu", ["bleu"], "token_f1", {}),
        ("rougeLsum", ["rouge"], "token_f1", {}),
        ("sequence_f1", ["sequence_f1"], "token_f1", {}),
        ("exact_str_match", [], "exact_str_match", {}),  # BIG-bench's own definitions
        ("case_insensitive_str_match", [], "exact_str_match", {"case_sensitive": False}),
        ("numeric_match_with_0_1_relative_error", [], "numeric_match_with_0_1_relative_error", {}),
        (None, ["log_likelihood"], "exact_str_match", {}),
    ],
)
def test_metric_mapping(tmp_path: Path, preferred: str | None, metrics: list[str], metric: str,
                        params: dict[str, Any]) -> None:
    data = {**GENERATIVE, "preferred_score": preferred, "metrics": metrics}
    data.pop("output_regex")
    env = BigBenchEnv(path=write_task(tmp_path / "t", data))
    assert (env.metric.name, dict(env.metric.params)) == (metric, params)


def test_numeric_mapping_uses_bigbench_tolerance(tmp_path: Path) -> None:
    data = {**GENERATIVE, "preferred_score": "numeric_match_with_0_1_relative_error",
            "examples": [{"input": "about 100", "target": "100"}]}
    data.pop("output_regex")
    session = BigBenchEnv(path=write_task(tmp_path / "t", data)).session()
    session.reset("0")
    assert session.step("105").reward == 1.0
    session.reset("0")
    assert session.step("120").reward == 0.0


def test_metric_override_and_stop_string(tmp_path: Path) -> None:
    data = {**GENERATIVE, "stop_string": "."}
    data.pop("output_regex")
    env = BigBenchEnv(path=write_task(tmp_path / "t", data), metric="numeric")
    session = env.session()
    session.reset("0")
    assert session.step("4. Then 5 and 6").reward == 1.0  # cut after the stop string
    assert postprocess("a. b. c", stop_string=".") == "a."
    assert postprocess("x 12 y 13", output_regex=r"(\d+)") == "12"
    assert postprocess("no digits", output_regex=r"\d+") == ""


def test_container_task_with_subtasks(tmp_path: Path) -> None:
    root = tmp_path / "combo"
    write_task(root, {"canary": "c", "name": "combo", "description": "Two parts.", "keywords": []})
    write_task(root / "part_a", {**GENERATIVE, "name": "part_a"})
    write_task(root / "part_b", {**GENERATIVE, "name": "part_b", "examples": GENERATIVE["examples"][:2]})
    env = BigBenchEnv(path=root)
    assert env.name == "combo"
    assert [t.id for t in env.tasks()][:2] == ["part_a:0", "part_a:1"]
    assert len(env.tasks()) == 7
    assert env.task("part_b:1").meta["subtask"] == "part_b"
    one = BigBenchEnv(path=root, subtask="part_b")
    assert (one.name, len(one.tasks())) == ("combo.part_b", 2)
    with pytest.raises(SpecError, match="did you mean 'part_a'"):
        BigBenchEnv(path=root, subtask="part_aa")
    write_task(root / "part_c", {**MULTIPLE_CHOICE, "name": "part_c"})
    with pytest.raises(SpecError, match="scored differently"):
        BigBenchEnv(path=root)


def test_num_tasks_and_splits(tmp_path: Path) -> None:
    path = write_task(tmp_path / "t", GENERATIVE)
    env = BigBenchEnv(path=path, num_tasks=3, seed=5, splits={"train": 1, "test": 2})
    assert len(env.tasks()) == 3
    assert (len(env.tasks("train")), len(env.tasks("test"))) == (1, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "x",\n "examples": [}', "invalid JSON"),
        ('[1, 2]', "must be a JSON object"),
        ('{"name": "x", "examples": []}', "non-empty list"),
        ('{"name": "x", "examples": [{"target": "1"}]}', "example 0: each example needs an 'input'"),
        ('{"name": "x", "examples": [{"input": "q"}]}', "needs a 'target' or 'target_scores'"),
        ('{"name": "x", "examples": [{"input": "q", "target_scores": {"a": 0, "b": 0}}]}', "no choice scores higher"),
        ('{"name": "x", "preferred_score": "multiple_choice_grade", "examples": [{"input": "q", "target": "1"}]}',
         "needs 'target_scores'"),
        ('{"name": "x"}', "needs 'examples' or subtask folders"),
    ],
)
def test_bad_task_files(tmp_path: Path, content: str, message: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "task.json").write_text(content, encoding="utf-8")
    with pytest.raises(SpecError, match=message) as info:
        BigBenchEnv(path=folder)
    assert info.value.problems[0].file == str(folder / "task.json")
    if "invalid JSON" in message:
        assert info.value.problems[0].line == 2


def test_needs_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(EnvError, match="exactly one"):
        BigBenchEnv()
    with pytest.raises(EnvError, match="exactly one"):
        BigBenchEnv("x", path=tmp_path)
    with pytest.raises(SpecError, match="not found"):
        BigBenchEnv(path=tmp_path / "nothing")


def test_lookup_by_name_in_a_tasks_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "benchmark_tasks"
    write_task(root / "tiny_facts", MULTIPLE_CHOICE)
    write_task(root / "tiny_math", GENERATIVE)
    monkeypatch.setenv(bigbench.BIGBENCH_DIR_ENV, str(root))
    assert bigbench_tasks_dir() == root
    assert len(BigBenchEnv("tiny_facts").tasks()) == 4
    with pytest.raises(EnvError, match="did you mean 'tiny_math'"):
        BigBenchEnv("tiny_mat")


def test_missing_bigbench_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bigbench.BIGBENCH_DIR_ENV, raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bigbench" else real_find_spec(name, *a))
    assert bigbench_tasks_dir() is None
    with pytest.raises(EnvError, match="not installed") as info:
        BigBenchEnv("general_knowledge")
    assert "pip install --no-deps" in str(info.value) and bigbench.BIGBENCH_DIR_ENV in str(info.value)
    # the shipped example YAML gives the same advice, naming the YAML file and line
    with pytest.raises(EnvError, match="pip install --no-deps") as info:
        load_env(REPO / "envs" / "bigbench_example.yaml")
    assert str(info.value).startswith(f"{REPO / 'envs' / 'bigbench_example.yaml'}:")


_INSTALLED = bigbench_tasks_dir()
_REAL_TASK = _INSTALLED / "general_knowledge" / "task.json" if _INSTALLED else None


@pytest.mark.skipif(
    _REAL_TASK is None or not _REAL_TASK.is_file(),
    reason="BIG-bench's task files are not installed (pip install --no-deps of the bigbench sdist, or set "
           "AGENTFORGE_BIGBENCH_DIR; see envs/data/README.md)",
)
def test_real_bigbench_tasks() -> None:
    env = load_env(REPO / "envs" / "bigbench_example.yaml")
    assert (env.name, env.metric.name, len(env.tasks())) == ("bigbench_example", "multiple_choice", 70)
    session = env.session()
    for task in env.tasks():
        session.reset(task.id)
        assert session.step(gold(task.answer)).reward == 1.0
    arithmetic = BigBenchEnv("arithmetic/1_digit_addition")
    assert arithmetic.metric.name == "exact_str_match" and len(arithmetic.tasks()) == 100
    session = arithmetic.session()
    obs = session.reset("1_digit_addition:0")  # ids keep the subtask, chosen or not
    assert obs.text.startswith("Q: What is 0 plus 0?") and "choice: banana" in obs.text
    assert session.step("0").reward == 1.0
