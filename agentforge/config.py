"""Settings: where things live, model aliases, local-model options.

Read from (later wins): built-in defaults, ``agentforge.yaml`` in the working directory (or the file
named by ``AGENTFORGE_CONFIG``), then ``AGENTFORGE_*`` environment variables. The only global is a
``contextvars`` override, so embedding applications and tests can scope their own settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentforge.errors import ConfigError

LOCAL_MODEL = "local/qwen2.5-coder-0.5b-instruct"


class ModelAlias(BaseModel):
    """A short name for a model string plus the parameters that go with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="Environment variable holding the key.")
    max_concurrency: int | None = Field(default=None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)


class LocalModelSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path | None = Field(default=None, description="Use this GGUF instead of the pinned packages.")
    sha256: str | None = Field(default=None, description="Expected hash of `path`; checked when given.")
    n_threads: int | None = Field(
        default=None, ge=1,
        description="llama.cpp threads. None: the usable cores, at most 2 (see llm.local.default_threads); "
                    "the process executor gives each worker its share.")
    n_ctx: int = Field(default=4096, ge=512)
    n_batch: int = Field(default=256, ge=8)
    n_seq_max: int = Field(default=8, ge=1, le=64,
                           description="Sequences one context decodes together (batched sampling of n answers).")
    prefix_cache_mb: int = Field(
        default=2048, ge=0,
        description="Memory for saved KV states of prompt prefixes, per process (0: no saved prefixes).")
    prefix_disk_mb: int = Field(
        default=4096, ge=0,
        description="Disk for saved prefixes shared by processes and runs, under home/kv-cache (0: none).")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(default_factory=lambda: Path(os.path.expanduser("~/.cache/agentforge")))
    model_dir: Path | None = Field(default=None, description="Where the local GGUF is assembled; home/models.")
    runs_dir: Path = Path("runs")
    cache_enabled: bool = True
    cache_sampling: bool = Field(
        default=False,
        description="Also cache unseeded calls at temperature > 0 during evaluations; repeated evaluations then "
                    "replay the same samples instead of drawing new ones.")
    default_concurrency: int = Field(default=4, gt=0)
    max_retries: int = Field(default=3, ge=0)
    eval_gc_threshold: int = Field(
        default=20_000, ge=0,
        description="Python's first-generation GC threshold while an evaluation runs; 0 leaves it as it is.")
    eval_history_tokens: int = Field(
        default=2000, gt=0,
        description="The most tokens (estimated as characters/4) of past steps a multi-turn policy is shown.")
    max_workflow_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="The largest workflow file read, in bytes (4 MiB).")
    max_workflow_nodes: int = Field(
        default=20_000, gt=0, description="The most nodes one workflow file may have.")
    models: dict[str, ModelAlias] = Field(default_factory=dict)
    local: LocalModelSettings = Field(default_factory=LocalModelSettings)

    @property
    def cache_dir(self) -> Path:
        return self.home / "llm-cache"

    @property
    def kv_cache_dir(self) -> Path:
        """Saved KV states of the local model's prompt prefixes (``llm.prefix_cache``)."""
        return self.home / "kv-cache"

    @property
    def models_dir(self) -> Path:
        return self.model_dir or self.home / "models"

    def aliases(self) -> dict[str, ModelAlias]:
        base = {"local": ModelAlias(model=LOCAL_MODEL), "qwen": ModelAlias(model=LOCAL_MODEL)}
        return {**base, **self.models}


_MAX_CONFIG_BYTES = 1024 * 1024


def _from_file(path: Path) -> dict[str, Any]:
    from agentforge._yaml import parse_yaml
    from agentforge.errors import SpecError

    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)  # never more: a device or a pipe may not end
        if len(raw) > _MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: a settings file is at most {_MAX_CONFIG_BYTES:,} bytes")
        data = parse_yaml(raw.decode("utf-8"), file=str(path)).data or {}
    except SpecError as exc:  # malformed or hostile YAML (aliases that expand too far, ...)
        raise ConfigError("; ".join(p.render() for p in exc.problems)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the settings file: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping")
    models = data.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: 'models' must be a mapping of alias -> model string or settings")
    data["models"] = {k: ({"model": v} if isinstance(v, str) else v) for k, v in models.items()}
    return data


def load_settings(cwd: Path | None = None) -> Settings:
    data: dict[str, Any] = {}
    cfg = os.environ.get("AGENTFORGE_CONFIG")
    path = Path(cfg) if cfg else (cwd or Path.cwd()) / "agentforge.yaml"
    if path.is_file():
        data = _from_file(path)
    elif cfg:
        raise ConfigError(f"AGENTFORGE_CONFIG names {cfg}, which does not exist")
    env = os.environ
    if "AGENTFORGE_HOME" in env:
        data["home"] = env["AGENTFORGE_HOME"]
    if "AGENTFORGE_MODEL_DIR" in env:
        data["model_dir"] = env["AGENTFORGE_MODEL_DIR"]
    if "AGENTFORGE_RUNS" in env:
        data["runs_dir"] = env["AGENTFORGE_RUNS"]
    if env.get("AGENTFORGE_CACHE", "").lower() in ("0", "false", "off", "no"):
        data["cache_enabled"] = False
    if "AGENTFORGE_CACHE_SAMPLING" in env:
        data["cache_sampling"] = env["AGENTFORGE_CACHE_SAMPLING"].lower() in ("1", "true", "on", "yes")
    local = dict(data.get("local") or {})
    if "AGENTFORGE_LOCAL_MODEL_PATH" in env:
        local["path"] = env["AGENTFORGE_LOCAL_MODEL_PATH"]
    if "AGENTFORGE_LOCAL_MODEL_SHA256" in env:
        local["sha256"] = env["AGENTFORGE_LOCAL_MODEL_SHA256"]
    if "AGENTFORGE_LOCAL_THREADS" in env:
        local["n_threads"] = env["AGENTFORGE_LOCAL_THREADS"]
    data["local"] = local
    try:
        return Settings.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"invalid settings ({path if path.is_file() else 'environment'}): {exc}") from exc


_override: ContextVar[Settings | None] = ContextVar("agentforge_settings", default=None)
_loaded: dict[str, Settings] = {}


def get_settings() -> Settings:
    """The settings in force: a scoped override if one is set, else the loaded ones (cached)."""
    current = _override.get()
    if current is not None:
        return current
    key = str(Path.cwd()) + "|" + "|".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                                          if k.startswith("AGENTFORGE_"))
    if key not in _loaded:
        _loaded[key] = load_settings()
    return _loaded[key]


@contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    token = _override.set(settings)
    try:
        yield settings
    finally:
        _override.reset(token)
