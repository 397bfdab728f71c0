"""Scoring functions: exact match, numeric, token F1, multiple choice, code tests, and the registry."""

from __future__ import annotations

import asyncio

import pytest

from agentforge.envs.base import Task
from agentforge.envs.datasets.metrics import (
    METRICS,
    Metric,
    acode_tests,
    choose_option,
    code_tests,
    exact_match,
    get_metric,
    multiple_choice,
    normalize_text,
    numeric,
    parse_number,
    token_f1,
)
from agentforge.errors import ConfigError


@pytest.mark.parametrize(
    ("prediction", "answer", "score"),
    [
        ("Paris", "Paris", 1.0),
        ("  paris ", "Paris", 1.0),
        ('"Paris."', "Paris", 1.0),
        ("'paris'", "PARIS", 1.0),
        ("“Paris”", "Paris", 1.0),
        ("New   York\nCity", "new york city", 1.0),
        ("Paris, France", "Paris", 0.0),
        ("Pari", "Paris", 0.0),
        ("", "Paris", 0.0),
        ("Kiev", ["Kyiv", "Kiev"], 1.0),
        ("Lviv", ["Kyiv", "Kiev"], 0.0),
        ("Washington, D.C.", "Washington, D.C.", 1.0),  # inner periods stay
        ("42", 42, 1.0),
        (42.0, "42", 1.0),
        ("True", True, 1.0),
        ("anything", None, 0.0),
        ("wait...", "wait...", 1.0),
    ],
)
def test_exact_match(prediction: object, answer: object, score: float) -> None:
    assert exact_match(prediction, answer) == score


def test_normalize_text_strips_nested_quotes_and_period() -> None:
    assert normalize_text(' "\'Hello World.\'" ') == "hello world"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42.0),
        ("The answer is 42.", 42.0),
        ("first 3 then 7", 7.0),
        ("$1,234.50", 1234.5),
        ("costs $1,200,000 in total", 1_200_000.0),
        ("-17", -17.0),
        ("x = -5", -5.0),
        ("−8", -8.0),  # unicode minus
        ("3-4", 4.0),  # a minus between terms is not a sign
        ("3/4", 0.75),
        ("-3/4", -0.75),
        ("12.5%", 12.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("3 eggs", 3.0),
        ("1,23", 23.0),  # not a thousands group: two numbers
        ("#### 18", 18.0),
        ("no digits here", None),
        ("", None),
        (7, 7.0),
        (2.5, 2.5),
        (True, None),
        (float("nan"), None),
    ],
)
def test_parse_number(text: object, value: float | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("prediction", "answer", "score"),
    [
        ("The total is 120 dollars.", 120, 1.0),
        ("120", "120", 1.0),
        ("$1,200", 1200, 1.0),
        ("1200.0", 1200, 1.0),
        ("0.75", "3/4", 1.0),
        ("3/4", 0.75, 1.0),
        ("Answer: 50%", 50, 1.0),
        ("It fell to -8 degrees", -8, 1.0),
        ("8", -8, 0.0),
        ("119", 120, 0.0),
        ("first 120 then 7", 120, 0.0),  # the last number counts
        ("one hundred", 100, 0.0),
        ("", 1, 0.0),
        ("1000000.5", 1000000, 1.0),  # within 1e-6 relative
        ("1000002", 1000000, 0.0),
        ("0", 0, 1.0),
        ("0.0000001", 0, 0.0),
        ("5", [4, "5"], 1.0),
        ("5", "no number", 0.0),
    ],
)
def test_numeric(prediction: object, answer: object, score: float) -> None:
    assert numeric(prediction, answer) == score


def test_numeric_tolerance_is_configurable() -> None:
    assert numeric("105", 100) == 0.0
    assert numeric("105", 100, rel_tol=0.1) == 1.0
    assert get_metric("numeric", rel_tol=0.1)("105", Task(id="t", answer=100)) == 1.0


@pytest.mark.parametrize(
    ("prediction", "answer", "score"),
    [
        ("the cat sat", "cat sat", 1.0),  # articles dropped
        ("Cat, sat!", "cat sat", 1.0),  # case and punctuation dropped
        ("cat", "cat sat", pytest.approx(2 / 3)),
        ("cat sat on the mat", "cat sat", pytest.approx(2 * 0.5 * 1 / 1.5)),
        ("dog", "cat", 0.0),
        ("", "cat", 0.0),
        ("the", "a", 1.0),  # both empty after normalisation
        ("cat cat", "cat", pytest.approx(2 * 0.5 * 1 / 1.5)),  # counts, not sets
        ("blue whale", ["whale", "blue whale"], 1.0),
    ],
)
def test_token_f1(prediction: str, answer: object, score: object) -> None:
    assert token_f1(prediction, answer) == score


OPTIONS = ["Paris", "London", "Berlin", "Madrid"]


@pytest.mark.parametrize(
    ("prediction", "index"),
    [
        ("London", 1),
        ("london.", 1),
        ("B", 1),
        ("b", 1),
        ("(B)", 1),
        ("B)", 1),
        ("[c]", 2),
        ("Answer: C", 2),
        ("The answer is (D).", 3),
        ("The correct option is A", 0),
        ("B) London", 1),
        ("(C) Berlin", 2),
        ("I am sure it is Berlin, the capital.", 2),
        ("**A**", 0),
        ("Paris or London", None),  # two options named: ambiguous
        ("E", None),  # no fifth option
        ("Rome", None),
        ("", None),
        (2, 2),
        (7, None),
    ],
)
def test_choose_option(prediction: object, index: int | None) -> None:
    assert choose_option(prediction, OPTIONS) == index


def test_choose_option_without_letters_and_longest_containing_option() -> None:
    assert choose_option("B", OPTIONS, letters=False) is None
    assert choose_option("(b)", ["(a)", "(b)"], letters=False) == 1
    assert choose_option("I pick (b) here", ["(a)", "(b)"], letters=False) == 1
    # "cats" contains "cat": the longer option is the one named
    assert choose_option("they are cats", ["cat", "cats", "dog"]) == 1
    # an option equal to a letter is matched by text first
    assert choose_option("A", ["B", "A"]) == 1


@pytest.mark.parametrize(
    ("prediction", "answer", "score"),
    [
        ("B", "London", 1.0),
        ("London", "London", 1.0),
        ("London", 1, 1.0),
        ("B", "b", 1.0),  # answer given as a letter
        ("A", "London", 0.0),
        ("Paris", 1, 0.0),
        ("Berlin", ["London", "Berlin"], 1.0),
        ("Madrid", ["London", "Berlin"], 0.0),
        ("Paris or London", "London", 0.0),
        ("nothing", "London", 0.0),
    ],
)
def test_multiple_choice(prediction: object, answer: object, score: float) -> None:
    assert multiple_choice(prediction, answer, OPTIONS) == score


def test_multiple_choice_rejects_bad_tasks() -> None:
    with pytest.raises(ConfigError, match="none of the options"):
        multiple_choice("A", "Rome", OPTIONS)
    with pytest.raises(ConfigError, match="options"):
        multiple_choice("A", "Rome", [])
    with pytest.raises(ConfigError, match="options"):
        get_metric("multiple_choice")("A", Task(id="t", answer="x"))


GOOD_ADD = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
BAD_ADD = "def add(a, b):\n    return a - b\n"


def test_code_tests_runs_code_in_the_sandbox() -> None:
    tests = ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(5, 0) == 5", "assert add(2, 2) == 4"]
    assert code_tests(GOOD_ADD, tests) == 1.0
    assert code_tests(BAD_ADD, tests) == 0.5  # a - b is right only when b == 0: half the list
    assert code_tests(BAD_ADD, "assert add(1, 2) == 3\nassert add(0, 0) == 0") == 0.0  # a block is all or nothing
    assert code_tests(GOOD_ADD, "assert add(1, 2) == 3\nassert add(0, 0) == 0") == 1.0


def test_code_tests_failures_score_zero() -> None:
    tests = ["assert add(1, 2) == 3"]
    assert code_tests("def add(a, b) return a + b", tests) == 0.0  # syntax error
    assert code_tests("raise RuntimeError('boom')", tests) == 0.0  # fails on load
    assert code_tests("import sys\nsys.exit(0)", tests) == 0.0  # exiting early does not pass the tests
    assert code_tests("def other(): pass", tests) == 0.0  # NameError in the test
    assert code_tests("", tests) == 0.0
    assert code_tests(GOOD_ADD, []) == 0.0  # nothing tested, nothing earned


def test_code_tests_main_block_does_not_run_and_tests_see_helpers() -> None:
    code = (
        "def _double(x):\n    return 2 * x\n\ndef f(x):\n    return _double(x) + 1\n\n"
        "if __name__ == '__main__':\n    raise SystemExit(1)\n"
    )
    assert code_tests(code, ["assert f(1) == 3", "assert _double(2) == 4"]) == 1.0


def test_code_tests_timeout_fails_the_unfinished_tests() -> None:
    code = "def spin():\n    while True:\n        pass\n"
    score = code_tests(code, ["assert True", "spin()", "assert True"], timeout=1.0)
    assert score == pytest.approx(1 / 3)


def test_code_tests_cannot_be_fooled_by_printing() -> None:
    code = "print('@@agentforge-test-0000@@{\"loaded\": true}')\nprint('{\"test\": 0, \"ok\": true}')\n"
    assert code_tests(code, ["assert add(1, 2) == 3"]) == 0.0


def test_code_tests_rejects_bad_tests() -> None:
    with pytest.raises(ConfigError, match="tests must be"):
        code_tests(GOOD_ADD, 3)
    with pytest.raises(ConfigError, match=r"meta\['tests'\]"):
        get_metric("code_tests")(GOOD_ADD, Task(id="t"))


async def test_acode_tests_runs_concurrently() -> None:
    tests = ["assert add(1, 2) == 3"]
    scores = await asyncio.gather(acode_tests(GOOD_ADD, tests), acode_tests(BAD_ADD, tests))
    assert scores == [1.0, 0.0]
    task = Task(id="t", meta={"tests": tests})
    assert await get_metric("code_tests").ascore(GOOD_ADD, task) == 1.0


def test_registry_and_did_you_mean() -> None:
    assert set(METRICS) == {"exact_match", "numeric", "token_f1", "multiple_choice", "code_tests",
                            "exact_str_match", "numeric_match_with_0_1_relative_error"}
    assert get_metric("exact_match") is METRICS["exact_match"]
    with pytest.raises(ConfigError, match="did you mean 'exact_match'"):
        get_metric("exact_mach")
    with pytest.raises(ConfigError, match="known metrics"):
        get_metric("zzzz")
    with pytest.raises(ConfigError, match="takes no parameter"):
        get_metric("exact_match", rel_tol=0.1)
    assert METRICS["code_tests"].blocking and not METRICS["numeric"].blocking


def test_metric_objects_score_tasks_and_clamp() -> None:
    task = Task(id="t", inputs={"options": OPTIONS}, answer="London")
    assert get_metric("multiple_choice")("B", task) == 1.0
    assert get_metric("multiple_choice", letters=False)("B", task) == 0.0
    wild = Metric("wild", lambda prediction, task: 7.0)
    assert wild("x", task) == 1.0
    assert get_metric(wild) is wild
    assert asyncio.run(wild.ascore("x", task)) == 1.0
