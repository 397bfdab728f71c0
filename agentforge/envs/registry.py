"""Find and build environments: YAML files in ``envs/`` folders, paths, or built-in class names.

``load_env("arithmetic")`` looks for ``envs/arithmetic.yaml`` under the current directory, then in the
repository's own ``envs/`` folder (next to the ``agentforge`` package); a name with no file falls back
to a built-in class with its default parameters (``load_env("wordle")``). A path to a YAML file loads
that file. Relative paths inside a file (a JSONL or task.json) are relative to the file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from agentforge._yaml import SourceMap, parse_yaml
from agentforge.envs.base import Environment
from agentforge.envs.builtin import BUILTIN_ENVS, builtin_class
from agentforge.envs.spec import BigBenchSource, BuiltinSource, EnvSpec, JsonlSource, RemoteSource, env_spec_from_data
from agentforge.errors import ConfigError, EnvError, Problem, SpecError

__all__ = ["build_env", "env_dirs", "env_files", "find_env_file", "load_env", "load_env_spec", "repo_envs_dir"]

DEFAULT_SEARCH: tuple[Path, ...] = (Path("envs"),)
MAX_ENV_FILE_BYTES = 1024 * 1024  # the definition only; the tasks live in their own data files
_SUFFIXES = (".yaml", ".yml")


def repo_envs_dir() -> Path:
    """The ``envs/`` folder next to the ``agentforge`` package (a source checkout or editable install)."""
    return Path(__file__).resolve().parents[2] / "envs"


def env_dirs(search: Iterable[str | Path] = DEFAULT_SEARCH) -> list[Path]:
    """The folders searched for ``<name>.yaml``, in order, without duplicates or missing ones."""
    out: list[Path] = []
    for folder in [*(Path(s) for s in search), repo_envs_dir()]:
        resolved = folder.resolve()
        if resolved.is_dir() and resolved not in out:
            out.append(resolved)
    return out


def env_files(search: Iterable[str | Path] = DEFAULT_SEARCH) -> dict[str, Path]:
    """Every environment file found, by name (the file's stem); earlier folders win."""
    found: dict[str, Path] = {}
    for folder in env_dirs(search):
        for path in sorted(folder.iterdir()):
            if path.suffix in _SUFFIXES and path.is_file():
                found.setdefault(path.stem, path)
    return found


def find_env_file(name: str, search: Iterable[str | Path] = DEFAULT_SEARCH) -> Path | None:
    for folder in env_dirs(search):
        for suffix in _SUFFIXES:
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    return None


def _looks_like_path(ref: str | Path) -> bool:
    if isinstance(ref, Path):
        return True
    return ref.endswith(_SUFFIXES) or "/" in ref or "\\" in ref


def load_env(name_or_path: str | Path, *, search: Iterable[str | Path] = DEFAULT_SEARCH) -> Environment:
    """An environment from a YAML path, an ``envs/<name>.yaml`` name, or a built-in class name."""
    search = tuple(search)
    if _looks_like_path(name_or_path):
        spec, source = load_env_spec(name_or_path)
        return build_env(spec, source)
    name = str(name_or_path)
    path = find_env_file(name, search)
    if path is not None:
        spec, source = load_env_spec(path)
        return build_env(spec, source)
    if name in BUILTIN_ENVS:
        return _construct(builtin_class(name), {}, None, None, f"built-in environment '{name}'")
    known = sorted({*env_files(search), *BUILTIN_ENVS})
    close = get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
    folders = ", ".join(str(d) for d in env_dirs(search)) or "no envs/ folder found"
    raise ConfigError(f"unknown environment '{name}' (looked in {folders} and the built-in classes){hint}")


def load_env_spec(path: str | Path) -> tuple[EnvSpec, SourceMap]:
    """Read and validate an environment file; problems are reported with file and line."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_ENV_FILE_BYTES + 1)  # never more: a device or a pipe may not end
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("environment file not found", file=str(path), code="not_found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(f"cannot read file: {exc}", file=str(path), code="unreadable")]) from exc
    if len(raw) > MAX_ENV_FILE_BYTES:
        raise SpecError([Problem(f"an environment file is at most {MAX_ENV_FILE_BYTES:,} bytes", file=str(path),
                                 line=1, code="too_large", hint="keep the tasks in a JSONL file beside it")])
    source = parse_yaml(text, file=str(path))
    return env_spec_from_data(source.data, source), source


def build_env(spec: EnvSpec, source: SourceMap | None = None) -> Environment:
    """Instantiate the environment an :class:`EnvSpec` describes (paths relative to its file)."""
    source = source or SourceMap(file=None)
    base = Path(source.file).resolve().parent if source.file else Path.cwd()
    src = spec.source
    if spec.metric is not None and isinstance(src, BuiltinSource | RemoteSource):
        raise _problem(source, ("metric",), f"'metric' applies to jsonl and bigbench sources, not {src.type}",
                       hint="the environment computes its own reward; remove 'metric'")
    common: dict[str, Any] = {"splits": spec.splits, "seed": spec.seed}
    if spec.num_tasks is not None:
        common["num_tasks"] = spec.num_tasks
    if isinstance(src, JsonlSource):
        from agentforge.envs.datasets.dataset import DatasetEnv

        kwargs = {"path": base / src.path, "metric": spec.metric or "exact_match", "metric_params": spec.metric_params,
                  "input_fields": src.input_fields, "answer_field": src.answer_field, "id_field": src.id_field,
                  "options_field": src.options_field, "tests_field": src.tests_field, "name": spec.name,
                  "instruction": spec.instruction, **common}
        env = _construct(DatasetEnv, kwargs, source, ("source",), "the jsonl source")
    elif isinstance(src, BigBenchSource):
        from agentforge.envs.datasets.bigbench import BigBenchEnv

        kwargs = {"task": src.task, "path": base / src.path if src.path else None, "subtask": src.subtask,
                  "shuffle_choices": src.shuffle_choices, "metric": spec.metric, "metric_params": spec.metric_params,
                  "name": spec.name, "instruction": spec.instruction, **common}
        try:
            env = _construct(BigBenchEnv, kwargs, source, ("source",), "the bigbench source")
        except EnvError as exc:  # e.g. BIG-bench not installed: say which file asked for it
            where = f"{source.file}:{source.line(('source', 'task'))}: " if source.file else ""
            raise EnvError(where + exc.message, **exc.fields) from exc
    elif isinstance(src, BuiltinSource):
        cls = _builtin(src.class_, source)
        env = _construct(cls, {**common, **src.params}, source, ("source", "params"), f"built-in class '{src.class_}'")
    else:
        env = _construct(_remote_class(), _remote_kwargs(src, spec, common), source, ("source",), "RemoteEnv")
    env.name = spec.name
    if spec.instruction is not None:
        env.instruction = spec.instruction
    env.description = spec.description  # type: ignore[attr-defined]
    return env


def _remote_kwargs(src: RemoteSource, spec: EnvSpec, common: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"url": src.url, "profile": src.profile, **common, "name": spec.name,
                              "instruction": spec.instruction, **src.params}
    if src.task_ids is not None:
        kwargs["tasks"] = list(src.task_ids)
    if src.num_tasks is not None:
        kwargs["num_tasks"] = src.num_tasks
    return kwargs


def _remote_class() -> Callable[..., Environment]:
    try:
        from agentforge.envs.remote.client import RemoteEnv
    except ImportError as exc:
        raise EnvError("remote environments need agentforge.envs.remote.client (RemoteEnv), which could not be "
                       f"imported: {exc}") from exc
    return RemoteEnv


def _builtin(name: str, source: SourceMap) -> Callable[..., Environment]:
    try:
        return builtin_class(name)  # type: ignore[no-any-return]
    except EnvError as exc:
        raise _problem(source, ("source", "class"), exc.message.removeprefix("unknown built-in environment ")) from None


def _construct(factory: Callable[..., Environment], kwargs: Mapping[str, Any], source: SourceMap | None,
               where: tuple[str, ...] | None, what: str) -> Environment:
    """Call ``factory`` after checking ``kwargs`` against its signature, so a wrong parameter is reported at
    its line instead of as a TypeError from inside the class."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    accepts_any = signature is not None and any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if signature is not None and not accepts_any:
        unknown = [k for k in kwargs if k not in signature.parameters]
        # Shared settings the class does not take are dropped only while they hold their defaults.
        optional = {"splits": None, "seed": 0, "num_tasks": None, "name": None, "instruction": None}
        dropped = [k for k in unknown if k in optional and kwargs[k] == optional[k]]
        kwargs = {k: v for k, v in kwargs.items() if k not in dropped}
        unknown = [k for k in unknown if k not in dropped]
        if unknown:
            accepted = [p for p in signature.parameters if p != "self"]
            key = unknown[0]
            close = get_close_matches(key, accepted, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"it takes {', '.join(accepted) or 'no parameters'}"
            message = f"{what} takes no parameter '{key}'"
            if source is None:
                raise ConfigError(f"{message}; {hint}")
            path = (*where, key) if where and where[-1] == "params" else (key,) if key in _TOP_LEVEL else where or ()
            raise _problem(source, path, message, hint=hint)
    return factory(**kwargs)


_TOP_LEVEL = ("splits", "seed", "num_tasks", "metric", "metric_params", "instruction", "name")


def _problem(source: SourceMap, path: tuple[str | int, ...], message: str, hint: str | None = None) -> SpecError:
    field = ".".join(str(p) for p in path) or None
    return SpecError([Problem(message, file=source.file, line=source.line(path), field=field, hint=hint,
                              code="env")])
