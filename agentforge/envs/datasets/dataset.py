"""Single-turn environments: one observation, one action, one score.

:class:`SingleTurnEnv` is the shared shape (question-answer, math, multiple choice, code): ``reset``
shows the task's inputs, the one ``step`` scores the action with a :class:`~agentforge.envs.datasets.metrics.Metric`
and ends the episode. :class:`DatasetEnv` reads its tasks from a JSONL file, one task per line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentforge.envs.base import (
    Environment,
    LocalSession,
    Observation,
    Score,
    Split,
    StepResult,
    Task,
    assign_splits,
)
from agentforge.envs.datasets.metrics import Metric, get_metric, multiple_choice
from agentforge.errors import ConfigError, EnvError, Problem, SpecError

__all__ = [
    "DatasetEnv",
    "SingleTurnEnv",
    "SingleTurnSession",
    "content_id",
    "default_instruction",
    "render_inputs",
    "sample_indices",
    "split_ids",
]

_INSTRUCTIONS = {
    "numeric": "Solve the problem. End your answer with the final number.",
    "numeric_match_with_0_1_relative_error": "Answer with the number only.",
    "multiple_choice": "Choose the correct option. Answer with its letter or its text.",
    "code_tests": "Write the Python code the task asks for. Reply with the code only.",
}


def default_instruction(metric: str) -> str:
    return _INSTRUCTIONS.get(metric, "Answer the question. Reply with the answer only.")


def render_inputs(inputs: Mapping[str, Any]) -> str:
    """The text an agent reads: the one input as it is, or ``name: value`` lines; options lettered."""
    shown = {k: v for k, v in inputs.items() if k != "options"}
    lines = [str(v) for v in shown.values()] if len(shown) == 1 else [f"{k}: {v}" for k, v in shown.items()]
    text = "\n".join(lines)
    options = inputs.get("options")
    if isinstance(options, list | tuple) and options:
        labelled = [f"{string.ascii_uppercase[i]}. {o}" if i < 26 else f"- {o}" for i, o in enumerate(options)]
        text = f"{text}\n\nOptions:\n" + "\n".join(labelled)
    return text


class SingleTurnSession(LocalSession):
    """Reset shows the task; the one step scores the action and ends the episode."""

    env: SingleTurnEnv

    def _reset(self, task: Task) -> Observation:
        return Observation(text=self.env.render(task), fields=dict(task.inputs))

    def _step(self, action: str) -> StepResult:
        assert self.task is not None  # LocalSession.step checks this first
        score = self.env.grade(action, self.task)
        info = {"answer": self.task.answer, "metric": self.env.metric.name}
        return StepResult(observation=Observation(text=f"Scored {score.value:g}."), reward=score.value, done=True,
                          info=info, feedback=score.feedback, parsed=score.parsed)

    async def astep(self, action: str) -> StepResult:
        if self.env.metric.blocking:  # code_tests waits on a sandbox process: keep the event loop free
            return await asyncio.to_thread(self.step, action)
        return self.step(action)


class SingleTurnEnv(Environment):
    """A one-step environment over a fixed task list, scored by a metric."""

    multi_turn = False
    max_steps = 1
    secret_fields = frozenset({"answer", "tests"})  # meta["tests"]: a code task's hidden asserts

    def __init__(
        self,
        tasks: Sequence[Task],
        *,
        name: str,
        metric: str | Metric = "exact_match",
        metric_params: Mapping[str, Any] | None = None,
        instruction: str | None = None,
    ) -> None:
        self.name = name
        self.metric = get_metric(metric, **dict(metric_params or {}))
        self.instruction = instruction if instruction is not None else default_instruction(self.metric.name)
        super().__init__(tasks)

    def render(self, task: Task) -> str:
        return render_inputs(task.inputs)

    def prepare(self, action: str, task: Task) -> Any:
        """What the metric sees of an action (an environment may trim or extract it first)."""
        return action

    def grade(self, action: str, task: Task) -> Score:
        """The metric's verdict on an action: value, feedback, and whether an answer could be read."""
        return self.metric.grade(self.prepare(action, task), task)

    def score(self, action: str, task: Task) -> float:
        return self.grade(action, task).value

    def session(self) -> SingleTurnSession:
        return SingleTurnSession(self)


def split_ids(ids: Sequence[str], splits: Mapping[str, float | int] | None, seed: int,
              keys: Sequence[str] | None = None) -> dict[str, Split]:
    """:func:`assign_splits` of ``ids``, hashing ``keys[i]`` for ``ids[i]`` when given.

    ``keys`` lets an environment whose ids are positions (BIG-bench's example indices) split by content,
    so that inserting an example does not move the others between splits."""
    if keys is None:
        return assign_splits(ids, splits, seed)
    if len(keys) != len(ids):
        raise EnvError(f"split_ids: {len(ids)} ids but {len(keys)} keys")
    by_key = assign_splits(keys, splits, seed)
    return {task_id: by_key[key] for task_id, key in zip(ids, keys, strict=True)}


def content_id(row: Mapping[str, Any], length: int = 12) -> str:
    """A task id derived from a row's content (canonical JSON, sha256), stable when other rows move."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def sample_indices(total: int, num_tasks: int | None, seed: int) -> list[int]:
    """All indices, or a seeded sample of ``num_tasks`` of them kept in their original order."""
    if num_tasks is None or num_tasks >= total:
        return list(range(total))
    if num_tasks < 1:
        raise ConfigError(f"num_tasks must be at least 1, got {num_tasks}")
    return sorted(random.Random(seed).sample(range(total), num_tasks))


class DatasetEnv(SingleTurnEnv):
    """Tasks from a JSONL file: each line is a JSON object with input fields and an answer.

    ``input_fields`` are shown to the agent (default: every field that is not the id, answer or tests);
    ``answer_field`` is the hidden answer (for ``code_tests``: an optional reference solution);
    ``id_field`` names the task (a line without it gets :func:`content_id` of its row, so ids and splits do
    not change when lines are inserted or reordered; a repeated row gets ``-2``, ``-3``, ... in the order
    met); ``options_field`` holds a multiple-choice
    list (shown, as ``inputs["options"]``); ``tests_field`` holds a code task's asserts (hidden, in
    ``meta["tests"]``). Other fields go to ``meta``. Splits are a seeded assignment of the ids.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        metric: str | Metric = "exact_match",
        metric_params: Mapping[str, Any] | None = None,
        input_fields: Sequence[str] | None = None,
        answer_field: str = "answer",
        id_field: str = "id",
        options_field: str = "options",
        tests_field: str = "tests",
        name: str | None = None,
        instruction: str | None = None,
        splits: Mapping[str, float | int] | None = None,
        seed: int = 0,
        num_tasks: int | None = None,
    ) -> None:
        if path is None:
            raise ConfigError("a dataset environment needs the path of a JSONL file (path=...)")
        self.path = Path(path)
        metric_obj = get_metric(metric, **dict(metric_params or {}))
        reader = _RowReader(self.path, metric_obj.name, input_fields, answer_field, id_field, options_field,
                            tests_field)
        rows = reader.read()
        rows = [rows[i] for i in sample_indices(len(rows), num_tasks, seed)]
        split_of = split_ids([task.id for task in rows], splits, seed)
        tasks = [task.model_copy(update={"split": split_of[task.id]}) for task in rows]
        super().__init__(tasks, name=name or self.path.stem, metric=metric_obj, instruction=instruction)


class _RowReader:
    """JSONL lines -> tasks, with every problem located by file and line."""

    def __init__(self, path: Path, metric: str, input_fields: Sequence[str] | None, answer_field: str,
                 id_field: str, options_field: str, tests_field: str) -> None:
        self.path = path
        self.file = str(path)
        self.metric = metric
        self.input_fields = list(input_fields) if input_fields is not None else None
        self.answer_field = answer_field
        self.id_field = id_field
        self.options_field = options_field
        self.tests_field = tests_field

    def fail(self, message: str, line: int | None = None, hint: str | None = None) -> SpecError:
        return SpecError([Problem(message, file=self.file, line=line, hint=hint, code="dataset")])

    def read(self) -> list[Task]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self.fail("dataset file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise self.fail(f"cannot read dataset file: {exc}") from exc
        tasks: list[Task] = []
        seen: dict[str, int] = {}
        repeats: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            row = self.parse(line, number)
            task = self.task(row, number)
            if self.id_field not in row and task.id in seen:
                repeats[task.id] = repeats.get(task.id, 1) + 1  # the same row again: same content, next id
                task = task.model_copy(update={"id": f"{task.id}-{repeats[task.id]}"})
            if task.id in seen:
                raise self.fail(f"duplicate task id '{task.id}' (first on line {seen[task.id]})", number)
            seen[task.id] = number
            tasks.append(task)
        if not tasks:
            raise self.fail("dataset file has no tasks")
        return tasks

    def parse(self, line: str, number: int) -> dict[str, Any]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise self.fail(f"invalid JSON: {exc.msg} (column {exc.colno})", number) from None
        if not isinstance(row, dict):
            raise self.fail(f"each line must be a JSON object, got {type(row).__name__}", number)
        return row

    def task(self, row: dict[str, Any], number: int) -> Task:
        special = {self.id_field, self.answer_field, self.options_field, self.tests_field}
        names = self.input_fields if self.input_fields is not None else [k for k in row if k not in special]
        missing = [name for name in names if name not in row]
        if missing:
            raise self.fail(f"missing input field(s) {missing}", number, hint=f"this line has {sorted(row)}")
        if not names:
            raise self.fail("no input fields", number, hint="set input_fields or add a question field")
        inputs = {name: row[name] for name in names}
        if self.answer_field not in row and self.metric != "code_tests":
            raise self.fail(f"missing answer field '{self.answer_field}'", number, hint=f"this line has {sorted(row)}")
        if self.options_field in row:
            options = row[self.options_field]
            if not isinstance(options, list) or len(options) < 2:
                raise self.fail(f"'{self.options_field}' must be a list of at least two options", number)
            inputs["options"] = options
            if self.metric == "multiple_choice":
                try:
                    multiple_choice(row.get(self.answer_field), row.get(self.answer_field), options)
                except ConfigError as exc:
                    raise self.fail(str(exc), number) from None
        elif self.metric == "multiple_choice":
            raise self.fail(f"multiple_choice needs an '{self.options_field}' list", number)
        meta: dict[str, Any] = {k: v for k, v in row.items() if k not in special and k not in inputs}
        meta.update(source=self.path.name, line=number)
        if self.tests_field in row:
            meta["tests"] = row[self.tests_field]
        elif self.metric == "code_tests":
            raise self.fail(f"code_tests needs a '{self.tests_field}' field (asserts)", number)
        task_id = str(row[self.id_field]) if self.id_field in row else content_id(row)
        return Task(id=task_id, inputs=inputs, answer=row.get(self.answer_field), meta=meta)
