"""Scoring functions for single-turn environments: a prediction against a task's hidden answer.

Each metric scores in [0, 1]:

- ``exact_match(prediction, answer)``: equal after case, whitespace, quote and final-period normalisation;
- ``exact_str_match(prediction, answer)``: BIG-bench's ``exact_str_match``, ``prediction in targets``, exact,
  with no normalisation at all (``case_sensitive=False`` gives its ``case_insensitive_str_match``);
- ``numeric(prediction, answer)``: the last number in the prediction equals the answer
  (commas, ``$``, ``%`` and fractions such as ``3/4`` understood; relative tolerance 1e-6). A minus is a
  sign only when it touches its number and does not follow another term: ``"5 - 3"`` reads 3;
- ``numeric_match_with_0_1_relative_error(prediction, answer)``: BIG-bench's: ``float(prediction)`` is
  within 10% of a target, relative to the target (absolute when the target is 0);
- ``token_f1(prediction, answer)``: SQuAD-style token F1;
- ``multiple_choice(prediction, answer, options)``: the option the prediction picks (by letter, by its
  text, or by naming exactly one option, not negated: "Not Paris" picks nothing) is a correct one;
- ``code_tests(prediction, tests)``: the Python in the prediction passes the tests, run in the sandbox.

BIG-bench tasks score with BIG-bench's definitions by default, so numbers compare with published ones;
``exact_match`` and ``numeric`` are their normalised variants, chosen by name.

An ``answer`` given as a list means "any of these" (aliases): the best score counts.

Environments score through :class:`Metric` objects, which take what each function needs from the task
(``task.answer``, ``task.inputs["options"]``, ``task.meta["tests"]``). ``metric.grade(prediction, task)``
returns a :class:`~agentforge.envs.base.Score`: the value, feedback an optimizer can learn from
(``"expected 12, got 11"``, ``"1 of 2 tests failed: ..."``) and ``parsed``, which is False when no answer
could be read from the prediction at all (empty, no number, no option picked, no code); the dataset env
passes both on in its ``StepResult`` and the evaluator records an unparsed answer as a typed error.
``metric(prediction, task)`` returns the value alone. A scoring function (a custom one too) may return a
float or a ``Score``. ``METRICS`` maps names to metrics and :func:`get_metric` looks one up (with
parameters, e.g. ``get_metric("numeric", rel_tol=0.1)``).
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

from agentforge.envs.base import Score
from agentforge.errors import ConfigError

if TYPE_CHECKING:
    from agentforge.envs.base import Task
    from agentforge.sandbox import SandboxResult

__all__ = [
    "METRICS",
    "Metric",
    "acode_tests",
    "choose_option",
    "code_tests",
    "exact_match",
    "exact_str_match",
    "get_metric",
    "multiple_choice",
    "normalize_text",
    "numeric",
    "numeric_match_with_0_1_relative_error",
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


# ---------------------------------------------------------------- feedback text

_SHOWN = 80


def _quote(value: Any) -> str:
    text = _as_text(value)
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _expected(items: Sequence[str], *, exactly: bool = False) -> str:
    lead = "expected exactly " if exactly else "expected "
    if len(items) == 1:
        return lead + items[0]
    shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
    return f"{lead}one of {shown}"


_EMPTY = Score(value=0.0, feedback="the answer is empty", parsed=False)


# ---------------------------------------------------------------- exact match


def _grade_exact_match(prediction: Any, answer: Any) -> Score:
    pred = normalize_text(prediction)
    if not pred:
        return _EMPTY
    golds = [a for a in _aliases(answer) if a is not None]
    if not golds:
        return Score(value=0.0, feedback="the task has no answer to compare with")
    if any(pred == normalize_text(a) for a in golds):
        return Score(value=1.0)
    got = _quote(_as_text(prediction).strip())
    return Score(value=0.0, feedback=f"{_expected([_quote(a) for a in golds])}, got {got}")


def exact_match(prediction: Any, answer: Any) -> float:
    """1.0 if the prediction equals the answer (or one of a list of answers) after normalisation."""
    return _grade_exact_match(prediction, answer).value


def _grade_exact_str_match(prediction: Any, answer: Any, *, case_sensitive: bool = True) -> Score:
    response = _as_text(prediction)
    if not response.strip():
        return _EMPTY
    targets = [_as_text(a) for a in _aliases(answer) if a is not None]
    if not case_sensitive:
        if response.lower() in [t.lower() for t in targets]:
            return Score(value=1.0)
    elif response in targets:
        return Score(value=1.0)
    return Score(value=0.0, feedback=f"{_expected([_quote(t) for t in targets], exactly=True)}, got {_quote(response)}")


def exact_str_match(prediction: Any, answer: Any, *, case_sensitive: bool = True) -> float:
    """BIG-bench's ``exact_str_match``: 1.0 if the prediction is one of the targets, character for character."""
    return _grade_exact_str_match(prediction, answer, case_sensitive=case_sensitive).value


# ---------------------------------------------------------------- numeric

_NUMBER = re.compile(
    r"""
    (?:(?<![\w)\]])(?P<sign>[-−+])(?=\$?\.?\d))?   # a sign touching its number, unless it joins two terms ("3-4")
    \$?\s*
    (?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)
    (?:[eE](?P<exp>[-+]?\d+))?
    (?:\s*/\s*(?P<den>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?))?
    """,
    re.VERBOSE,
)
# What a minus after it subtracts from ("5 -3", "(5) - 3"), so the minus is an operator, not a sign.
_TERM_END = re.compile(r"[\d)\]%]\s*$")


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
    negative = match.group("sign") in ("-", "−") and not _TERM_END.search(match.string, 0, match.start())
    if negative:
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


def _grade_numeric(prediction: Any, answer: Any, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> Score:
    if isinstance(prediction, str) and not prediction.strip():
        return _EMPTY
    pred = parse_number(prediction)
    if pred is None:
        return Score(value=0.0, feedback="no number found in the answer", parsed=False)
    golds = [g for g in (parse_number(a) for a in _aliases(answer)) if g is not None]
    if not golds:
        return Score(value=0.0, feedback=f"the task's answer {_quote(answer)} is not a number")
    if any(math.isclose(pred, gold, rel_tol=rel_tol, abs_tol=abs_tol) for gold in golds):
        return Score(value=1.0)
    return Score(value=0.0, feedback=f"{_expected([_number(g) for g in golds])}, got {_number(pred)}")


def numeric(prediction: Any, answer: Any, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> float:
    """1.0 if the last number in the prediction equals the answer within ``rel_tol`` (relative)."""
    return _grade_numeric(prediction, answer, rel_tol=rel_tol, abs_tol=abs_tol).value


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _grade_relative_numeric(prediction: Any, answer: Any, *, max_relative_error: float = 0.1) -> Score:
    text = _as_text(prediction)
    if not text.strip():
        return _EMPTY
    response = None if isinstance(prediction, bool) else _float(text)
    if response is None:
        return Score(value=0.0, feedback=f"the answer is not a number: {_quote(text)}", parsed=False)
    targets = [t for t in (_float(a) for a in _aliases(answer) if not isinstance(a, bool)) if t is not None]
    if not targets:
        return Score(value=0.0, feedback=f"the task's answer {_quote(answer)} is not a number")
    for target in targets:
        error = abs(response - target) / abs(target) if target != 0 else abs(response)
        if error <= max_relative_error:
            return Score(value=1.0)
    percent = f"{max_relative_error * 100:g}%"
    return Score(value=0.0, feedback=f"{_expected([_number(t) for t in targets])} within {percent}, "
                                     f"got {_number(response)}")


def numeric_match_with_0_1_relative_error(prediction: Any, answer: Any, *, max_relative_error: float = 0.1) -> float:
    """BIG-bench's metric of that name: ``float(prediction)`` is within 10% of a target, relative to the
    target (absolute when the target is 0). The whole prediction must be a number: "about 5" scores 0."""
    return _grade_relative_numeric(prediction, answer, max_relative_error=max_relative_error).value


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


def _grade_token_f1(prediction: Any, answer: Any) -> Score:
    if not _as_text(prediction).strip():
        return _EMPTY
    pred = _squad_tokens(prediction)
    golds = [a for a in _aliases(answer) if a is not None]
    best, best_gold = max(((_f1(pred, _squad_tokens(a)), a) for a in golds), key=lambda x: x[0],
                          default=(0.0, None))
    if best >= 1.0:
        return Score(value=1.0)
    against = _quote(best_gold) if best_gold is not None else "no answer"
    return Score(value=best, feedback=f"token F1 {best:.2f} against {against}")


def token_f1(prediction: Any, answer: Any) -> float:
    """SQuAD token F1 (lowercase, no punctuation or articles); the best over a list of answers."""
    return _grade_token_f1(prediction, answer).value


# ---------------------------------------------------------------- multiple choice

_LETTERS = string.ascii_uppercase
_ANSWER_LEAD = re.compile(r"^(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:：]?\s*)", re.I)
_LETTER_ONLY = re.compile(r"^[(\[]?([A-Za-z])[)\]]?[.:]?$")
_LETTER_LABEL = re.compile(r"^[(\[]?([A-Z])(?:[)\]]|[.:])\s+\S")
# Words that turn naming an option into rejecting it ("Not Paris", "Paris is wrong"). Searched in the
# prediction with the named option taken out, so an option that itself says "not" can still be picked.
_NEGATION = re.compile(
    r"\b(?:not|no|never|neither|nor|none|cannot|wrong|incorrect|false|except|unlike|anything but|rather than"
    r"|instead of|other than)\b|n[’']t\b",
    re.I,
)


def _letter_index(prediction: str, normalized: list[str]) -> int | None:
    text = _ANSWER_LEAD.sub("", prediction.strip()).strip().strip("*").strip()
    match = _LETTER_ONLY.match(text)
    if match is None:
        match = _LETTER_LABEL.match(text)
        if match is not None:  # "B) London" names B; "B) is wrong" does not
            rest = normalize_text(text[match.end(1):].lstrip(")].:"))
            if rest not in normalized and _NEGATION.search(rest):
                return None
    if match is None:
        return None
    index = _LETTERS.index(match.group(1).upper())
    return index if index < len(normalized) else None


def _named(option: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(option)}(?!\w)")


def _contained_option(prediction: str, normalized: list[str]) -> int | None:
    """The one option whose text appears in the prediction as whole words, if exactly one does and the
    prediction does not negate it."""
    hits = [i for i, opt in enumerate(normalized) if opt and _named(opt).search(prediction)]
    # "cats" contains "cat": keep only hits that are not part of a longer hit.
    hits = [i for i in hits if not any(j != i and normalized[i] in normalized[j] for j in hits)]
    distinct = {normalized[i] for i in hits}
    if len(distinct) != 1:
        return None
    rest = _named(normalized[hits[0]]).sub(" ", prediction)
    return None if _NEGATION.search(rest) else hits[0]


def choose_option(prediction: Any, options: Sequence[Any], *, letters: bool = True) -> int | None:
    """Which option a prediction picks: its exact text, its letter (``B``, ``(B)``, ``Answer: B``; only
    when ``letters``, i.e. the options were shown lettered), or the only option its text names, unless the
    prediction negates it (``"Not Paris"``, ``"Paris is wrong"``). ``None`` when it picks none or is ambiguous."""
    if isinstance(prediction, int) and not isinstance(prediction, bool):
        return prediction if 0 <= prediction < len(options) else None
    normalized = [normalize_text(o) for o in options]
    pred = normalize_text(prediction)
    if pred in normalized:
        return normalized.index(pred)
    letter = _letter_index(_as_text(prediction), normalized) if letters else None
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


def _grade_multiple_choice(prediction: Any, answer: Any, options: Sequence[Any], *, letters: bool = True) -> Score:
    if not options:
        raise ConfigError("multiple_choice needs the task's options (task.inputs['options'])")
    correct = _correct_indices(answer, options)
    if not correct:
        raise ConfigError(f"multiple_choice: answer {answer!r} is none of the options {list(options)!r}")
    if not _as_text(prediction).strip():
        return _EMPTY
    chosen = choose_option(prediction, options, letters=letters)
    if chosen is None:
        return Score(value=0.0, feedback="could not tell which option the answer picks", parsed=False)
    if chosen in correct:
        return Score(value=1.0)
    right = [_quote(options[i]) for i in sorted(correct)]
    which = f"the correct option is {right[0]}" if len(right) == 1 else f"the correct options are {', '.join(right)}"
    return Score(value=0.0, feedback=f"picked {_quote(options[chosen])}; {which}")


def multiple_choice(prediction: Any, answer: Any, options: Sequence[Any], *, letters: bool = True) -> float:
    """1.0 if the option the prediction picks is correct. ``answer``: the correct option's text, its
    0-based index, its letter, or a list of these when several options are correct. ``letters``: whether
    a prediction may name an option by its letter (see :func:`choose_option`)."""
    return _grade_multiple_choice(prediction, answer, options, letters=letters).value


# ---------------------------------------------------------------- code tests

_HARNESS = """\
import json, sys
_marker = inputs["marker"]
_namespace = {"__name__": "solution", "__builtins__": __builtins__}
def _why(exc):
    return f"{type(exc).__name__}: {exc}"[:300]
try:
    exec(compile(inputs["code"], "solution.py", "exec"), _namespace)
except BaseException as exc:
    print(f"solution failed: {_why(exc)}", file=sys.stderr)
    print(_marker + json.dumps({"loaded": False, "error": _why(exc)}), flush=True)
    raise SystemExit(0)
print(_marker + json.dumps({"loaded": True}), flush=True)
for _i, _test in enumerate(inputs["tests"]):
    try:
        exec(compile(_test, f"test_{_i}.py", "exec"), _namespace)
        _ok, _error = True, None
    except BaseException as exc:
        print(f"test {_i} failed: {_why(exc)}", file=sys.stderr)
        _ok, _error = False, _why(exc)
    print(_marker + json.dumps({"test": _i, "ok": _ok, "error": _error}), flush=True)
"""
_FAILURES_SHOWN = 3


def _tests_list(tests: Any) -> tuple[list[str], bool]:
    """(tests, as_fraction): a string is one all-or-nothing block; a list scores by the fraction passed."""
    if isinstance(tests, str):
        return [tests], False
    if isinstance(tests, list | tuple) and all(isinstance(t, str) for t in tests):
        return list(tests), True
    raise ConfigError(f"code_tests: tests must be a string or a list of strings, got {type(tests).__name__}")


def _harness_inputs(prediction: Any, tests: list[str]) -> dict[str, Any]:
    from agentforge.sandbox import extract_code

    marker = f"@@agentforge-test-{secrets.token_hex(8)}@@"
    return {"code": extract_code(_as_text(prediction)), "tests": tests, "marker": marker}


_NO_CODE = Score(value=0.0, feedback="no code found in the answer", parsed=False)


def _harness_score(result: SandboxResult, marker: str, n_tests: int, as_fraction: bool,
                   timeout: float) -> Score:
    outcomes: dict[int, tuple[bool, str | None]] = {}
    loaded: bool | None = None
    load_error: str | None = None
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
            load_error = record.get("error")
        else:
            outcomes[int(record["test"])] = (bool(record["ok"]), record.get("error"))
    timed_out = f"timed out after {timeout:g} s" if result.timed_out else "stopped before reporting"
    if not loaded:
        why = load_error if loaded is False else timed_out
        return Score(value=0.0, feedback=f"the code did not load: {why}")
    if n_tests == 0:
        return Score(value=0.0, feedback="there are no tests to run")
    # A test that never reported (a timeout, a crash, an exit) failed.
    failures = [f"test {i} failed: {outcomes[i][1]}" if i in outcomes else f"test {i} {timed_out}"
                for i in range(n_tests) if not outcomes.get(i, (False, None))[0]]
    n_passed = n_tests - len(failures)
    value = n_passed / n_tests if as_fraction else float(n_passed == n_tests)
    if not failures:
        return Score(value=value)
    shown = "; ".join(failures[:_FAILURES_SHOWN]) + ("; ..." if len(failures) > _FAILURES_SHOWN else "")
    return Score(value=value, feedback=f"{len(failures)} of {n_tests} tests failed: {shown}")


def _grade_code_tests(prediction: Any, tests: Any, *, timeout: float = 10.0, memory_mb: int = 512) -> Score:
    from agentforge.sandbox import run_python

    test_list, as_fraction = _tests_list(tests)
    inputs = _harness_inputs(prediction, test_list)
    if not inputs["code"].strip():
        return _NO_CODE
    result = run_python(_HARNESS, inputs=inputs, timeout=timeout, memory_mb=memory_mb)
    return _harness_score(result, inputs["marker"], len(test_list), as_fraction, timeout)


async def _agrade_code_tests(prediction: Any, tests: Any, *, timeout: float = 10.0, memory_mb: int = 512) -> Score:
    from agentforge.sandbox import arun_python

    test_list, as_fraction = _tests_list(tests)
    inputs = _harness_inputs(prediction, test_list)
    if not inputs["code"].strip():
        return _NO_CODE
    result = await arun_python(_HARNESS, inputs=inputs, timeout=timeout, memory_mb=memory_mb)
    return _harness_score(result, inputs["marker"], len(test_list), as_fraction, timeout)


def code_tests(prediction: Any, tests: Any, *, timeout: float = 10.0, memory_mb: int = 512) -> float:
    """Run the Python in ``prediction`` (a fenced block or the whole text) and then ``tests`` in the
    sandbox. A string of tests scores 1.0 if it all passes, else 0.0; a list scores the fraction of its
    tests that pass. The code runs as a module named ``solution`` (its ``__main__`` block does not run);
    tests share its namespace. A timeout fails every test that had not finished."""
    return _grade_code_tests(prediction, tests, timeout=timeout, memory_mb=memory_mb).value


async def acode_tests(prediction: Any, tests: Any, *, timeout: float = 10.0, memory_mb: int = 512) -> float:
    """Async twin of :func:`code_tests`."""
    return (await _agrade_code_tests(prediction, tests, timeout=timeout, memory_mb=memory_mb)).value


# ---------------------------------------------------------------- metrics over tasks

TaskScorer = Callable[..., float | Score]
AsyncTaskScorer = Callable[..., Awaitable[float | Score]]


@dataclass(frozen=True)
class Metric:
    """A named way to score a prediction against a task.

    ``grade(prediction, task) -> Score`` (value, feedback, parsed); ``metric(prediction, task) -> float``
    is its value. ``scorer(prediction, task, **params)`` may return a float or a ``Score``; values are
    clamped to [0, 1]. ``params`` are its keyword arguments (``rel_tol``, ``timeout``). ``blocking`` marks
    metrics that wait on a subprocess; sessions run them off the event loop."""

    name: str
    scorer: TaskScorer
    description: str = ""
    ascorer: AsyncTaskScorer | None = None
    blocking: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, prediction: Any, task: Task) -> float:
        return self.grade(prediction, task).value

    def grade(self, prediction: Any, task: Task) -> Score:
        return _as_score(self.scorer(prediction, task, **self.params))

    async def agrade(self, prediction: Any, task: Task) -> Score:
        if self.ascorer is not None:
            return _as_score(await self.ascorer(prediction, task, **self.params))
        if self.blocking:
            return await asyncio.to_thread(self.grade, prediction, task)
        return self.grade(prediction, task)

    async def ascore(self, prediction: Any, task: Task) -> float:
        return (await self.agrade(prediction, task)).value

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


def _as_score(result: float | Score) -> Score:
    if isinstance(result, Score):
        value = _clamp(result.value)
        return result if value == result.value else result.model_copy(update={"value": value})
    return Score(value=_clamp(result))


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


def _exact_match_task(prediction: Any, task: Task) -> Score:
    return _grade_exact_match(prediction, task.answer)


def _exact_str_match_task(prediction: Any, task: Task, *, case_sensitive: bool = True) -> Score:
    return _grade_exact_str_match(prediction, task.answer, case_sensitive=case_sensitive)


def _numeric_task(prediction: Any, task: Task, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> Score:
    return _grade_numeric(prediction, task.answer, rel_tol=rel_tol, abs_tol=abs_tol)


def _relative_numeric_task(prediction: Any, task: Task, *, max_relative_error: float = 0.1) -> Score:
    return _grade_relative_numeric(prediction, task.answer, max_relative_error=max_relative_error)


def _token_f1_task(prediction: Any, task: Task) -> Score:
    return _grade_token_f1(prediction, task.answer)


def _multiple_choice_task(prediction: Any, task: Task, *, letters: bool = True) -> Score:
    return _grade_multiple_choice(prediction, task.answer, _options(task), letters=letters)


def _code_tests_task(prediction: Any, task: Task, *, timeout: float = 10.0, memory_mb: int = 512) -> Score:
    return _grade_code_tests(prediction, _tests(task), timeout=timeout, memory_mb=memory_mb)


async def _acode_tests_task(prediction: Any, task: Task, *, timeout: float = 10.0, memory_mb: int = 512) -> Score:
    return await _agrade_code_tests(prediction, _tests(task), timeout=timeout, memory_mb=memory_mb)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("exact_match", _exact_match_task, "equal after case/whitespace/quote normalisation"),
        Metric("exact_str_match", _exact_str_match_task,
               "BIG-bench's: the prediction is one of the targets, exactly (case_sensitive=False folds case)"),
        Metric("numeric", _numeric_task, "the last number in the prediction equals the answer"),
        Metric("numeric_match_with_0_1_relative_error", _relative_numeric_task,
               "BIG-bench's: float(prediction) within 10% of the target, relative to the target"),
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
