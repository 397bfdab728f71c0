"""Wordle: the marks, the parser, the guess budget."""

from __future__ import annotations

import pytest

from agentforge.envs.games.wordle import GUESSES, WORDS, WordleEnv, feedback, parse_guess


@pytest.mark.parametrize(("guess", "secret", "marks"), [
    ("crane", "crane", "GGGGG"),
    ("eerie", "crane", "--Y-G"),   # one E in the secret: only the green E counts
    ("kebab", "abbey", "-YGYY"),   # two Bs in the secret: both guessed Bs are marked
    ("speed", "abide", "--Y-Y"),   # the first E takes the secret's only E
    ("llama", "hello", "YY---"),
    ("otter", "other", "GG-GG"),
    ("aabbb", "bbaaa", "YYYY-"),
])
def test_feedback_handles_repeated_letters_like_wordle(guess: str, secret: str, marks: str) -> None:
    assert feedback(guess, secret) == marks


def test_word_list() -> None:
    assert len(WORDS) == len(set(WORDS)) >= 800
    assert all(len(w) == 5 and w.isalpha() and w.islower() for w in WORDS)


@pytest.mark.parametrize(("action", "word"), [
    ("crane", "crane"), ("guess CRANE", "crane"), ("Guess: crane", "crane"), ("Action: guess crane", "crane"),
    ("'crane'", "crane"), ("crane.", "crane"), ("c r a n e", "crane"), ("guess C R A N E", "crane"),
    ("crane slate", None), ("", None), ("12345", None), ("c r a n", None),
])
def test_parse_guess(action: str, word: str | None) -> None:
    assert parse_guess(action) == word


def test_six_wrong_guesses_end_the_game_with_partial_credit() -> None:
    env = WordleEnv(num_tasks=5)
    task = env.tasks()[0]
    wrong = [w for w in WORDS if w != task.answer][:GUESSES]
    session = env.session()
    first = session.reset(task.id)
    assert "6 guesses" in first.text and first.fields == {"guesses_left": 6}
    assert session.step("xyzzy").info == {"invalid": True}  # not a word: no guess used
    for n, word in enumerate(wrong, start=1):
        result = session.step(word)
        assert result.reward == 0.0
        assert result.done is (n == GUESSES)
        assert f"Guess {n}/{GUESSES}: {word.upper()}" in result.observation.text
    assert result.info["solved"] is False and 0.0 <= result.info["partial"] < 1.0
    assert str(task.answer).upper() in result.observation.text


def test_solving_scores_one() -> None:
    env = WordleEnv(num_tasks=5, seed=9)
    task = env.tasks()[1]
    session = env.session()
    session.reset(task.id)
    result = session.step(f"guess {task.answer}")
    assert (result.reward, result.done, result.info["guesses"]) == (1.0, True, 1)
    assert "Solved" in result.observation.text
