"""Cached usage is not spend: fresh and cached tokens and cost are reported apart, at every level."""

from __future__ import annotations

import textwrap
from typing import Any

from agentforge.evaluation.evaluator import evaluate
from agentforge.runtime.trace import LLMCall, NodeTrace, Trace
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from tests.unit.sample_envs import EchoEnv
from tests.unit.sample_workflows import QA


def test_a_cached_rerun_reports_zero_fresh_tokens(scripted: Any) -> None:
    model, script = scripted
    script.default = "a short answer"
    wf = Workflow(spec_from_text(textwrap.dedent(QA)))
    first = evaluate(wf, EchoEnv(), split="val", model=model).summary()
    again = evaluate(wf, EchoEnv(), split="val", model=model).summary()
    assert first["prompt_tokens"] > 0 and first["completion_tokens"] > 0 and first["cached_prompt_tokens"] == 0
    assert again["cached_calls"] == again["llm_calls"] == 3
    assert again["prompt_tokens"] == again["completion_tokens"] == 0 and again["cost"] == 0
    assert again["cached_prompt_tokens"] == first["prompt_tokens"]
    assert again["cached_completion_tokens"] == first["completion_tokens"]


def test_a_cached_single_run_reports_its_tokens_as_cached(scripted: Any) -> None:
    model, script = scripted
    script.default = "a short answer"
    wf = Workflow(spec_from_text(textwrap.dedent(QA)))
    first = wf.run({"question": "why?"}, model=model).trace
    again = wf.run({"question": "why?"}, model=model).trace
    assert again.cached_calls == 1 and first.cached_calls == 0
    assert (again.prompt_tokens, again.completion_tokens) == (0, 0)
    assert (again.cached_prompt_tokens, again.cached_completion_tokens) == (first.prompt_tokens,
                                                                            first.completion_tokens)
    assert again.summary()["cached_prompt_tokens"] == first.summary()["prompt_tokens"] > 0


def call(tokens: int, cost: float, cached: bool) -> LLMCall:
    return LLMCall(model="m", messages=[], texts=["x"], prompt_tokens=tokens, completion_tokens=1, cost=cost,
                   cached=cached)


def test_fresh_and_cached_usage_add_up_through_nested_nodes() -> None:
    child = NodeTrace(node="inner", kind="agent", started_at=0, llm_calls=[call(7, 0.5, True), call(3, 0.25, False)])
    node = NodeTrace(node="sub", kind="subworkflow", started_at=0, llm_calls=[call(10, 1.0, False)], children=[child])
    trace = Trace(run_id="r", workflow="w", workflow_hash="h", nodes=[node])
    assert (trace.prompt_tokens, trace.cached_prompt_tokens) == (13, 7)
    assert (trace.completion_tokens, trace.cached_completion_tokens) == (2, 1)
    assert (trace.cost, trace.cached_cost) == (1.25, 0.5)
    assert (trace.llm_calls, trace.cached_calls) == (3, 1)
