"""BIG-bench JSON tasks as single-turn environments.

A task is a ``task.json`` in BIG-bench's format: ``examples`` (each an ``input`` with a ``target``
string or list, and/or ``target_scores`` mapping each choice to a score), ``metrics``,
``preferred_score``, ``task_prefix``, ``example_input_prefix`` (default ``"\\nQ: "``),
``example_output_prefix`` (default ``"\\nA: "``), ``choice_prefix`` (default ``"\\n  choice: "``),
``append_choices_to_input`` (default true), ``output_regex`` and ``stop_string``. A task without
``examples`` is a container: its subfolders hold one ``task.json`` per subtask.

The prompt is built as BIG-bench builds it (zero-shot): task prefix, input prefix, input, the choices
(when the example has ``target_scores`` and the task appends them), output prefix. The choices are
shuffled with a per-example seed, as BIG-bench does, since many tasks list the right one first.

Scoring follows BIG-bench's preferred metric with BIG-bench's own definitions, so scores compare with
published ones: ``multiple_choice_grade`` (and the other multiple-choice metrics) -> ``multiple_choice``
over the choices (right = the highest score); ``exact_str_match`` -> ``exact_str_match`` (the response is
one of the targets, exactly: no case folding, no punctuation or whitespace stripping);
``case_insensitive_str_match`` -> the same with ``case_sensitive=False``;
``numeric_match_with_0_1_relative_error`` -> that metric (``float(response)`` within 10% of the target,
relative to the target); ``bleu``/``rouge``/``bleurt``/``sequence_f1`` -> ``token_f1`` (an approximation).
Pass ``metric="exact_match"`` or ``metric="numeric"`` (with ``metric_params``) for the normalised variants.
Generative answers are cut at ``stop_string`` and reduced to the first ``output_regex`` match before
scoring, as in BIG-bench.

Task files come from a path, or by name from the ``bigbench`` package's ``benchmark_tasks`` folder (or
the folder named by ``AGENTFORGE_BIGBENCH_DIR``). agentforge ships no BIG-bench data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from agentforge.envs.base import Task
from agentforge.envs.datasets.dataset import (
    SingleTurnEnv,
    content_id,
    default_instruction,
    sample_indices,
    split_ids,
)
from agentforge.errors import EnvError, Problem, SpecError

__all__ = ["BIGBENCH_DIR_ENV", "INSTALL_HINT", "BigBenchEnv", "bigbench_tasks_dir", "find_task_file", "postprocess"]

BIGBENCH_DIR_ENV = "AGENTFORGE_BIGBENCH_DIR"
INSTALL_HINT = (
    "install them without BIG-bench's heavy dependencies: `pip install --no-deps bigbench==1.0.0` "
    "(pip < 26; about 1.5 min, 1.8 GB); pip 26 refuses that sdist from PyPI, so with pip 26 fetch it with an "
    "older pip (`pip download --no-deps bigbench==1.0.0 -d /tmp/bb`) and run "
    "`pip install --no-deps /tmp/bb/bigbench-1.0.0.tar.gz`; "
    f"or extract bigbench/benchmark_tasks from the sdist and set {BIGBENCH_DIR_ENV} to that folder; "
    "or give the task.json's path instead of a name (see envs/data/README.md)"
)

_MC_METRICS = {
    "multiple_choice_grade", "calibration_multiple_choice_brier_score", "expected_calibration_error",
    "weighted_log_probabilities", "weighted_probabilities", "macro_f1",
}
_GENERATIVE_METRICS: dict[str, tuple[str, dict[str, Any]]] = {
    "exact_str_match": ("exact_str_match", {}),
    "case_insensitive_str_match": ("exact_str_match", {"case_sensitive": False}),
    "sequence_f1": ("token_f1", {}),
    "bleu": ("token_f1", {}),
    "bleurt": ("token_f1", {}),
    "rouge": ("token_f1", {}),
    "rougeLsum": ("token_f1", {}),
    "numeric_match_with_0_1_relative_error": ("numeric_match_with_0_1_relative_error", {}),
}
_MC_INSTRUCTION = "Answer with the text of the correct choice."


def bigbench_tasks_dir() -> Path | None:
    """The folder holding BIG-bench's tasks: ``$AGENTFORGE_BIGBENCH_DIR``, else the installed package's
    ``bigbench/benchmark_tasks`` (found without importing the package), else None."""
    configured = os.environ.get(BIGBENCH_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    spec = importlib.util.find_spec("bigbench")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "benchmark_tasks"
        if folder.is_dir():
            return folder
    return None


def find_task_file(name: str) -> Path:
    """``benchmark_tasks/<name>/task.json`` of an installed BIG-bench; ``name`` may be ``task/subtask``."""
    root = bigbench_tasks_dir()
    if root is None:
        raise EnvError(f"BIG-bench task '{name}' needs BIG-bench's task files, which are not installed; "
                       f"{INSTALL_HINT}", env="bigbench", task=name)
    if not root.is_dir():
        raise EnvError(f"{BIGBENCH_DIR_ENV}={root} is not a folder; point it at bigbench/benchmark_tasks",
                       env="bigbench")
    file = root / name / "task.json"
    if not file.is_file():
        parent = root / name.split("/")[0]
        choices = ([p.parent.name for p in parent.glob("*/task.json")] if "/" in name and parent.is_dir()
                   else [p.parent.name for p in root.glob("*/task.json")])
        close = get_close_matches(name.split("/")[-1], choices, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise EnvError(f"no BIG-bench task '{name}' in {root}{hint}", env="bigbench", task=name)
    return file


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError([Problem("BIG-bench task file not found", file=str(file), code="not_found")]) from None
    except json.JSONDecodeError as exc:
        raise SpecError([Problem(f"invalid JSON: {exc.msg} (column {exc.colno})", file=str(file), line=exc.lineno,
                                 code="json")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(f"cannot read file: {exc}", file=str(file), code="unreadable")]) from exc
    if not isinstance(data, dict):
        raise SpecError([Problem("a BIG-bench task.json must be a JSON object", file=str(file), line=1)])
    return data


def _text(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key)
    return default if value is None else str(value)


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):  # some tasks write "false"
        return value.strip().lower() not in ("false", "0", "no", "")
    return bool(value)


@dataclass(frozen=True)
class _Part:
    """One task.json with examples: the whole task, or one subtask of a container."""

    file: Path
    data: dict[str, Any]
    subtask: str | None

    def fail(self, message: str, index: int | None = None) -> SpecError:
        where = f"example {index}: " if index is not None else ""
        return SpecError([Problem(where + message, file=str(self.file), code="bigbench")])

    def metric(self, override: str | None) -> tuple[str, dict[str, Any]]:
        """Our metric for this task: the override, else BIG-bench's preferred score, else its metrics."""
        if override is not None:
            return override, {}
        names = [self.data.get("preferred_score"), *self.data.get("metrics", [])]
        for name in names:
            if name in _MC_METRICS:
                return "multiple_choice", {"letters": False}
            if name in _GENERATIVE_METRICS:
                metric, params = _GENERATIVE_METRICS[name]
                return metric, dict(params)
        examples = self.data.get("examples") or []
        if examples and all("target" not in e and "target_scores" in e for e in examples if isinstance(e, dict)):
            return "multiple_choice", {"letters": False}
        return "exact_str_match", {}


def _load_parts(file: Path, subtask: str | None) -> tuple[str, str, list[_Part]]:
    """(task name, description, parts): the task itself, or its subtasks (all, or the one chosen)."""
    data = _read_json(file)
    name = str(data.get("name") or file.parent.name)
    description = str(data.get("description") or "").strip()
    if "examples" in data:
        if subtask is not None:
            raise SpecError([Problem(f"task '{name}' has no subtasks, so subtask '{subtask}' cannot be chosen",
                                     file=str(file), code="bigbench")])
        return name, description, [_Part(file, data, None)]
    subfiles = sorted(file.parent.glob("*/task.json"))
    if not subfiles:
        raise SpecError([Problem("a BIG-bench task.json needs 'examples' or subtask folders",
                                 file=str(file), code="bigbench")])
    if subtask is not None:
        chosen = [f for f in subfiles if f.parent.name == subtask]
        if not chosen:
            close = get_close_matches(subtask, [f.parent.name for f in subfiles], n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"subtasks: {', '.join(f.parent.name for f in subfiles)}"
            raise SpecError([Problem(f"task '{name}' has no subtask '{subtask}'", file=str(file), hint=hint,
                                     code="bigbench")])
        subfiles = chosen
    parts = [_Part(f, _read_json(f), f.parent.name) for f in subfiles]
    if subtask is not None:
        description = str(parts[0].data.get("description") or description).strip()
    return name, description, parts


def _targets(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items]


def _build_tasks(part: _Part, multiple_choice: bool, seed: int, shuffle_choices: bool) -> list[Task]:
    data = part.data
    examples = data.get("examples")
    if not isinstance(examples, list) or not examples:
        raise part.fail("'examples' must be a non-empty list")
    task_prefix = _text(data, "task_prefix", "")
    input_prefix = _text(data, "example_input_prefix", "\nQ: ")
    output_prefix = _text(data, "example_output_prefix", "\nA: ")
    choice_prefix = _text(data, "choice_prefix", "\n  choice: ")
    append_choices = _flag(data.get("append_choices_to_input"), True)
    tasks: list[Task] = []
    for index, example in enumerate(examples):
        if not isinstance(example, dict) or not isinstance(example.get("input"), str):
            raise part.fail("each example needs an 'input' string", index)
        task_id = f"{part.subtask}:{index}" if part.subtask else str(index)
        scores = example.get("target_scores")
        if scores is not None and (not isinstance(scores, dict) or not scores):
            raise part.fail("'target_scores' must be a non-empty object", index)
        choices: list[str] = []
        best: list[str] = []
        if scores:
            choices = sorted(str(c) for c in scores)
            if shuffle_choices:
                random.Random(f"{seed}:{task_id}").shuffle(choices)
            top = max(scores.values())
            best = [str(c) for c, s in scores.items() if s == top]
            if len(scores) > 1 and top <= min(scores.values()):
                raise part.fail("no choice scores higher than the others", index)
        text = example["input"]
        if scores and append_choices:
            text += choice_prefix + choice_prefix.join(choices)
        prompt = (task_prefix + input_prefix + text + output_prefix).strip()
        inputs: dict[str, Any] = {"question": prompt, "input": example["input"]}
        if multiple_choice:
            if not scores:
                raise part.fail("a multiple-choice task needs 'target_scores' in every example", index)
            inputs["options"] = choices
            answer: Any = best
        elif "target" in example:
            answer = _targets(example["target"])
        elif scores:
            answer = best
        else:
            raise part.fail("an example needs a 'target' or 'target_scores'", index)
        # Ids are positions, as in BIG-bench; splits go by content, so an inserted example moves no other.
        meta: dict[str, Any] = {"task": data.get("name"), "index": index,
                                "content_id": content_id({"subtask": part.subtask, "example": example})}
        if part.subtask:
            meta["subtask"] = part.subtask
        if scores:
            meta["target_scores"] = scores
        if not multiple_choice:
            for key in ("output_regex", "stop_string"):
                if data.get(key):
                    meta[key] = data[key]
        tasks.append(Task(id=task_id, inputs=inputs, answer=answer, meta=meta))
    return tasks


def postprocess(text: str, stop_string: str | None = None, output_regex: str | None = None) -> str:
    """BIG-bench's treatment of a generated answer: cut after ``stop_string``, keep the first regex match."""
    if stop_string:
        index = text.find(stop_string)
        if index > 0:
            text = text[: index + len(stop_string)]
    if output_regex:
        first = next(iter(re.findall(output_regex, text)), "")
        if isinstance(first, tuple):  # BIG-bench forbids capturing groups; take the first one that matched
            first = next((group for group in first if group), "")
        text = first
    return text


class BigBenchEnv(SingleTurnEnv):
    """A BIG-bench JSON task (or one subtask) as a single-turn environment.

    Give ``task`` (a name in the installed BIG-bench, ``"name"`` or ``"name/subtask"``) or ``path``
    (a ``task.json`` or its folder). ``metric`` overrides the mapping from BIG-bench's preferred score.
    Task ids are the example indices (``"<subtask>:<index>"`` in a container task).
    """

    def __init__(
        self,
        task: str | None = None,
        *,
        path: str | Path | None = None,
        subtask: str | None = None,
        metric: str | None = None,
        metric_params: Mapping[str, Any] | None = None,
        name: str | None = None,
        instruction: str | None = None,
        splits: Mapping[str, float | int] | None = None,
        seed: int = 0,
        num_tasks: int | None = None,
        shuffle_choices: bool = True,
    ) -> None:
        if (task is None) == (path is None):
            raise EnvError("a BIG-bench environment needs exactly one of a task name or a path", env="bigbench")
        if task is not None:
            if "/" in task and subtask is None:
                task, subtask = task.split("/", 1)
            file = find_task_file(task)
        else:
            file = Path(path)  # type: ignore[arg-type]
            if file.is_dir():
                file = file / "task.json"
        self.path = file
        task_name, description, parts = _load_parts(file, subtask)
        metric_name, params = parts[0].metric(metric)
        for part in parts[1:]:
            if part.metric(metric) != (metric_name, params):
                raise SpecError([Problem(
                    f"subtasks of '{task_name}' are scored differently ({metric_name} vs {part.metric(metric)[0]})",
                    file=str(part.file), hint="choose a subtask or set metric", code="bigbench")])
        multiple_choice = metric_name == "multiple_choice"
        rows = [t for part in parts for t in _build_tasks(part, multiple_choice, seed, shuffle_choices)]
        rows = [rows[i] for i in sample_indices(len(rows), num_tasks, seed)]
        split_of = split_ids([t.id for t in rows], splits, seed, keys=[t.meta["content_id"] for t in rows])
        tasks = [t.model_copy(update={"split": split_of[t.id]}) for t in rows]
        self.task_name = task_name
        self.subtask = subtask
        if instruction is None:
            tail = _MC_INSTRUCTION if multiple_choice else default_instruction(metric_name)
            lead = description if not description or description[-1] in ".!?:" else description + "."
            instruction = f"{lead} {tail}".strip()
        super().__init__(tasks, name=name or (f"{task_name}.{subtask}" if subtask else task_name),
                         metric=metric_name, metric_params={**params, **dict(metric_params or {})},
                         instruction=instruction)

    def render(self, task: Task) -> str:
        return str(task.inputs["question"])  # BIG-bench's own prompt, choices included when the task shows them

    def prepare(self, action: str, task: Task) -> Any:
        if self.metric.name == "multiple_choice":
            return action
        return postprocess(action, task.meta.get("stop_string"), task.meta.get("output_regex"))
