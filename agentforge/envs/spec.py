"""The environment YAML file (``kind: env``): a frozen pydantic model and its error reporting.

    version: 1
    kind: env
    name: arithmetic
    description: Arithmetic word problems (written for agentforge).
    instruction: Solve the problem.          # optional: overrides the environment's own
    source:
      type: jsonl                            # jsonl | bigbench | builtin | remote
      path: data/arithmetic.jsonl            # relative to this YAML file
      input_fields: [question]
      answer_field: answer
    metric: numeric                          # jsonl and bigbench only (bigbench: BIG-bench's own by default)
    metric_params: {rel_tol: 1.0e-6}         # optional keyword arguments of the metric
    splits: {train: 0.6, val: 0.2, test: 0.2}  # fractions: a seeded hash of each task's id; counts: exact
    seed: 0
    num_tasks: 100                           # optional: a seeded sample (builtin: how many to generate)

Metrics: ``exact_match``, ``exact_str_match``, ``numeric``, ``numeric_match_with_0_1_relative_error``,
``token_f1``, ``multiple_choice``, ``code_tests`` (see :mod:`agentforge.envs.datasets.metrics`).

Splits given as fractions put each task in train, val or test by a seeded hash of its id alone, so adding,
removing or reordering tasks moves no other task (sizes are near the fractions); counts give exact sizes.
A JSONL line without an id gets one derived from its content, not its line number.

Sources: ``{type: jsonl, path, input_fields, answer_field, id_field, options_field, tests_field}``;
``{type: bigbench, task: <name> | path: <task.json or folder>, subtask, shuffle_choices}``;
``{type: builtin, class: wordle, params: {...}}``; ``{type: remote, url, profile, task_ids | num_tasks,
params: {...}}``.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentforge._yaml import SourceMap, YamlPath, scalar_hint
from agentforge.envs.base import Split
from agentforge.errors import Problem, SpecError

__all__ = [
    "SOURCE_TYPES",
    "BigBenchSource",
    "BuiltinSource",
    "EnvSpec",
    "JsonlSource",
    "RemoteSource",
    "env_spec_from_data",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class JsonlSource(_Model):
    """Tasks from a JSONL file, one JSON object per line."""

    type: Literal["jsonl"]
    path: str = Field(description="The JSONL file, relative to the YAML file.")
    input_fields: tuple[str, ...] | None = Field(
        default=None, description="Fields shown to the agent (default: all but id, answer and tests).")
    answer_field: str = "answer"
    id_field: str = "id"
    options_field: str = "options"
    tests_field: str = "tests"


class BigBenchSource(_Model):
    """A BIG-bench JSON task, by name (installed BIG-bench) or by path."""

    type: Literal["bigbench"]
    task: str | None = Field(default=None, description="A BIG-bench task name, e.g. 'general_knowledge'.")
    path: str | None = Field(default=None, description="A task.json or its folder, relative to the YAML file.")
    subtask: str | None = None
    shuffle_choices: bool = True

    @model_validator(mode="after")
    def _one_of_task_or_path(self) -> BigBenchSource:
        if (self.task is None) == (self.path is None):
            raise ValueError("give exactly one of 'task' (a BIG-bench task name) or 'path'")
        return self


class BuiltinSource(_Model):
    """One of agentforge's built-in environment classes (``agentforge.envs.builtin``)."""

    type: Literal["builtin"]
    class_: str = Field(alias="class", description="A built-in environment name, e.g. 'wordle'.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the class.")


class RemoteSource(_Model):
    """An AgentGym-style environment server over HTTP."""

    type: Literal["remote"]
    url: str
    profile: str = "agentforge"
    task_ids: tuple[int | str, ...] | None = None
    num_tasks: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict, description="More RemoteEnv arguments (timeout, ...).")

    @model_validator(mode="after")
    def _not_both(self) -> RemoteSource:
        if self.task_ids is not None and self.num_tasks is not None:
            raise ValueError("give 'task_ids' or 'num_tasks', not both")
        return self


Source = Annotated[JsonlSource | BigBenchSource | BuiltinSource | RemoteSource, Field(discriminator="type")]
SOURCE_MODELS: dict[str, type[_Model]] = {
    "jsonl": JsonlSource, "bigbench": BigBenchSource, "builtin": BuiltinSource, "remote": RemoteSource,
}
SOURCE_TYPES = tuple(SOURCE_MODELS)


class EnvSpec(_Model):
    """An environment definition file."""

    version: Literal[1] = 1
    kind: Literal["env"] = "env"
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    description: str = ""
    instruction: str | None = None
    source: Source
    metric: str | None = None
    metric_params: dict[str, Any] = Field(default_factory=dict)
    splits: dict[Split, float | int] | None = None
    seed: int = 0
    num_tasks: int | None = Field(default=None, ge=1)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        from agentforge.envs.datasets.metrics import METRICS

        if value is not None and value not in METRICS:
            close = get_close_matches(value, list(METRICS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known metrics: {', '.join(METRICS)}"
            raise ValueError(f"unknown metric '{value}'; {hint}")
        return value

    @field_validator("splits")
    @classmethod
    def _positive_splits(cls, value: dict[str, float | int] | None) -> dict[str, float | int] | None:
        if value is not None and any(v < 0 for v in value.values()):
            raise ValueError("split sizes must not be negative")
        return value


# ---------------------------------------------------------------- errors located in the YAML file


def env_spec_from_data(data: Any, source: SourceMap) -> EnvSpec:
    """Validate parsed YAML into an :class:`EnvSpec`; every problem is reported with its line."""
    if not isinstance(data, dict):
        raise SpecError([Problem("an environment file must be a YAML mapping", file=source.file, line=1,
                                 code="not_a_mapping")])
    try:
        return EnvSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(exc, data, source)) from None


def _problems(exc: ValidationError, data: dict[str, Any], source: SourceMap) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[YamlPath, str]] = set()
    for err in exc.errors(include_url=False):
        loc = _yaml_path(err["loc"], data)
        if err["type"] == "union_tag_invalid":
            loc = (*loc, "type")  # point at the bad tag itself
        if (loc, err["type"]) in seen:
            continue
        seen.add((loc, err["type"]))
        message, hint = _describe(err, loc, data)
        field = ".".join(str(p) for p in loc) or None
        problems.append(Problem(message, file=source.file, line=source.line(loc), field=field, hint=hint,
                                code=err["type"]))
    return problems


def _yaml_path(loc: tuple[Any, ...], data: dict[str, Any]) -> YamlPath:
    """A pydantic error location as a YAML path: drop the union tag after ``source`` and type branches."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if i == 1 and loc[0] == "source" and part in SOURCE_TYPES:
            continue
        if isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool", "tuple", "dict")):
            continue
        out.append("class" if part == "class_" else part)
    return tuple(out)


def _fields_of(loc: YamlPath, data: dict[str, Any]) -> list[str]:
    """Known keys of the mapping that holds ``loc``, for 'did you mean'."""
    parent = loc[:-1]
    model: type[BaseModel] | None = None
    if parent == ():
        model = EnvSpec
    elif parent == ("source",) and isinstance(data.get("source"), dict):
        model = SOURCE_MODELS.get(str(data["source"].get("type")))
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _describe(err: dict[str, Any], loc: YamlPath, data: dict[str, Any]) -> tuple[str, str | None]:
    etype = err["type"]
    if etype == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        close = get_close_matches(key, _fields_of(loc, data), n=1)
        return f"unknown field '{key}'", (f"did you mean '{close[0]}'?" if close else None)
    if etype == "union_tag_invalid":
        tag = str(err.get("ctx", {}).get("tag", "?"))
        close = get_close_matches(tag, SOURCE_TYPES, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(SOURCE_TYPES)}"
        return f"unknown source type '{tag}'", hint
    if etype == "union_tag_not_found":
        return "source has no 'type'", f"add 'type:' with one of {', '.join(SOURCE_TYPES)}"
    if etype == "missing":
        name = str(err["loc"][-1]).rstrip("_")
        return f"missing required field '{name}'", f"add '{name}:' here"
    msg = str(err.get("msg") or "invalid value").removeprefix("Value error, ")
    return msg[0].lower() + msg[1:], scalar_hint(etype, err.get("input"))
