"""What an evaluation hands an executor: ``EvalJob``, a picklable record naming the spec(s), the
environment, the model and the settings, and how any process turns it back into live objects.

The caller's process binds its own live workflows and environment to the job (``bind``), so the
in-process executor runs exactly what the caller built (custom tools, its gateway). A worker process
has nothing bound: it rebuilds the job from the record and keeps the last few rebuilt jobs, keyed by
``EvalJob.build_key``, for the next evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from agentforge.envs.base import Environment, Task
from agentforge.errors import ConfigError

if TYPE_CHECKING:
    from agentforge.config import Settings
    from agentforge.runtime.workflow import Workflow

__all__ = ["EnvRef", "EvalJob", "JobSpec", "ResolvedJob", "bind", "build_job", "resolve"]

JOBS_KEPT = 4  # rebuilt jobs a process keeps (a worker serving a few evaluations in turn)


class JobSpec(BaseModel):
    """One workflow spec as data, with the file it came from (relative references resolve from there)."""

    model_config = ConfigDict(frozen=True)

    data: dict[str, Any]
    source_file: str | None = None


class EnvRef(BaseModel):
    """An environment another process can load: a registry name or an absolute YAML path, and a
    fingerprint of its definition file and tasks, so an edited YAML or data file is a different job."""

    model_config = ConfigDict(frozen=True)

    ref: str
    fingerprint: str

    @classmethod
    def of(cls, ref: str | Path, env: Environment) -> EnvRef:
        """Name ``env`` (loaded from ``ref``) independently of this process's working directory."""
        from agentforge.envs.registry import find_env_file

        path = Path(ref)
        if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
            resolved: str = str(path.resolve())
        else:
            found = find_env_file(str(ref))
            resolved = str(found) if found is not None else str(ref)  # a built-in class name
        digest = hashlib.sha256()
        if Path(resolved).is_file():
            digest.update(Path(resolved).read_bytes())
        for task in env.tasks():
            digest.update(json.dumps(task.model_dump(mode="json"), sort_keys=True, default=str).encode())
        return cls(ref=resolved, fingerprint=digest.hexdigest())

    def load(self) -> Environment:
        from agentforge.envs.registry import load_env

        return load_env(self.ref)


class EvalJob(BaseModel):
    """Everything a worker in another process needs to rebuild and run an evaluation's episodes.

    ``specs`` maps a spec's content hash to the spec; ``assignment`` says which spec plays which task
    (tasks it does not name play ``default``). ``env`` is None when the caller passed an environment
    object with no name: only the in-process executor can run such a job.
    """

    model_config = ConfigDict(frozen=True)

    specs: dict[str, JobSpec]
    default: str
    assignment: dict[str, str] = {}
    env: EnvRef | None = None
    env_name: str = "env"
    model: str | None = None
    settings: dict[str, Any] = {}

    def spec_hash(self, task_id: str) -> str:
        return self.assignment.get(task_id, self.default)

    @cached_property
    def build_key(self) -> str:
        """What a rebuilt job is cached under: specs, environment and settings (not model or assignment)."""
        parts = [{h: s.model_dump(mode="json") for h, s in sorted(self.specs.items())},
                 self.env.model_dump(mode="json") if self.env else None, self.settings]
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def require_env(self, why: str) -> EnvRef:
        """The environment's name, or a ConfigError saying ``why`` it is needed."""
        if self.env is None:
            raise ConfigError(f"{why}: name it by a YAML path or a built-in name (e.g. --env arithmetic), "
                              "not as an object")
        return self.env


@dataclass(frozen=True)
class ResolvedJob:
    """A job as live objects: one workflow per spec hash, the environment and the settings."""

    job: EvalJob
    workflows: Mapping[str, Workflow]
    env: Environment
    settings: Settings

    def workflow(self, task_id: str) -> Workflow:
        return self.workflows[self.job.spec_hash(task_id)]

    def task(self, task_id: str) -> Task:
        return self.env.task(task_id)


_bound: ContextVar[Mapping[str, ResolvedJob] | None] = ContextVar("agentforge_bound_jobs", default=None)
_rebuilt: OrderedDict[str, ResolvedJob] = OrderedDict()


def build_job(workflows: Sequence[Workflow], env: Environment, *, env_ref: str | Path | None = None,
              model: str | None = None, assignment: Mapping[str, str] | None = None) -> EvalJob:
    """The record for evaluating ``workflows`` (the first is the default) on ``env``; ``env_ref`` names
    where other processes can load ``env`` from."""
    if not workflows:
        raise ConfigError("an evaluation job needs at least one workflow")
    specs = {wf.spec.hash: JobSpec(data=wf.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                                   source_file=wf.spec.source_file) for wf in workflows}
    unknown = sorted(set((assignment or {}).values()) - set(specs))
    if unknown:
        raise ConfigError(f"the job assigns tasks to spec(s) {unknown} it does not carry")
    return EvalJob(specs=specs, default=workflows[0].spec.hash, assignment=dict(assignment or {}),
                   env=EnvRef.of(env_ref, env) if env_ref is not None else None, env_name=env.name, model=model,
                   settings=workflows[0].settings.model_dump(mode="json"))


@contextmanager
def bind(job: EvalJob, workflows: Sequence[Workflow], env: Environment) -> Iterator[ResolvedJob]:
    """Within this context (and tasks started from it), ``resolve(job)`` gives these live objects."""
    resolved = ResolvedJob(job, {wf.spec.hash: wf for wf in workflows}, env, workflows[0].settings)
    token = _bound.set({**(_bound.get() or {}), job.build_key: resolved})
    try:
        yield resolved
    finally:
        _bound.reset(token)


def resolve(job: EvalJob) -> tuple[ResolvedJob, bool]:
    """The live objects for ``job`` and whether they had to be rebuilt: the caller's bound ones, else
    this process's rebuilt copy, else a fresh rebuild (kept for the next evaluation)."""
    key = job.build_key
    bound = (_bound.get() or {}).get(key)
    if bound is not None:
        return ResolvedJob(job, bound.workflows, bound.env, bound.settings), False
    cached = _rebuilt.get(key)
    if cached is not None:
        _rebuilt.move_to_end(key)
        return ResolvedJob(job, cached.workflows, cached.env, cached.settings), False
    resolved = _rebuild(job)
    _rebuilt[key] = resolved
    while len(_rebuilt) > JOBS_KEPT:
        _rebuilt.popitem(last=False)
    return resolved, True


def _rebuild(job: EvalJob) -> ResolvedJob:
    from agentforge._yaml import SourceMap
    from agentforge.config import Settings, use_settings
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import spec_from_data

    env_ref = job.require_env("a job is rebuilt from the environment's name")
    settings = Settings.model_validate(job.settings)
    workflows: dict[str, Workflow] = {}
    with use_settings(settings):
        for spec_hash, entry in job.specs.items():  # compiled once per spec hash in this process
            spec = spec_from_data(entry.data, SourceMap(file=entry.source_file, data=entry.data))
            workflows[spec_hash] = Workflow(spec, settings=settings, validate=False)
        env = env_ref.load()
    if EnvRef.of(env_ref.ref, env).fingerprint != env_ref.fingerprint:
        raise ConfigError(f"environment '{env_ref.ref}' changed since the evaluation started (its file or tasks "
                          "differ from the caller's)")
    return ResolvedJob(job, workflows, env, settings)
