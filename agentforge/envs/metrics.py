"""Scoring functions for single-turn environments: a prediction against a task's hidden answer.

Each metric is a pure function returning a score in [0, 1]:

- ``exact_match(prediction, answer)``: equal after case, whitespace, quote and final-period normalisation;
- ``numeric(prediction, answer)``: the last number in the prediction equals the answer
  (commas, ``$``, ``%`` and fractions such as ``3/4`` understood; relative tolerance 1e-6);
- ``token_f1(prediction, answer)``: SQuAD-style token F1;
- ``multiple_choice(prediction, answer, options)``: the option the prediction picks (by letter, by its
  text, or by containing exactly one option) is a correct one;
- ``code_tests(prediction, tests)``: the Python in the prediction passes the tests, run in the sandbox.

An ``answer`` given as a list means "any of these" (aliases): the best score counts.

Environments score through :class:`Metric` objects, ``metric(prediction, task)``, which take what each
function needs from the task: ``task.answer``, ``task.inputs["options"]``, ``task.meta["tests"]``.
``METRICS`` maps names to them and :func:`get_metric` looks one up (with parameters, e.g.
``get_metric("numeric", rel_tol=0.1)``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import string
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from agentforge.errors import ConfigError

if TYPE_CHECKING:
    from agentforge.envs.base import Task
    from agentforge.safety.sandbox import SandboxResult

__all__ = [
    "METRICS",
    "Metric",
    "acode_tests",
    "choose_option",
    "code_tests",
    "exact_match",
    "get_metric",
    "multiple_choice",
    "normalize_text",
    "numeric",
    "parse_number",
    "token_f1",
]

# ---------------------------------------------------------------- text normalisation

_QUOTES = "\"'`“”‘’«»"


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def normalize_text(value: Any) -> str:
    """Casefold, collapse whitespace, and strip surrounding quotes and a final period."""
    text = " ".join(_as_text(value).split()).casefold()
    previous = None
    while text != previous:
        previous = text
        text = text.strip()
        if text.endswith(".") and not text.endswith(".."):
            text = text[:-1]
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1]
    return text


def _aliases(answer: Any) -> list[Any]:
    """An answer list means any of its items is right."""
    if isinstance(answer, list | tuple | set | frozenset):
        return list(answer)
    return [answer]


# ---------------------------------------------------------------- exact match


def exact_match(prediction: Any, answer: Any) -> float:
    """1.0 if the prediction equals the answer (or one of a list of answers) after normalisation."""
    pred = normalize_text(prediction)
    return float(any(pred == normalize_text(a) for a in _aliases(answer) if a is not None))


# ---------------------------------------------------------------- numeric

_NUMBER = re.compile(
    r"""
    (?:(?<![\w)\]])(?P<sign>[-−+]))?      # a sign, unless it joins two terms ("3-4")
    \s*\$?\s*
    (?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)
    (?:[eE](?P<exp>[-+]?\d+))?
    (?:\s*/\s*(?P<den>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?))?
    """,
    re.VERBOSE,
)


def _match_value(match: re.Match[str]) -> float | None:
    text = match.group("num").replace(",", "")
    if match.group("exp"):
        text += "e" + match.group("exp")
    try:
        value = float(text)
        if match.group("den"):
            den = float(match.group("den").replace(",", ""))
            if den == 0:
                return None
            value = float(Fraction(text) / Fraction(match.group("den").replace(",", "")))
    except (ValueError, OverflowError, ZeroDivisionError):
        return None
    if match.group("sign") in ("-", "−"):
        value = -value
    return value if math.isfinite(value) else None


def parse_number(value: Any) -> float | None:
    """The last number written in ``value`` (``"$1,200"``, ``"-3/4"``, ``"12.5%"``), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Fraction):
        number = float(value)
        return number if math.isfinite(number) else None
    matches = list(_NUMBER.finditer(_as_text(value)))
    for match in reversed(matches):
        number = _match_value(match)
        if number is not None:
            return number
    return None


def numeric(prediction: Any, answer: Any, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> float:
    """1.0 if the last number in the prediction equals the answer within ``rel_tol`` (relative)."""
    pred = parse_number(prediction)
    if pred is None:
        return 0.0
    for alias in _aliases(answer):
        gold = parse_number(alias)
        if gold is not None and math.isclose(pred, gold, rel_tol=rel_tol, abs_tol=abs_tol):
            return 1.0
    return 0.0


# ---------------------------------------------------------------- token F1

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def _squad_tokens(value: Any) -> list[str]:
    text = _as_text(value).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    return _ARTICLES.sub(" ", text).split()


def _f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: Any, answer: Any) -> float:
    """SQuAD token F1 (lowercase, no punctuation or articles); the best over a list of answers."""
    pred = _squad_tokens(prediction)
    return max((_f1(pred, _squad_tokens(a)) for a in _aliases(answer) if a is not None), default=0.0)


# ---------------------------------------------------------------- multiple choice

_LETTERS = string.ascii_uppercase
_ANSWER_LEAD = re.compile(r"^(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:：]?\s*)", re.I)
_LETTER_ONLY = re.compile(r"^[(\[]?([A-Za-z])[)\]]?[.:]?$")
_LETTER_LABEL = re.compile(r"^[(\[]?([A-Z])(?:[)\]]|[.:])\s+\S")


def _letter_index(prediction: str, n_options: int) -> int | None:
    text = _ANSWER_LEAD.sub("", prediction.strip()).strip().strip("*").strip()
    match = _LETTER_ONLY.match(text) or _LETTER_LABEL.match(text)
    if match is None:
        return None
    index = _LETTERS.index(match.group(1).upper())
    return index if index < n_options else None


def _contained_option(prediction: str, normalized: list[str]) -> int | None:
    """The one option whose text appears in the prediction as whole words, if exactly one does."""
    hits = [i for i, opt in enumerate(normalized)
            if opt and re.search(rf"(?<!\w){re.escape(opt)}(?!\w)", prediction)]
    # "cats" contains "cat": keep only hits that are not part of a longer hit.
    hits = [i for i in hits if not any(j != i and normalized[i] in normalized[j] for j in hits)]
    distinct = {normalized[i] for i in hits}
    return hits[0] if len(distinct) == 1 else None


def choose_option(prediction: Any, options: Sequence[Any], *, letters: bool = True) -> int | None:
    """Which option a prediction picks: its exact text, its letter (``B``, ``(B)``, ``Answer: B``; only
    when ``letters``, i.e. the options were shown lettered), or the only option its text contains.
    ``None`` when it picks none or is ambiguous."""
    if isinstance(prediction, int) and not isinstance(prediction, bool):
        return prediction if 0 <= prediction < len(options) else None
    normalized = [normalize_text(o) for o in options]
    pred = normalize_text(prediction)
    if pred in normalized:
        return normalized.index(pred)
    letter = _letter_index(_as_text(prediction), len(options)) if letters else None
    if letter is not None:
        return letter
    stripped = normalize_text(_ANSWER_LEAD.sub("", _as_text(prediction).strip()))
    if stripped in normalized:
        return normalized.index(stripped)
    return _contained_option(pred, normalized)


def _correct_indices(answer: Any, options: Sequence[Any]) -> set[int]:
    normalized = [normalize_text(o) for o in options]
    correct: set[int] = set()
    for alias in _aliases(answer):
        if isinstance(alias, int) and not isinstance(alias, bool):
            if 0 <= alias < len(options):
                correct.add(alias)
            continue
        text = normalize_text(alias)
        if text in normalized:
            correct.update(i for i, o in enumerate(normalized) if o == text)
        elif len(text) == 1 and text.upper() in _LETTERS[: len(options)]:
            correct.add(_LETTERS.index(text.upper()))
    return correct


def multiple_choice(prediction: Any, answer: Any, options: Sequence[Any], *, letters: bool = True) -> float:
    """1.0 if the option the prediction picks is correct. ``answer``: the correct option's text, its
    0-based index, its letter, or a list of these when several options are correct. ``letters``: whether
    a prediction may name an option by its letter (see :func:`choose_option`)."""
    if not options:
        raise ConfigError("multiple_choice needs the task's options (task.inputs['options'])")
    correct = _correct_indices(answer, options)
    if not correct:
        raise ConfigError(f"multiple_choice: answer {answer!r} is none of the options {list(options)!r}")
    chosen = choose_option(prediction, options, letters=letters)
    return float(chosen is not None and chosen in correct)


# ---------------------------------------------------------------- code tests

_HARNESS = """\
import json, sys
_marker = inputs["marker"]
_namespace = {"__name__": "solution", "__builtins__": __builtins__}
try:
    exec(compile(inputs["code"], "solution.py", "exec"), _namespace)
except BaseException as exc:
    print(f"solution failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(_marker + json.dumps({"loaded": False}), flush=True)
    raise SystemExit(0)
print(_marker + json.dumps({"loaded": True}), flush=True)
for _i, _test in enumerate(inputs["tests"]):
    try:
        exec(compile(_test, f"test_{_i}.py", "exec"), _namespace)
        _ok = True
    except BaseException as exc:
        print(f"test {_i} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        _ok = False
    print(_marker + json.dumps({"test": _i, "ok": _ok}), flush=True)
"""


def _tests_list(tests: Any) -> tuple[list[str], bool]:
    """(tests, as_fraction): a string is one all-or-nothing block; a list scores by the fraction passed."""
    if isinstance(tests, str):
        return [tests], False
    if isinstance(tests, list | tuple) and all(isinstance(t, str) for t in tests):
        return list(tests), True
    raise ConfigError(f"code_tests: tests must be a string or a list of strings, got {type(tests).__name__}")


def _harness_inputs(prediction: Any, tests: list[str]) -> dict[str, Any]:
    from agentforge.safety.sandbox import extract_code

    marker = f"@@agentforge-test-{secrets.token_hex(8)}@@"
    return {"code": extract_code(_as_text(prediction)), "tests": tests, "marker": marker}


def _harness_score(result: SandboxResult, marker: str, n_tests: int, as_fraction: bool) -> float:
    passed: dict[int, bool] = {}
    loaded = False
    for line in result.stdout.splitlines():
        if not line.startswith(marker):
            continue
        try:
            record = json.loads(line[len(marker):])
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        if "loaded" in record:
            loaded = bool(record["loaded"])
        else:
            passed[int(record["test"])] = bool(record["ok"])
    if not loaded or n_tests == 0:
        return 0.0
    # A test that never reported (a timeout, a crash, an exit) failed.
    n_passed = sum(passed.get(i, False) for i in range(n_tests))
    if as_fraction:
        return n_passed / n_tests
    return float(n_passed == n_tests)


def code_tests(prediction: Any, tests: Any, *, timeout: float = 10.0, memory_mb: int = 512) -> float:
    """Run the Python in ``prediction`` (a fenced block or the whole text) and then ``tests`` in the
    sandbox. A string of tests scores 1.0 if it all passes, else 0.0; a list scores the fraction of its
    tests that pass. The code runs as a module named ``solution`` (its ``__main__`` block does not run);
    tests share its namespace. A timeout fails every test that had not finished."""
    from agentforge.safety.sandbox import run_python

    test_list, as_fraction = _tests_list(tests)
    inputs = _harness_inputs(prediction, test_list)
    result = run_python(_HARNESS, inputs=inputs, timeout=timeout, memory_mb=memory_mb)
    return _harness_score(result, inputs["marker"], len(test_list), as_fraction)


async def acode_tests(prediction: Any, tests: Any, *, timeout: float = 10.0, memory_mb: int = 512) -> float:
    """Async twin of :func:`code_tests`."""
    from agentforge.safety.sandbox import arun_python

    test_list, as_fraction = _tests_list(tests)
    inputs = _harness_inputs(prediction, test_list)
    result = await arun_python(_HARNESS, inputs=inputs, timeout=timeout, memory_mb=memory_mb)
    return _harness_score(result, inputs["marker"], len(test_list), as_fraction)


# ---------------------------------------------------------------- metrics over tasks

TaskScorer = Callable[..., float]
AsyncTaskScorer = Callable[..., Awaitable[float]]


@dataclass(frozen=True)
class Metric:
    """A named way to score a prediction against a task: ``metric(prediction, task) -> float``.

    ``params`` are passed to the scoring function as keyword arguments (``rel_tol``, ``timeout``).
    ``blocking`` marks metrics that wait on a subprocess; sessions run them off the event loop."""

    name: str
    scorer: TaskScorer
    description: str = ""
    ascorer: AsyncTaskScorer | None = None
    blocking: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, prediction: Any, task: Task) -> float:
        return _clamp(self.scorer(prediction, task, **self.params))

    async def ascore(self, prediction: Any, task: Task) -> float:
        if self.ascorer is not None:
            return _clamp(await self.ascorer(prediction, task, **self.params))
        if self.blocking:
            return await asyncio.to_thread(self, prediction, task)
        return self(prediction, task)

    def with_params(self, **params: Any) -> Metric:
        """The same metric with these keyword arguments bound (checked against the function)."""
        import inspect

        accepted = set(list(inspect.signature(self.scorer).parameters)[2:])
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ConfigError(f"metric '{self.name}' takes no parameter(s) {unknown}; "
                              f"it takes {sorted(accepted) or 'none'}")
        return Metric(self.name, self.scorer, self.description, self.ascorer, self.blocking,
                      {**self.params, **params})


def _clamp(score: float) -> float:
    return min(1.0, max(0.0, float(score)))


def _options(task: Task) -> list[Any]:
    options = task.inputs.get("options")
    if not isinstance(options, list | tuple) or not options:
        raise ConfigError(f"task '{task.id}': multiple_choice needs a non-empty inputs['options'] list")
    return list(options)


def _tests(task: Task) -> Any:
    tests = task.meta.get("tests")
    if tests is None:
        raise ConfigError(f"task '{task.id}': code_tests needs meta['tests'] (a string or a list of asserts)")
    return tests


def _exact_match_task(prediction: Any, task: Task) -> float:
    return exact_match(prediction, task.answer)


def _numeric_task(prediction: Any, task: Task, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> float:
    return numeric(prediction, task.answer, rel_tol=rel_tol, abs_tol=abs_tol)


def _token_f1_task(prediction: Any, task: Task) -> float:
    return token_f1(prediction, task.answer)


def _multiple_choice_task(prediction: Any, task: Task, *, letters: bool = True) -> float:
    return multiple_choice(prediction, task.answer, _options(task), letters=letters)


def _code_tests_task(prediction: Any, task: Task, *, timeout: float = 10.0, memory_mb: int = 512) -> float:
    return code_tests(prediction, _tests(task), timeout=timeout, memory_mb=memory_mb)


async def _acode_tests_task(prediction: Any, task: Task, *, timeout: float = 10.0, memory_mb: int = 512) -> float:
    return await acode_tests(prediction, _tests(task), timeout=timeout, memory_mb=memory_mb)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("exact_match", _exact_match_task, "equal after case/whitespace/quote normalisation"),
        Metric("numeric", _numeric_task, "the last number in the prediction equals the answer"),
        Metric("token_f1", _token_f1_task, "SQuAD token F1"),
        Metric("multiple_choice", _multiple_choice_task, "the option picked (letter, text) is correct"),
        Metric("code_tests", _code_tests_task, "the code passes the task's tests in the sandbox",
               ascorer=_acode_tests_task, blocking=True),
    )
}


def get_metric(name: str | Metric, **params: Any) -> Metric:
    """A metric by name (or the metric itself), with ``params`` bound; unknown names suggest a close one."""
    if isinstance(name, Metric):
        return name.with_params(**params) if params else name
    metric = METRICS.get(name)
    if metric is None:
        close = get_close_matches(str(name), list(METRICS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known metrics: {', '.join(METRICS)}"
        raise ConfigError(f"unknown metric '{name}'{hint}")
    return metric.with_params(**params) if params else metric
