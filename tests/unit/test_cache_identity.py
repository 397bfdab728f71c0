"""The response cache keys on who answers and on everything sent: the local weights, alias provider settings.

The local provider is answered here by a scripted model standing in for llama.cpp (``Gateway(backend=...)``),
behind small fake GGUF files: the cache logic and the weights identity are the real ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agentforge.config import LocalModelSettings, ModelAlias, Settings
from agentforge.errors import WeightsError
from agentforge.llm import weights
from agentforge.llm.base import LLMRequest, Message
from agentforge.llm.gateway import Gateway
from agentforge.llm.scripted import ScriptedModel
from agentforge.llm.weights import GGUF_SHA256, weights_identity


def request(model: str, text: str = "hi", **kw: Any) -> LLMRequest:
    return LLMRequest(model=model, messages=(Message(role="user", content=text),), **kw)


def local_gateway(home: Path, gguf: Path | None, backend: ScriptedModel, **local: Any) -> Gateway:
    settings = Settings(home=home, local=LocalModelSettings(path=gguf, **local))
    return Gateway(settings, backend=backend)


def test_swapping_the_gguf_behind_local_misses_the_cache(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF weights of model A")
    model = ScriptedModel(default="answer of A")
    home = tmp_path / "home"

    assert not local_gateway(home, gguf, model).complete(request("local")).cached
    assert local_gateway(home, gguf, model).complete(request("local")).cached  # same file: a hit
    assert len(model.calls) == 1

    gguf.write_bytes(b"GGUF weights of model B, same path")  # the user swaps the file in place
    model.default = "answer of B"
    fresh = local_gateway(home, gguf, model).complete(request("local"))
    assert not fresh.cached and fresh.text == "answer of B" and len(model.calls) == 2


def test_pointing_local_at_other_weights_misses_and_identical_bytes_hit(tmp_path: Path) -> None:
    a, b, copy_of_a = tmp_path / "a.gguf", tmp_path / "b.gguf", tmp_path / "copy.gguf"
    a.write_bytes(b"weights A")
    b.write_bytes(b"weights B")
    copy_of_a.write_bytes(b"weights A")
    model = ScriptedModel(default="x")
    home = tmp_path / "home"
    local_gateway(home, a, model).complete(request("local"))
    assert not local_gateway(home, b, model).complete(request("local")).cached
    assert local_gateway(home, copy_of_a, model).complete(request("local")).cached  # identity is content
    assert len(model.calls) == 2


def test_pinned_weights_are_identified_by_their_hash_without_hashing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hashing(path: Path) -> str:
        raise AssertionError(f"hashed {path}")

    monkeypatch.setattr(weights, "sha256_file", no_hashing)
    models = tmp_path / "models"
    assert weights_identity(LocalModelSettings(), models) == GGUF_SHA256
    pinned = LocalModelSettings(path=tmp_path / "mine.gguf", sha256="AB" * 32)
    assert weights_identity(pinned, models) == "ab" * 32
    # The pinned default and a user's pinned file key differently even under the same model name.
    model = ScriptedModel(default="x")
    Gateway(Settings(home=tmp_path / "h"), backend=model).complete(request("local"))
    assert not Gateway(Settings(home=tmp_path / "h", local=pinned), backend=model).complete(request("local")).cached


def test_an_unpinned_file_is_hashed_once_per_version_across_processes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"some weights")
    models = tmp_path / "models"
    settings = LocalModelSettings(path=gguf)
    first = weights_identity(settings, models)
    assert list((models / "stamps").iterdir())  # the digest is stamped for later processes
    weights._digests.clear()  # a new process: only the stamp remains
    monkeypatch.setattr(weights, "sha256_file", lambda path: pytest.fail("re-hashed an unchanged file"))
    assert weights_identity(settings, models) == first
    monkeypatch.undo()
    gguf.write_bytes(b"other weights")
    assert weights_identity(settings, models) != first


def test_a_missing_unpinned_file_is_a_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        weights_identity(LocalModelSettings(path=tmp_path / "gone.gguf"), tmp_path / "models")


@pytest.mark.parametrize("setting", [{"repeat_penalty": 1.3}, {"top_k": 5}, {"min_p": 0.2}])
def test_aliases_that_differ_only_in_provider_settings_do_not_collide(
        tmp_path: Path, scripted: Any, setting: dict[str, Any]) -> None:
    model, script = scripted
    script.default = "x"
    settings = Settings(home=tmp_path / "h", models={
        "plain": ModelAlias(model=model, params={"repeat_penalty": 1.1}),
        "tuned": ModelAlias(model=model, params={"repeat_penalty": 1.1, **setting})})
    gateway = Gateway(settings)
    gateway.complete(request("plain"))
    assert not gateway.complete(request("tuned")).cached
    assert len(script.calls) == 2
    assert gateway.complete(request("tuned")).cached


def test_settings_that_cannot_change_the_answer_stay_out_of_the_key(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.default = "x"
    settings = Settings(home=tmp_path / "h", models={
        "cheap": ModelAlias(model=model, params={"input_cost_per_token": 0.0}),
        "dear": ModelAlias(model=model, params={"input_cost_per_token": 1e-6, "extra_headers": {"X-Key": "s"}})})
    gateway = Gateway(settings)
    gateway.complete(request("cheap"))
    assert gateway.complete(request("dear")).cached


def test_the_gateway_loads_local_weights_by_its_own_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights the key names are the weights that answer: the provider reads the gateway's settings,
    not whatever settings are in force in the caller's context."""
    from agentforge.config import get_settings
    from agentforge.llm import local
    from agentforge.llm.local import LocalCompletion

    seen: list[Path | None] = []

    class Loaded:
        def complete(self, messages: Any, params: Any) -> LocalCompletion:
            return LocalCompletion(texts=("ok",), finish_reasons=("stop",), prompt_tokens=1, completion_tokens=1,
                                   seconds=0.0)

    def fake_load(settings: Settings | None = None) -> Loaded:
        seen.append((settings or get_settings()).local.path)
        return Loaded()

    monkeypatch.setattr(local, "get_local_model", fake_load)
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"my weights")
    gateway = Gateway(Settings(home=tmp_path / "h", local=LocalModelSettings(path=gguf)))
    assert gateway.complete(request("local")).text == "ok"
    assert seen == [gguf]


def test_key_covers_the_weights_identity_and_provider_kwargs() -> None:
    base = request("local/qwen2.5-coder-0.5b-instruct")
    assert base.cache_key({"weights": "a"}) != base.cache_key({"weights": "b"})
    assert base.cache_key() != request("local/qwen2.5-coder-0.5b-instruct", extra={"top_k": 3}).cache_key()
    assert base.cache_key() == request("local/qwen2.5-coder-0.5b-instruct",
                                       extra={"output_cost_per_token": 1.0}).cache_key()


def test_stat_is_the_only_cost_of_an_unchanged_unpinned_file(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"w" * 1000)
    settings = LocalModelSettings(path=gguf)
    weights_identity(settings, tmp_path / "models")
    stamp = next((tmp_path / "models" / "stamps").iterdir())
    os.unlink(stamp)  # the process memo answers without reading the stamp again
    assert weights_identity(settings, tmp_path / "models") == weights.sha256_file(gguf)


def test_a_file_replaced_in_the_same_process_is_loaded_afresh(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loaded model follows the weights identity, so a cache key never names weights other than the ones
    answering. llama.cpp's loader is replaced by one recording what it was asked to load (fake GGUF bytes)."""
    from agentforge.llm import local

    loaded: list[bytes] = []
    closed: list[bytes] = []

    class FakeLlama:
        def __init__(self, weights: bytes) -> None:
            self.weights = weights

        def close(self) -> None:
            closed.append(self.weights)

        def set_cache(self, cache: object) -> None:  # where the saved-prefix store attaches
            self.cache = cache

    def fake_load(path: Path, settings: LocalModelSettings) -> local.LocalModel:
        loaded.append(path.read_bytes())
        return local.LocalModel(llama=FakeLlama(path.read_bytes()), path=path, settings=settings,  # type: ignore[arg-type]
                                load_seconds=0.0)

    monkeypatch.setattr(local, "_load", fake_load)
    monkeypatch.setattr(local, "_models", {})
    monkeypatch.setattr(local, "_resolved", {})
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"first weights")
    settings = Settings(home=tmp_path / "h", local=LocalModelSettings(path=gguf))
    first = local.get_local_model(settings)
    assert local.get_local_model(settings) is first
    gguf.write_bytes(b"second weights")
    assert local.get_local_model(settings) is not first
    assert loaded == [b"first weights", b"second weights"]
    assert closed == [b"first weights"]  # the replaced model is freed
