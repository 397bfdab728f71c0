"""Paired, noise-aware comparison of a candidate with its parent on the same tasks."""

from __future__ import annotations

import random

import pytest

from agentforge.evaluation.comparison import compare_paired, sign_test_p


def rng() -> random.Random:
    return random.Random(0)


def test_a_clear_gain_on_every_task_is_beyond_noise() -> None:
    parent = {f"t{i}": 0.0 for i in range(30)}
    child = {f"t{i}": 1.0 for i in range(30)}
    result = compare_paired(parent, child, rng=rng())
    assert result.mean_diff == 1.0 and result.ci_low == 1.0
    assert result.wins == 30 and result.losses == 0
    assert result.improved("bootstrap") and result.improved("sign")


def test_a_gain_on_one_task_of_thirty_is_noise() -> None:
    parent = {f"t{i}": 0.0 for i in range(30)}
    child = {**parent, "t0": 1.0}
    result = compare_paired(parent, child, rng=rng())
    assert result.mean_diff == pytest.approx(1 / 30)
    assert not result.improved("bootstrap") and not result.improved("sign")


def test_equal_wins_and_losses_are_not_an_improvement_even_with_a_higher_mean() -> None:
    # Three big wins and three small losses: the mean rises, the sign test sees a coin toss.
    parent = {f"t{i}": 0.5 for i in range(6)}
    child = {"t0": 1.0, "t1": 1.0, "t2": 1.0, "t3": 0.4, "t4": 0.4, "t5": 0.4}
    result = compare_paired(parent, child, rng=rng())
    assert result.mean_diff > 0
    assert result.sign_p == pytest.approx(0.65625)
    assert not result.improved("sign")


def test_only_the_shared_tasks_are_compared() -> None:
    parent = {"a": 0.0, "b": 0.0, "only_parent": 1.0}
    child = {"a": 1.0, "b": 1.0, "only_child": 0.0}
    result = compare_paired(parent, child, rng=rng())
    assert result.n == 2 and result.mean_diff == 1.0


def test_repeats_are_averaged_per_task_before_pairing() -> None:
    parent = {"a": [0.0, 1.0], "b": [1.0, 1.0]}
    child = {"a": [1.0, 1.0], "b": 1.0}
    result = compare_paired(parent, child, rng=rng())
    assert result.mean_diff == pytest.approx(0.25)
    assert (result.wins, result.ties) == (1, 1)


def test_the_same_seed_gives_the_same_interval() -> None:
    parent = {f"t{i}": float(i % 2) for i in range(20)}
    child = {f"t{i}": float(i % 3 == 0) for i in range(20)}
    first = compare_paired(parent, child, rng=random.Random(7))
    second = compare_paired(parent, child, rng=random.Random(7))
    assert (first.ci_low, first.ci_high) == (second.ci_low, second.ci_high)
    assert first.ci_low <= first.mean_diff <= first.ci_high


def test_the_sign_test_is_the_exact_binomial_tail() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(5, 0) == pytest.approx(1 / 32)
    assert sign_test_p(4, 1) == pytest.approx(6 / 32)
    assert sign_test_p(0, 5) == 1.0


@pytest.mark.parametrize(("parent", "child", "message"), [
    ({"a": 1.0}, {"b": 1.0}, "share no task ids"),
    ({"a": []}, {"a": 1.0}, "has no scores"),
])
def test_comparisons_that_cannot_be_made_say_why(parent: dict, child: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare_paired(parent, child, rng=rng())


def test_an_unknown_acceptance_method_is_refused() -> None:
    result = compare_paired({"a": 0.0}, {"a": 1.0}, rng=rng())
    with pytest.raises(ValueError, match="unknown acceptance method"):
        result.improved("vote")  # type: ignore[arg-type]
