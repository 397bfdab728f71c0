"""Embedders: the hashing fallback, MiniLM from the packaged model (offline), any litellm embedding model
(here through litellm to a real OpenAI-style server on loopback), and the factory presets use."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agentforge.errors import ConfigError, MemoryStoreError
from agentforge.memory import HashingEmbedder, LiteLLMEmbedder, MiniLMEmbedder, make_embedder
from agentforge.memory.embeddings import Embedder, minilm_available


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_hashing_vectors_are_deterministic_unit_length_and_lexically_meaningful() -> None:
    embedder = HashingEmbedder(256)
    assert isinstance(embedder, Embedder)
    a, b, c, empty = embedder.embed(["Tom buys three apples", "tom buys three APPLES!", "The river flows north", ""])
    assert len(a) == 256 and all(abs(norm(v) - 1.0) < 1e-9 for v in (a, b, c, empty))
    assert a == b  # case and punctuation do not matter
    near = cosine(a, embedder.embed_one("Tom buys four apples"))
    assert near > 0.5 > cosine(a, c)
    assert HashingEmbedder(256).embed(["Tom buys three apples"]) == [a]  # same in any process (CRC-32, not hash())
    assert embedder.name == "hashing-256"
    with pytest.raises(ConfigError):
        HashingEmbedder(4)


@pytest.mark.skipif(not minilm_available(), reason="needs the 'local' extra")
def test_minilm_loads_offline_from_the_package_and_ranks_meaning(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # a download would land here
    threads = torch.get_num_threads()
    embedder = MiniLMEmbedder(threads=1)
    query, paraphrase, unrelated = embedder.embed([
        "How much does Tom pay for three apples at two dollars each?",
        "Tom buys 3 apples costing $2 apiece; what is the total price?",
        "The river Danube flows through Vienna and Budapest.",
    ])
    assert len(query) == 384 == embedder.dim
    assert all(abs(norm(v) - 1.0) < 1e-5 for v in (query, paraphrase, unrelated))
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.3
    assert torch.get_num_threads() == threads  # set for the call only: the local LLM shares the cores
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))


class _EmbeddingsServer(BaseHTTPRequestHandler):
    """An OpenAI-style /embeddings endpoint: a fixed 3-dim vector per input, rows sent in reverse order."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        if "fail" in body["input"]:
            payload, status = {"error": {"message": "the model is overloaded", "type": "server_error"}}, 500
        else:
            rows = [{"object": "embedding", "index": i, "embedding": [float(len(t)), 0.0, 3.0]}
                    for i, t in enumerate(body["input"])]
            payload = {"object": "list", "data": rows[::-1], "model": body["model"],
                       "usage": {"prompt_tokens": 1, "total_tokens": 1}}
            status = 200
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def embeddings_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_litellm_embedder_calls_the_model_in_batches_and_normalises(embeddings_server: str) -> None:
    _EmbeddingsServer.calls.clear()
    embedder = LiteLLMEmbedder("openai/tiny-embed", batch_size=2, api_base=embeddings_server, api_key="sk-test",
                               max_retries=0)
    vectors = embedder.embed(["abcd", "a", "abcdefgh"])
    assert [len(call["input"]) for call in _EmbeddingsServer.calls] == [2, 1]
    assert vectors[0] == pytest.approx([0.8, 0.0, 0.6])  # (4, 0, 3) / 5, in input order despite the reply's
    assert vectors[1] == pytest.approx([1 / math.sqrt(10), 0.0, 3 / math.sqrt(10)])
    assert embedder.dim == 3 and embedder.name == "litellm-openai/tiny-embed"


def test_litellm_embedder_failures_become_memory_store_errors_naming_the_model(embeddings_server: str) -> None:
    embedder = LiteLLMEmbedder("openai/tiny-embed", api_base=embeddings_server, api_key="sk-test", max_retries=0)
    with pytest.raises(MemoryStoreError, match=r"embedding model 'openai/tiny-embed' failed: .*overloaded") as caught:
        embedder.embed(["fail"])
    assert caught.value.fields == {"model": "openai/tiny-embed"}
    refused = LiteLLMEmbedder("openai/tiny-embed", api_base="http://127.0.0.1:9/v1", api_key="sk-test",
                              max_retries=0, timeout=5)
    with pytest.raises(MemoryStoreError, match="openai/tiny-embed"):
        refused.embed(["hello"])


def test_make_embedder_reads_the_spec_strings_presets_use() -> None:
    assert make_embedder("hashing").name == "hashing-384"
    assert make_embedder("hashing:64").dim == 64
    litellm = make_embedder("litellm:ollama/nomic-embed-text")
    assert isinstance(litellm, LiteLLMEmbedder) and litellm.model == "ollama/nomic-embed-text"
    minilm = make_embedder("minilm", threads=2)
    assert minilm.name == ("minilm-all-MiniLM-L6-v2" if minilm_available() else "hashing-384")
    for bad in ("word2vec", "litellm:", "hashing:big"):
        with pytest.raises(ConfigError, match="embedder"):
            make_embedder(bad)
