"""Prompt tokens reused from a prefix cache (issue 14): from the backend's usage to traces and eval summaries.

Of a fresh call's prompt tokens, ``reused_prompt_tokens`` are the ones the model read from a saved prefix (or
a provider's prompt cache) instead of evaluating. A response-cache hit is not a fresh call, so it reuses
nothing: its tokens are counted as cached, apart.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.config import Settings
from agentforge.evaluation.evaluator import evaluate
from agentforge.llm.base import LLMRequest, Message, RawCompletion, Usage
from agentforge.llm.gateway import Gateway, LiteLLMBackend, import_litellm
from agentforge.llm.scripted import ScriptedModel, register_script, unregister_script
from agentforge.runtime.trace import Trace
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from tests.unit.sample_envs import EchoEnv
from tests.unit.sample_workflows import QA

PROMPT, REUSED, COMPLETION = 100, 80, 2
_names = itertools.count()


class PrefixReusingModel(ScriptedModel):
    """Answers like a scripted model and reports, as the local model does, most of each prompt as reused."""

    async def acomplete(self, request: LLMRequest) -> RawCompletion:
        self.calls.append(request)
        texts = tuple(self.reply_for(request) for _ in range(request.n))
        return RawCompletion(texts=texts, usage=Usage(prompt_tokens=PROMPT, completion_tokens=COMPLETION,
                                                      reused_prompt_tokens=REUSED))


@pytest.fixture
def reusing() -> Iterator[tuple[str, PrefixReusingModel]]:
    name = f"reuse{next(_names)}"
    model = PrefixReusingModel(default="an answer")
    register_script(name, model)
    yield f"scripted/{name}", model
    unregister_script(name)


def qa() -> Workflow:
    return Workflow(spec_from_text(textwrap.dedent(QA)))


def request(text: str = "hello") -> LLMRequest:
    return LLMRequest(model="scripted/x", messages=(Message(role="user", content=text),))


def test_usage_adds_reused_prompt_tokens() -> None:
    total = Usage(prompt_tokens=100, reused_prompt_tokens=80) + Usage(prompt_tokens=50, reused_prompt_tokens=10)
    assert (total.prompt_tokens, total.reused_prompt_tokens) == (150, 90)


def test_reused_prompt_tokens_flow_into_the_call_the_node_and_the_trace_summary(
        reusing: tuple[str, PrefixReusingModel]) -> None:
    model, _ = reusing
    result = qa().run({"question": "why?"}, model=model)
    node = result.trace.nodes[0]
    assert node.llm_calls[0].reused_prompt_tokens == REUSED and not node.llm_calls[0].cached
    assert (node.prompt_tokens, node.reused_prompt_tokens) == (PROMPT, REUSED)
    summary = result.trace.summary()
    assert (summary["prompt_tokens"], summary["reused_prompt_tokens"]) == (PROMPT, REUSED)
    saved = json.loads(Path(result.trace_path).read_text(encoding="utf-8"))
    assert saved["summary"]["reused_prompt_tokens"] == REUSED
    assert saved["nodes"][0]["llm_calls"][0]["reused_prompt_tokens"] == REUSED
    assert Trace.load(Path(result.trace_path)).reused_prompt_tokens == REUSED


def test_a_trace_saved_before_the_field_existed_still_loads(tmp_path: Path,
                                                           reusing: tuple[str, PrefixReusingModel]) -> None:
    model, _ = reusing
    result = qa().run({"question": "why?"}, model=model)
    data = json.loads(Path(result.trace_path).read_text(encoding="utf-8"))
    data["summary"].pop("reused_prompt_tokens")
    for call in data["nodes"][0]["llm_calls"]:
        call.pop("reused_prompt_tokens")
    old = tmp_path / "old_trace.json"
    old.write_text(json.dumps(data), encoding="utf-8")
    trace = Trace.load(old)
    assert trace.prompt_tokens == PROMPT and trace.reused_prompt_tokens == 0


def test_reused_prompt_tokens_reach_task_results_and_the_eval_summary(
        reusing: tuple[str, PrefixReusingModel]) -> None:
    model, _ = reusing
    report = evaluate(qa(), EchoEnv(), split="val", model=model)
    assert [r.reused_prompt_tokens for r in report.results] == [REUSED] * 3
    summary = report.summary()
    assert summary["prompt_tokens"] == 3 * PROMPT
    assert summary["reused_prompt_tokens"] == 3 * REUSED
    assert summary["processed_prompt_tokens"] == 3 * (PROMPT - REUSED)


def test_a_response_cache_hit_is_not_counted_as_reused(reusing: tuple[str, PrefixReusingModel]) -> None:
    model, script = reusing
    first = evaluate(qa(), EchoEnv(), split="val", model=model).summary()
    again = evaluate(qa(), EchoEnv(), split="val", model=model).summary()
    assert first["reused_prompt_tokens"] == 3 * REUSED
    assert again["cached_calls"] == again["llm_calls"] == 3 and len(script.calls) == 3
    assert again["reused_prompt_tokens"] == again["processed_prompt_tokens"] == again["prompt_tokens"] == 0
    assert again["cached_prompt_tokens"] == 3 * PROMPT


def test_gateway_stats_count_reuse_of_fresh_calls_only(tmp_path: Path) -> None:
    gateway = Gateway(Settings(home=tmp_path / "home"), backend=PrefixReusingModel(default="ok"))
    req = request().model_copy(update={"model": "openai/gpt-4o-mini"})
    fresh = gateway.complete(req)
    hit = gateway.complete(req)
    assert not fresh.cached and fresh.usage.reused_prompt_tokens == REUSED
    assert hit.cached  # the new cache entry, with the field, is accepted
    assert gateway.stats.cache_hits == 1
    assert gateway.stats.reused_prompt_tokens == REUSED
    assert gateway.stats.usage.reused_prompt_tokens == REUSED


def test_an_old_cache_entry_without_reused_tokens_still_loads(tmp_path: Path) -> None:
    backend = PrefixReusingModel(default="fresh")
    gateway = Gateway(Settings(home=tmp_path / "home"), backend=backend)
    req = gateway.prepare(request().model_copy(update={"model": "openai/gpt-4o-mini"}))
    gateway.cache.put(gateway.cache_key(req),
                      {"texts": ["from before"], "usage": {"prompt_tokens": 7, "completion_tokens": 1}, "cost": 0.0})
    response = gateway.complete(req)
    assert response.cached and response.text == "from before" and not backend.calls
    assert (response.usage.prompt_tokens, response.usage.reused_prompt_tokens) == (7, 0)


def test_litellm_backend_reads_openai_cached_tokens_from_a_provider() -> None:
    """Through litellm itself: a provider that fills ``usage.prompt_tokens_details.cached_tokens`` (as the
    local model and remote prompt caching do) and one that leaves it out."""
    litellm = import_litellm()
    from litellm.llms.custom_llm import CustomLLM

    class Provider(CustomLLM):  # type: ignore[misc]
        def __init__(self, cached: int | None) -> None:
            super().__init__()
            self.cached = cached

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            response = kwargs["model_response"]
            response.choices = [litellm.Choices(index=0, finish_reason="stop",
                                                message=litellm.Message(role="assistant", content="hi"))]
            details = {"cached_tokens": self.cached} if self.cached is not None else None
            response.usage = litellm.Usage(prompt_tokens=PROMPT, completion_tokens=1, total_tokens=PROMPT + 1,
                                           prompt_tokens_details=details)
            return response

    saved = list(litellm.custom_provider_map)
    litellm.custom_provider_map = [*saved, {"provider": "reusetest", "custom_handler": Provider(REUSED)},
                                   {"provider": "plaintest", "custom_handler": Provider(None)}]
    litellm.utils.custom_llm_setup()
    try:
        backend = LiteLLMBackend()
        reused = asyncio.run(backend.acomplete(request().model_copy(update={"model": "reusetest/m"})))
        plain = asyncio.run(backend.acomplete(request().model_copy(update={"model": "plaintest/m"})))
    finally:  # leave litellm's provider lists as they were for the other tests in this process
        litellm.custom_provider_map = saved
        for registry in (litellm.provider_list, litellm._custom_providers):
            for name in ("reusetest", "plaintest"):
                if name in registry:
                    registry.remove(name)
    assert (reused.usage.prompt_tokens, reused.usage.reused_prompt_tokens) == (PROMPT, REUSED)
    assert (plain.usage.prompt_tokens, plain.usage.reused_prompt_tokens) == (PROMPT, 0)


def test_the_local_provider_reports_its_reused_prefix_in_openai_usage() -> None:
    litellm = import_litellm()
    from agentforge.llm.local import LocalCompletion, _fill_response

    result = LocalCompletion(texts=("hi",), finish_reasons=("stop",), prompt_tokens=PROMPT, completion_tokens=1,
                             seconds=0.0, reused_prompt_tokens=REUSED)
    response = _fill_response(litellm.ModelResponse(), "qwen", result)
    assert response.usage.prompt_tokens == PROMPT
    assert response.usage.prompt_tokens_details.cached_tokens == REUSED


def test_cli_shows_processed_and_reused_prompt_tokens(tmp_path: Path,
                                                      reusing: tuple[str, PrefixReusingModel]) -> None:
    model, _ = reusing
    runner = CliRunner()
    wf = tmp_path / "qa.yaml"
    wf.write_text(textwrap.dedent(QA), encoding="utf-8")
    evaluated = runner.invoke(app, ["eval", str(wf), "--env", "capitals", "--limit", "3", "--model", model])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"{3 * (PROMPT - REUSED)} processed, {3 * REUSED} reused" in evaluated.stdout
    ran = runner.invoke(app, ["run", str(wf), "-i", "question=why", "--model", model, "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["tokens"]["reused_prompt"] == REUSED
    footer = runner.invoke(app, ["run", str(wf), "-i", "question=how", "--model", model])
    assert footer.exit_code == 0, footer.output
    assert f"({REUSED} prompt reused)" in footer.stderr
