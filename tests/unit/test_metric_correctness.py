"""Scores the loop can trust: BIG-bench's own definitions for BIG-bench tasks, and no false positives.

Before: "5 - 3" read as -3, "Not Paris" picked Paris, BIG-bench exact match normalised case and
punctuation, and its 10% numeric match was relative to the larger value (111 passed for 100).
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentforge.envs.datasets.bigbench import BigBenchEnv
from agentforge.envs.datasets.metrics import (
    METRICS,
    choose_option,
    exact_str_match,
    get_metric,
    multiple_choice,
    numeric,
    numeric_match_with_0_1_relative_error,
    parse_number,
)

# ---------------------------------------------------------------- BIG-bench's definitions


@pytest.mark.parametrize(("response", "targets", "score"), [
    ("7", ["7", "seven"], 1.0),
    ("seven", ["7", "seven"], 1.0),
    ("Seven", ["7", "seven"], 0.0),  # no case folding
    ("7.", ["7"], 0.0),  # no punctuation stripping
    (" 7", ["7"], 0.0),  # no whitespace stripping
    ('"7"', ["7"], 0.0),
    ("7", "7", 1.0),  # a single target
    ("5", [5], 1.0),  # non-string targets compare as their text
    ("", ["7"], 0.0),
])
def test_exact_str_match_is_response_in_targets(response: str, targets: Any, score: float) -> None:
    assert exact_str_match(response, targets) == score


def test_case_insensitive_str_match_folds_case_only() -> None:
    assert exact_str_match("Seven", ["seven"], case_sensitive=False) == 1.0
    assert exact_str_match("Seven.", ["seven"], case_sensitive=False) == 0.0


@pytest.mark.parametrize(("response", "target", "score"), [
    ("100", "100", 1.0),
    ("109", "100", 1.0),
    ("110", "100", 1.0),  # exactly 10%
    ("111", "100", 0.0),  # 11% of the target: isclose relative to the larger value let this pass
    ("91", "100", 1.0),
    ("89", "100", 0.0),
    ("-109", "-100", 1.0),
    ("0.05", "0", 1.0),  # absolute error when the target is 0
    ("0.2", "0", 0.0),
    ("1e2", "100", 1.0),
    (" 100\n", "100", 1.0),  # float() accepts surrounding whitespace
    ("about 100", "100", 0.0),  # float(response) fails: not a number
    ("100 apples", "100", 0.0),
    ("nan", "100", 0.0),
    ("inf", "100", 0.0),
    ("105", ["7", "100"], 1.0),  # any target
    ("105", ["x", "100"], 1.0),  # a target that is not a number is skipped
])
def test_numeric_match_with_0_1_relative_error(response: str, target: Any, score: float) -> None:
    assert numeric_match_with_0_1_relative_error(response, target) == score


def _task(tmp_path: Path, preferred: str, examples: list[dict[str, Any]]) -> BigBenchEnv:
    data = {"name": "t", "description": "T.", "keywords": [], "metrics": [preferred], "preferred_score": preferred,
            "examples": examples}
    (tmp_path / "task.json").write_text(json.dumps(data), encoding="utf-8")
    return BigBenchEnv(path=tmp_path)


def _score(env: BigBenchEnv, task_id: str, action: str) -> float:
    session = env.session()
    session.reset(task_id)
    return session.step(action).reward


def test_bigbench_tasks_score_by_bigbench_definitions_by_default(tmp_path: Path) -> None:
    env = _task(tmp_path, "exact_str_match", [{"input": "2+2=", "target": ["4", "four"]}])
    assert env.metric.name == "exact_str_match"
    assert (_score(env, "0", "4"), _score(env, "0", "Four"), _score(env, "0", "4.")) == (1.0, 0.0, 0.0)
    env = _task(tmp_path, "numeric_match_with_0_1_relative_error", [{"input": "about 100?", "target": "100"}])
    assert env.metric.name == "numeric_match_with_0_1_relative_error"
    assert (_score(env, "0", "109"), _score(env, "0", "111")) == (1.0, 0.0)


def test_the_normalised_variants_stay_available_by_name(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    env = BigBenchEnv(path=_task(tmp_path / "a", "exact_str_match", [{"input": "2+2=", "target": "4"}]).path,
                      metric="exact_match")
    assert _score(env, "0", "4.") == 1.0
    loose = get_metric("numeric", rel_tol=0.1)
    assert {"exact_match", "numeric", "exact_str_match", "numeric_match_with_0_1_relative_error"} <= set(METRICS)
    assert loose.scorer is METRICS["numeric"].scorer


# ---------------------------------------------------------------- false positives


@pytest.mark.parametrize(("text", "value"), [
    ("5 - 3", 3.0),
    ("5 -3", 3.0),  # a minus right after a number joins two terms
    ("(5) - 3", 3.0),
    ("5 − 3", 3.0),
    ("- 3", 3.0),  # a list bullet, not a sign
    ("Answer:\n- 42", 42.0),
    ("x = -5", -5.0),
    ("The answer is -3", -3.0),
    ("2 - 3 = -1", -1.0),
    ("from 10 to -3", -3.0),
    ("10, -3", -3.0),
    ("-$5", -5.0),
])
def test_a_spaced_minus_is_not_a_sign(text: str, value: float) -> None:
    assert parse_number(text) == value


def test_subtraction_written_out_never_matches_the_negative_operand() -> None:
    assert numeric("5 - 3", -3) == 0.0
    assert numeric("5 - 3", 3) == 1.0


OPTIONS = ["Paris", "London", "Berlin", "Madrid"]


@pytest.mark.parametrize("prediction", [
    "Not Paris",
    "not paris.",
    "It is not Paris.",
    "It isn't Paris",
    "Definitely not Paris!",
    "Paris is wrong",
    "Paris? No.",
    "Never Paris",
    "Anything but Paris",
])
def test_a_negated_option_is_not_picked(prediction: str) -> None:
    assert choose_option(prediction, OPTIONS) is None
    assert multiple_choice(prediction, "Paris", OPTIONS) == 0.0


def test_an_option_that_itself_says_not_can_still_be_picked() -> None:
    options = ["Not enough information", "Yes", "No"]
    assert choose_option("The answer is: not enough information.", options) == 0
    assert choose_option("I would say not enough information here", options) == 0
    assert choose_option("It is true", ["true", "false"]) == 0
    assert choose_option("It is not true", ["true", "false"]) is None


# Letters a-m only, so no option is itself a word of the templates ("not", "but", "is", ...).
WORD = st.text(alphabet=string.ascii_lowercase[:13], min_size=3, max_size=8)
NEGATIONS = ["not {c}", "Not {c}.", "It is not {c}", "{c} is not right", "definitely not {c}", "It isn't {c}",
             "{c}? no", "never {c}", "{c} is incorrect", "{c} is wrong, sorry", "anything but {c}"]
WRONG = ["{w}", "The answer is {w}.", "I pick {w}", "{w}, not {c}", "not {c} but {w}", "{c} or {w}", "{w} or {c}",
         "Maybe {c}, maybe {w}"]


@settings(max_examples=300, deadline=None)
@given(options=st.lists(WORD, min_size=2, max_size=5, unique=True), data=st.data())
def test_a_wrong_or_negated_answer_never_scores_one(options: list[str], data: st.DataObject) -> None:
    correct = data.draw(st.integers(0, len(options) - 1))
    c = options[correct]
    wrong = [o for o in options if o != c and c not in o and o not in c]
    template = data.draw(st.sampled_from(NEGATIONS + (WRONG if wrong else [])))
    w = data.draw(st.sampled_from(wrong)) if wrong else ""
    prediction = template.format(c=c, w=w)
    assert multiple_choice(prediction, c, options, letters=False) == 0.0, prediction


@settings(max_examples=300, deadline=None)
@given(a=st.integers(0, 10_000), b=st.integers(1, 10_000), gold=st.integers(-10_000, 10_000))
def test_a_wrong_number_never_scores_one(a: int, b: int, gold: int) -> None:
    assert numeric(f"{a} - {b}", -b) == 0.0  # the expression's last number is b, not -b
    if gold != b:
        assert numeric(f"So we get {a} - {b} = {gold}", b) == 0.0  # the last number is the result
    if abs(gold - b) > 0.1 * abs(gold) or (gold == 0 and b > 0.1):
        assert numeric_match_with_0_1_relative_error(str(b), str(gold)) == 0.0
    assert exact_str_match(f"{gold}.", [str(gold)]) == 0.0
