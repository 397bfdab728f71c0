"""What the cache may replay: during evaluations only reproducible calls, and corrupt entries never.

Unseeded calls at temperature > 0 are fresh samples in every evaluation (so repeated evaluations are
independent) unless caching them is asked for; seeded ones are cached; a repeat round draws new samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentforge.config import Settings
from agentforge.llm.base import LLMRequest, Message
from agentforge.llm.gateway import Gateway, cache_everything, current_sampling_round, round_seed, sampling_round


def request(model: str, text: str = "hi", **kw: Any) -> LLMRequest:
    return LLMRequest(model=model, messages=(Message(role="user", content=text),), **kw)


@pytest.fixture
def evaluating() -> Iterator[None]:
    token = cache_everything.set(True)  # what the evaluator sets while it runs
    yield
    cache_everything.reset(token)


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    return Gateway(Settings(home=tmp_path / "home"))


def test_unseeded_sampling_is_not_cached_during_an_evaluation(
        gateway: Gateway, scripted: Any, evaluating: None) -> None:
    model, script = scripted
    script.default = "x"
    first = gateway.complete(request(model, temperature=0.7))
    again = gateway.complete(request(model, temperature=0.7))
    assert (first.cached, again.cached) == (False, False)
    assert len(script.calls) == 2


def test_seeded_sampling_and_temperature_zero_are_cached_during_an_evaluation(
        gateway: Gateway, scripted: Any, evaluating: None) -> None:
    model, script = scripted
    script.default = "x"
    gateway.complete(request(model, temperature=0.7, seed=3))
    assert gateway.complete(request(model, temperature=0.7, seed=3)).cached
    gateway.complete(request(model))
    assert gateway.complete(request(model)).cached
    assert len(script.calls) == 2


def test_seeded_sampling_outside_an_evaluation_is_left_as_before(gateway: Gateway, scripted: Any) -> None:
    model, script = scripted
    script.default = "x"
    gateway.complete(request(model, temperature=0.7, seed=3))
    assert not gateway.complete(request(model, temperature=0.7, seed=3)).cached


def test_caching_unseeded_sampling_is_an_explicit_choice(tmp_path: Path, scripted: Any, evaluating: None) -> None:
    model, script = scripted
    script.default = "x"
    gateway = Gateway(Settings(home=tmp_path / "home", cache_sampling=True))
    gateway.complete(request(model, temperature=0.7))
    assert gateway.complete(request(model, temperature=0.7)).cached
    plain = Gateway(Settings(home=tmp_path / "home2"))
    plain.complete(request(model, temperature=0.7, cache=True))  # or per call
    assert plain.complete(request(model, temperature=0.7, cache=True)).cached


def test_the_setting_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentforge.config import load_settings

    assert load_settings().cache_sampling is False
    monkeypatch.setenv("AGENTFORGE_CACHE_SAMPLING", "1")
    assert load_settings().cache_sampling is True


def test_a_repeat_round_draws_fresh_seeded_samples_and_replays_itself(
        gateway: Gateway, scripted: Any, evaluating: None) -> None:
    model, script = scripted
    script.default = lambda req: f"sample for seed {req.seed}"
    base = gateway.complete(request(model, temperature=0.7, seed=5))
    with sampling_round(1):
        one = gateway.complete(request(model, temperature=0.7, seed=5))
        assert gateway.complete(request(model, temperature=0.7, seed=5)).cached  # a round is reproducible
    with sampling_round(2):
        two = gateway.complete(request(model, temperature=0.7, seed=5))
    assert not one.cached and not two.cached
    assert len({base.text, one.text, two.text}) == 3
    assert script.calls[1].seed == round_seed(5, 1) != 5
    assert gateway.complete(request(model, temperature=0.7, seed=5)).cached  # round 0 again replays round 0


def test_a_repeat_round_misses_samples_cached_on_request(gateway: Gateway, scripted: Any) -> None:
    model, script = scripted
    script.default = "x"
    gateway.complete(request(model, temperature=0.7, cache=True))
    with sampling_round(1):
        assert not gateway.complete(request(model, temperature=0.7, cache=True)).cached
        assert gateway.complete(request(model, temperature=0.7, cache=True)).cached
    # Greedy calls are the same in every round: they share one entry.
    gateway.complete(request(model))
    with sampling_round(3):
        assert gateway.complete(request(model)).cached


def test_round_seeds_differ_from_each_other_and_from_ensemble_neighbours() -> None:
    seeds = {round_seed(s, r) for s in range(8) for r in range(1, 8)}
    assert len(seeds) == 8 * 7 and not seeds & set(range(8))
    assert round_seed(7, 0) == 7
    with sampling_round(4):
        assert current_sampling_round() == 4
    assert current_sampling_round() == 0
    with pytest.raises(ValueError), sampling_round(-1):
        pass


# ---------------------------------------------------------------- corrupt entries


def _entry(gateway: Gateway) -> Path:
    (path,) = [p for p in Path(gateway.cache.directory).rglob("*.json")]  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("content", [
    b"\xff\xfe\x00not utf-8",
    b"[]",
    b'"just a string"',
    b"{}",
    b'{"texts": 5}',
    b'{"texts": [1, 2]}',
    b'{"texts": ["ok"], "usage": []}',
    b'{"texts": ["ok"], "usage": {"prompt_tokens": "3"}}',
    b'{"texts": ["ok"], "usage": {"surprise": 1}}',
    b'{"texts": [',
])
def test_a_corrupt_entry_is_a_logged_miss_and_is_overwritten(
        tmp_path: Path, scripted: Any, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    model, script = scripted
    script.default = "fresh"
    Gateway(Settings(home=tmp_path / "home")).complete(request(model))
    _entry(Gateway(Settings(home=tmp_path / "home"))).write_bytes(content)
    capsys.readouterr()

    gateway = Gateway(Settings(home=tmp_path / "home"))  # a new process: nothing in memory
    response = gateway.complete(request(model))
    assert not response.cached and response.text == "fresh" and len(script.calls) == 2
    assert (gateway.cache.hits, gateway.cache.misses) == (0, 1)
    assert "llm_cache.unreadable" in capsys.readouterr().err
    assert Gateway(Settings(home=tmp_path / "home")).complete(request(model)).cached  # the entry was rewritten


# ---------------------------------------------------------------- through a real evaluation

SAMPLED = """
version: 1
name: sampled
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: ask, kind: agent, prompt: "Q: {question}", inputs: [question], outputs: [answer], temperature: 0.8, seed: 1}
"""


def test_repeated_evaluations_in_new_rounds_draw_fresh_samples(tmp_path: Path, scripted: Any) -> None:
    import json

    from agentforge.envs.datasets.dataset import DatasetEnv
    from agentforge.evaluation.evaluator import evaluate
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import spec_from_text

    model, script = scripted
    script.default = lambda req: str(req.seed)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"{i}?", "answer": "1"}) + "\n" for i in range(3)),
                    encoding="utf-8")
    env = DatasetEnv(data)
    wf = Workflow(spec_from_text(SAMPLED))
    first = evaluate(wf, env, split=None, model=model)
    assert len(script.calls) == 3 and first.mean_score == 1.0  # seed 1 answers "1"
    assert evaluate(wf, env, split=None, model=model).cached_calls == 3  # a plain re-run replays round 0
    with sampling_round(1):
        repeat = evaluate(wf, env, split=None, model=model)
    assert len(script.calls) == 6 and repeat.cached_calls == 0
    assert {c.seed for c in script.calls[3:]} == {round_seed(1, 1)} and repeat.mean_score == 0.0
