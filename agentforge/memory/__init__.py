"""Experience memory: typed records (``base``), a reference in-memory store, the Chroma-indexed store,
embeddings, and presets (``config``). Names load on first use: chromadb and torch stay unimported until
a store or an embedder is made."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "Experience": "agentforge.memory.base",
    "Hit": "agentforge.memory.base",
    "MemoryStore": "agentforge.memory.base",
    "Provenance": "agentforge.memory.base",
    "MemoryStats": "agentforge.memory._store",
    "StoreBase": "agentforge.memory._store",
    "InMemoryStore": "agentforge.memory.in_memory",
    "ChromaStore": "agentforge.memory.chroma",
    "ChromaEmbeddingFunction": "agentforge.memory.chroma",
    "Embedder": "agentforge.memory.embeddings",
    "HashingEmbedder": "agentforge.memory.embeddings",
    "LiteLLMEmbedder": "agentforge.memory.embeddings",
    "MiniLMEmbedder": "agentforge.memory.embeddings",
    "make_embedder": "agentforge.memory.embeddings",
    "MemoryConfig": "agentforge.memory.config",
    "load_memory_config": "agentforge.memory.config",
    "open_memory": "agentforge.memory.config",
}

__all__ = [
    "ChromaEmbeddingFunction",
    "ChromaStore",
    "Embedder",
    "Experience",
    "HashingEmbedder",
    "Hit",
    "InMemoryStore",
    "LiteLLMEmbedder",
    "MemoryConfig",
    "MemoryStats",
    "MemoryStore",
    "MiniLMEmbedder",
    "Provenance",
    "StoreBase",
    "load_memory_config",
    "make_embedder",
    "open_memory",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentforge.memory' has no attribute '{name}'")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from agentforge.memory._store import MemoryStats, StoreBase
    from agentforge.memory.base import Experience, Hit, MemoryStore, Provenance
    from agentforge.memory.chroma import ChromaEmbeddingFunction, ChromaStore
    from agentforge.memory.config import MemoryConfig, load_memory_config, open_memory
    from agentforge.memory.embeddings import (
        Embedder,
        HashingEmbedder,
        LiteLLMEmbedder,
        MiniLMEmbedder,
        make_embedder,
    )
