"""Metrics say why: ``Score(value, feedback, parsed)``, passed on by the dataset env as ``StepResult``.

``parsed=False`` marks an answer the metric could not read (no number, no option, no code, empty), which the
evaluator records as a typed error on the task. A custom metric returning a bare float keeps working.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentforge.envs.base import Score, Task
from agentforge.envs.datasets.dataset import DatasetEnv
from agentforge.envs.datasets.metrics import Metric, get_metric

OPTIONS = ["Paris", "London", "Berlin"]


def grade(metric: str, prediction: str, task: Task, **params: object) -> Score:
    return get_metric(metric, **params).grade(prediction, task)


@pytest.mark.parametrize(("metric", "prediction", "answer", "value", "parsed", "feedback"), [
    ("numeric", "The total is 11.", 12, 0.0, True, "expected 12, got 11"),
    ("numeric", "It is 12", 12, 1.0, True, None),
    ("numeric", "I do not know", 12, 0.0, False, "no number found in the answer"),
    ("numeric", "", 12, 0.0, False, "the answer is empty"),
    ("exact_match", "Lyon", "Paris", 0.0, True, "expected 'Paris', got 'Lyon'"),
    ("exact_match", "Lyon", ["Kyiv", "Kiev"], 0.0, True, "expected one of 'Kyiv', 'Kiev', got 'Lyon'"),
    ("exact_match", "  ", "Paris", 0.0, False, "the answer is empty"),
    ("exact_str_match", "Paris.", ["Paris"], 0.0, True, "expected exactly 'Paris', got 'Paris.'"),
    ("numeric_match_with_0_1_relative_error", "about 5", "5", 0.0, False, "the answer is not a number: 'about 5'"),
    ("numeric_match_with_0_1_relative_error", "7", "5", 0.0, True, "expected 5 within 10%, got 7"),
    ("token_f1", "the dog", "cat", 0.0, True, "token F1 0.00 against 'cat'"),
])
def test_feedback_says_what_was_expected_and_what_was_read(
        metric: str, prediction: str, answer: object, value: float, parsed: bool, feedback: str | None) -> None:
    score = grade(metric, prediction, Task(id="t", answer=answer))
    assert (score.value, score.parsed, score.feedback) == (value, parsed, feedback)


def test_multiple_choice_feedback_names_the_options() -> None:
    task = Task(id="t", inputs={"options": OPTIONS}, answer="Paris")
    assert grade("multiple_choice", "B", task) == Score(
        value=0.0, feedback="picked 'London'; the correct option is 'Paris'")
    unread = grade("multiple_choice", "Not Paris", task)
    assert (unread.value, unread.parsed) == (0.0, False)
    assert unread.feedback == "could not tell which option the answer picks"
    assert grade("multiple_choice", "Paris", task) == Score(value=1.0)


GOOD = "def add(a, b):\n    return a + b\n"


def test_code_tests_feedback_lists_the_failures() -> None:
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) == 5"]
    task = Task(id="t", meta={"tests": tests})
    half = grade("code_tests", GOOD, task)
    assert half.value == 0.5 and half.parsed
    assert half.feedback is not None and half.feedback.startswith("1 of 2 tests failed")
    assert "test 1 failed: AssertionError" in half.feedback
    broken = grade("code_tests", "def add(a, b) return a + b", task)
    assert broken.value == 0.0 and broken.parsed
    assert broken.feedback is not None and "did not load" in broken.feedback and "SyntaxError" in broken.feedback
    empty = grade("code_tests", "", task)
    assert (empty.value, empty.parsed, empty.feedback) == (0.0, False, "no code found in the answer")
    assert grade("code_tests", GOOD, Task(id="t", meta={"tests": tests[:1]})) == Score(value=1.0)
    slow = grade("code_tests", "def add(a, b):\n    while True:\n        pass\n", task, timeout=1.0)
    assert slow.value == 0.0 and slow.feedback is not None and "timed out" in slow.feedback


async def test_async_grading_matches() -> None:
    task = Task(id="t", meta={"tests": ["assert add(2, 2) == 5"]})
    score = await get_metric("code_tests").agrade(GOOD, task)
    assert score.value == 0.0 and score.feedback is not None and "1 of 1 tests failed" in score.feedback
    assert await get_metric("numeric").agrade("12", Task(id="t", answer=12)) == Score(value=1.0)


def test_a_custom_metric_returning_a_float_keeps_working() -> None:
    custom = Metric("half", lambda prediction, task: 0.5)
    task = Task(id="t", answer="x")
    assert custom("anything", task) == 0.5
    assert custom.grade("anything", task) == Score(value=0.5)
    clamped = Metric("loud", lambda prediction, task: Score(value=3.0, feedback="too much"))
    assert clamped("x", task) == 1.0 and clamped.grade("x", task) == Score(value=1.0, feedback="too much")


def test_the_dataset_env_passes_score_feedback_and_parse_marker_on(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "q", "question": "5 + 7?", "answer": 12}) + "\n", encoding="utf-8")
    env = DatasetEnv(path, metric="numeric")
    session = env.session()
    session.reset("q")
    wrong = session.step("11")
    assert (wrong.reward, wrong.feedback, wrong.parsed) == (0.0, "expected 12, got 11", True)
    session.reset("q")
    unread = session.step("no idea")
    assert (unread.reward, unread.feedback, unread.parsed) == (0.0, "no number found in the answer", False)
    session.reset("q")
    right = session.step("12")
    assert (right.reward, right.feedback, right.parsed) == (1.0, None, True)
