"""Which experience store to open: a ``MemoryConfig``, usually read from a preset in ``memory/``.

``load_memory_config("default")`` reads ``memory/default.yaml`` (the current directory's ``memory/``
folder first, then the repository's); a path loads that file. A relative ``path`` inside a file is
relative to the file; no ``path`` means ``<agentforge home>/memory``. ``open_memory(config)`` returns
the store the config describes.
"""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentforge._yaml import SourceMap, parse_yaml, scalar_hint
from agentforge.errors import ConfigError, Problem, SpecError
from agentforge.memory._store import StoreBase, valid_collection_name

__all__ = ["MemoryConfig", "find_preset", "load_memory_config", "memory_presets", "open_memory", "repo_memory_dir"]

MAX_PRESET_BYTES = 64 * 1024
_SUFFIXES = (".yaml", ".yml")
_EMBEDDERS = ("minilm", "hashing", "litellm:<model>")


class MemoryConfig(BaseModel):
    """An experience store: where its records live, which index and embedder it uses, how it merges."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    kind: Literal["memory"] = "memory"
    description: str | None = None
    backend: Literal["embedded", "server", "in_memory"] = Field(
        default="embedded",
        description="embedded: Chroma in-process; server: a Chroma server; in_memory: nothing kept.")
    path: Path | None = Field(default=None, description="Folder of the records (and the embedded index); "
                                                        "default <agentforge home>/memory.")
    host: str = Field(default="127.0.0.1", min_length=1, description="The Chroma server (backend: server).")
    port: int = Field(default=8000, ge=1, le=65535)
    collection: str = Field(default="experience", description="The Chroma collection of the index.")
    embedder: str = Field(default="minilm", description="minilm, hashing[:dim] or litellm:<model>.")
    threads: int = Field(default=1, ge=1, le=64, description="Torch threads while MiniLM embeds.")
    merge_distance: float = Field(default=0.05, ge=0.0, le=2.0,
                                  description="Records of one group closer than this (cosine) merge.")
    max_lessons_per_family: int = Field(default=20, ge=1, description="Lessons kept per task family.")

    @field_validator("collection")
    @classmethod
    def _collection(cls, value: str) -> str:
        if not valid_collection_name(value):
            raise ValueError("a collection name is 3-512 letters, digits, '.', '_' or '-', starting and ending "
                             "with a letter or digit")
        return value

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, value: str) -> str:
        kind, sep, arg = value.partition(":")
        ok = (kind == "minilm" and not sep) or (kind == "hashing" and (not sep or arg.isdigit())) or \
            (kind == "litellm" and bool(arg))
        if not ok:
            close = get_close_matches(kind, ["minilm", "hashing", "litellm"], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close and close[0] != kind else ""
            raise ValueError(f"unknown embedder '{value}'{hint}: use one of {', '.join(_EMBEDDERS)}")
        return value

    def records_path(self) -> Path:
        from agentforge.config import get_settings

        return self.path if self.path is not None else get_settings().home / "memory"


def open_memory(config: MemoryConfig | str | Path | None = None, *, reembed: bool = False) -> StoreBase:
    """The store ``config`` describes (a ``MemoryConfig``, or a preset name or file for
    ``load_memory_config``). Opening a server-backed store checks the server is there."""
    if not isinstance(config, MemoryConfig):
        config = load_memory_config(config)
    from agentforge.memory.embeddings import make_embedder

    embedder = make_embedder(config.embedder, threads=config.threads)
    if config.backend == "in_memory":
        from agentforge.memory.in_memory import InMemoryStore

        return InMemoryStore(embedder, merge_distance=config.merge_distance,
                             max_lessons_per_family=config.max_lessons_per_family)
    from agentforge.memory.chroma import ChromaStore

    return ChromaStore(config.records_path(), embedder, host=config.host if config.backend == "server" else None,
                       port=config.port, collection=config.collection, merge_distance=config.merge_distance,
                       max_lessons_per_family=config.max_lessons_per_family, reembed=reembed)


# -- presets -------------------------------------------------------------------------------------------
def repo_memory_dir() -> Path:
    """The ``memory/`` folder next to the ``agentforge`` package (a source checkout or editable install)."""
    return Path(__file__).resolve().parents[2] / "memory"


def memory_presets() -> dict[str, Path]:
    """Every preset found, by name: ``./memory`` first, then the repository's ``memory/``."""
    found: dict[str, Path] = {}
    for folder in (Path("memory"), repo_memory_dir()):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in _SUFFIXES and path.is_file():
                    found.setdefault(path.stem, path.resolve())
    return found


def find_preset(name: str) -> Path:
    presets = memory_presets()
    if name in presets:
        return presets[name]
    close = get_close_matches(name, list(presets), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(presets) or 'none'}"
    raise ConfigError(f"unknown memory preset '{name}' (looked in ./memory and {repo_memory_dir()}); {hint}")


def load_memory_config(ref: str | Path | None = None) -> MemoryConfig:
    """A preset by name (``default``, ``server``) or a YAML file's path; ``None`` is ``default``."""
    ref = "default" if ref is None else ref
    is_path = isinstance(ref, Path) or ref.endswith(_SUFFIXES) or "/" in ref or "\\" in ref
    path = Path(ref) if is_path else find_preset(str(ref))
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PRESET_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("memory config file not found", file=str(path), code="not_found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(f"cannot read file: {exc}", file=str(path), code="unreadable")]) from exc
    if len(raw) > MAX_PRESET_BYTES:
        raise SpecError([Problem(f"a memory config is at most {MAX_PRESET_BYTES:,} bytes", file=str(path), line=1,
                                 code="too_large")])
    source = parse_yaml(text, file=str(path))
    return config_from_data(source.data, source)


def config_from_data(data: Any, source: SourceMap | None = None) -> MemoryConfig:
    source = source or SourceMap(file=None, data=data)
    if not isinstance(data, dict):
        raise SpecError([Problem("a memory config must be a YAML mapping", file=source.file, line=1)])
    try:
        config = MemoryConfig.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(exc, data, source)) from None
    if config.path is not None and not config.path.is_absolute() and source.file:
        config = config.model_copy(update={"path": Path(source.file).resolve().parent / config.path})
    return config


def _problems(exc: ValidationError, data: dict[str, Any], source: SourceMap) -> list[Problem]:
    problems: list[Problem] = []
    fields = list(MemoryConfig.model_fields)
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        key = str(loc[0]) if loc else None
        hint: str | None = None
        if err["type"] == "extra_forbidden" and key is not None:
            close = get_close_matches(key, fields, n=1)
            message = f"unknown field '{key}'"
            hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(fields)}"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            hint = scalar_hint(err["type"], data.get(key)) if key is not None else None
        problems.append(Problem(message, file=source.file, line=source.line(loc), field=key, hint=hint,
                                code=err["type"]))
    return problems
