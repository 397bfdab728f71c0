"""Memory presets and configs: the shipped presets load, mistakes are reported with file, line, field and
a suggestion, and ``open_memory`` builds the store a config describes. Plus the package's exports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agentforge.memory
from agentforge.errors import ConfigError, SpecError
from agentforge.memory import ChromaStore, InMemoryStore, MemoryConfig, load_memory_config, open_memory
from agentforge.memory.config import memory_presets


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_the_shipped_presets_load_and_default_is_the_embedded_minilm_store() -> None:
    assert {"default", "server"} <= set(memory_presets())
    default = load_memory_config()
    assert (default.backend, default.embedder, default.merge_distance, default.max_lessons_per_family) == \
        ("embedded", "minilm", 0.05, 20)
    server = load_memory_config("server")
    assert (server.backend, server.host, server.port) == ("server", "127.0.0.1", 8000)


def test_a_misspelt_preset_name_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown memory preset 'defualt'.*did you mean 'default'"):
        load_memory_config("defualt")


def test_config_mistakes_are_reported_with_file_line_field_and_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path / "mem.yaml", """
        version: 1
        kind: memory
        backend: embeded
        merge_distnce: 0.1
        max_lessons_per_family: 0
        embedder: word2vec
        """)
    with pytest.raises(SpecError) as caught:
        load_memory_config(path)
    problems = {p.field: p for p in caught.value.problems}
    assert set(problems) == {"backend", "merge_distnce", "max_lessons_per_family", "embedder"}
    assert problems["merge_distnce"].line == 4 and problems["merge_distnce"].hint == "did you mean 'merge_distance'?"
    assert problems["backend"].line == 3 and "'embedded'" in problems["backend"].message
    assert "use one of minilm, hashing, litellm:<model>" in problems["embedder"].message
    assert str(path) in str(caught.value)


def test_malformed_or_missing_files_are_spec_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_memory_config(tmp_path / "none.yaml")
    with pytest.raises(SpecError, match=r"bad\.yaml:\d+: malformed YAML"):
        load_memory_config(write(tmp_path / "bad.yaml", "kind: memory\nport: [1, \n"))
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_memory_config(write(tmp_path / "list.yaml", "- a\n- b\n"))
    with pytest.raises(SpecError, match="collection"):
        load_memory_config(write(tmp_path / "coll.yaml", "collection: x\n"))


def test_a_relative_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    config = load_memory_config(write(tmp_path / "conf" / "mem.yaml", "path: store\nembedder: hashing\n"))
    assert config.path == (tmp_path / "conf" / "store").resolve()


def test_open_memory_builds_the_store_the_config_describes(tmp_path: Path) -> None:
    store = open_memory(MemoryConfig(backend="in_memory", embedder="hashing", max_lessons_per_family=3))
    assert isinstance(store, InMemoryStore) and store.max_lessons_per_family == 3
    with open_memory(MemoryConfig(path=tmp_path / "m", embedder="hashing:64", collection="mine")) as chroma:
        assert isinstance(chroma, ChromaStore)
        assert (chroma.collection_name, chroma.embedder.dim) == ("mine", 64)
        assert (tmp_path / "m" / "records.sqlite3").is_file()
    with open_memory(MemoryConfig(embedder="hashing")) as home_store:  # no path: under the agentforge home
        assert "home" in Path(home_store.stats().path or "").parts


def test_the_package_exports_are_pinned_and_importing_it_loads_no_heavy_library() -> None:
    assert agentforge.memory.__all__ == [
        "ChromaEmbeddingFunction", "ChromaStore", "Embedder", "Experience", "HashingEmbedder", "Hit",
        "InMemoryStore", "LiteLLMEmbedder", "MemoryConfig", "MemoryStats", "MemoryStore", "MiniLMEmbedder",
        "Provenance", "StoreBase", "load_memory_config", "make_embedder", "open_memory"]
    for name in agentforge.memory.__all__:
        assert getattr(agentforge.memory, name) is not None
    code = ("import sys, agentforge.memory, agentforge.memory.config; "
            "print(sorted(m for m in ('chromadb', 'torch', 'sentence_transformers', 'litellm') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
