"""Every node kind, run through the real compiler and LangGraph with the scripted model."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentforge.errors import InputError, NodeError
from agentforge.llm.base import LLMRequest
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from tests.conftest import WORKFLOWS


def make(yaml_text: str, path: Path | None = None) -> Workflow:
    text = textwrap.dedent(yaml_text)
    if path is not None:
        path.write_text(text)
        return Workflow.from_yaml(path)
    return Workflow(spec_from_text(text))


CHAIN = """
version: 1
name: chain
inputs: {question: str}
outputs: {answer: str}
nodes:
  - id: draft
    kind: agent
    instruction: Draft.
    prompt: "Q: {question}"
    inputs: [question]
    outputs: [notes]
  - id: final
    kind: agent
    instruction: Finalise.
    prompt: "Notes: {notes}"
    inputs: [notes]
    outputs: [answer]
edges:
  - {from: draft, to: final}
"""


def test_agent_chain_passes_state_and_records_every_call(scripted: Any) -> None:
    model, script = scripted
    script.on("Q: why", "some notes").on("Notes: some notes", "the answer")
    result = make(CHAIN).run({"question": "why"}, model=model)
    assert result.outputs == {"answer": "the answer"}
    assert [n.node for n in result.trace.nodes] == ["draft", "final"]
    final = result.trace.nodes[1]
    assert final.inputs == {"notes": "some notes"}
    assert final.llm_calls[0].messages[0] == {"role": "system", "content": "Finalise."}
    assert result.trace.llm_calls == 2
    assert result.trace_path is not None and json.loads(result.trace_path.read_text())["status"] == "succeeded"


def test_typed_json_outputs_are_parsed_and_coerced(scripted: Any) -> None:
    model, script = scripted
    script.on("Count", '```json\n{"count": "7", "items": ["a", "b"]}\n```')
    wf = make("""
    version: 1
    name: typed
    inputs: {text: str}
    outputs: {count: int, items: "list[str]"}
    nodes:
      - id: count
        kind: agent
        prompt: "Count {text}"
        inputs: [text]
        outputs: {count: int, items: "list[str]"}
    """)
    result = wf.run({"text": "ab"}, model=model)
    assert result.outputs == {"count": 7, "items": ["a", "b"]}
    request: LLMRequest = script.calls[0]
    assert request.response_schema is not None
    assert request.response_schema["required"] == ["count", "items"]


def test_unparsable_reply_is_repaired_once_by_showing_the_error(scripted: Any) -> None:
    model, script = scripted
    script.on("could not be used", '{"n": 3}').on("How many", "three, I think")
    wf = make("""
    version: 1
    name: repair
    inputs: {q: str}
    outputs: {n: int}
    nodes:
      - {id: ask, kind: agent, prompt: "How many {q}", inputs: [q], outputs: {n: int}}
    """)
    result = wf.run({"q": "x"}, model=model)
    assert result.outputs == {"n": 3}
    assert len(result.trace.nodes[0].llm_calls) == 2
    assert "repairing" in result.trace.nodes[0].notes[0]


def test_reply_still_unparsable_after_repair_fails_the_node(scripted: Any) -> None:
    model, script = scripted
    script.default = "not a number"
    wf = make("""
    version: 1
    name: repair
    inputs: {q: str}
    outputs: {n: int}
    nodes:
      - {id: ask, kind: agent, prompt: "How many {q}", inputs: [q], outputs: {n: int}}
    """)
    with pytest.raises(NodeError, match="after one repair attempt") as info:
        wf.run({"q": "x"}, model=model)
    assert info.value.fields["node"] == "ask"


def test_demos_become_few_shot_turns_before_the_question(scripted: Any) -> None:
    model, script = scripted
    script.default = "B"
    wf = make("""
    version: 1
    name: demos
    inputs: {q: str}
    outputs: {a: str}
    nodes:
      - id: ask
        kind: agent
        prompt: "Q: {q}"
        inputs: [q]
        outputs: [a]
        demos:
          - {inputs: {q: "1+1"}, outputs: {a: "2"}}
    """)
    wf.run({"q": "2+2"}, model=model)
    roles = [(m.role, m.content) for m in script.calls[0].messages]
    assert roles == [("user", "Q: 1+1"), ("assistant", "2"), ("user", "Q: 2+2")]


def test_agent_with_n_samples_returns_the_majority(scripted: Any) -> None:
    model, script = scripted
    answers = iter(["7", " 7", "8"])
    script.default = lambda request: next(answers)
    wf = make("""
    version: 1
    name: vote
    inputs: {q: str}
    outputs: {a: str}
    nodes:
      - {id: ask, kind: agent, prompt: "{q}", inputs: [q], outputs: [a], n: 3, temperature: 0.8}
    """)
    result = wf.run({"q": "?"}, model=model)
    assert result.outputs["a"] == "7"
    assert script.calls[0].n == 3


def test_react_agent_calls_tools_and_sees_tool_errors_as_observations(scripted: Any) -> None:
    model, script = scripted
    script.on("Observation: 391", json.dumps({"thought": "done", "action": "finish", "args": {"answer": "391"}}))
    script.on("Observation: error", json.dumps({"thought": "retry", "action": "calculator",
                                                "args": {"expression": "17*23"}}))
    script.on("Q:", json.dumps({"thought": "compute", "action": "calculator", "args": {"expression": "17*/23"}}))
    wf = make("""
    version: 1
    name: react
    inputs: {q: str}
    outputs: {answer: str}
    nodes:
      - {id: solve, kind: agent, prompt: "Q: {q}", inputs: [q], outputs: [answer], tools: [calculator]}
    """)
    result = wf.run({"q": "17*23"}, model=model)
    assert result.outputs == {"answer": "391"}
    calls = result.trace.nodes[0].tool_calls
    assert [c.error for c in calls] == [True, False]
    assert calls[1].result == "391"
    schema = script.calls[0].response_schema
    assert schema is not None and {b["properties"]["action"]["const"] for b in schema["anyOf"]} == {
        "calculator", "finish"}


def test_react_agent_is_forced_to_finish_on_its_last_step(scripted: Any) -> None:
    model, script = scripted
    script.on("last step", json.dumps({"thought": "ok", "action": "finish", "args": {"answer": "gave up"}}))
    script.default = json.dumps({"thought": "again", "action": "calculator", "args": {"expression": "1+1"}})
    wf = make("""
    version: 1
    name: react
    inputs: {q: str}
    outputs: {answer: str}
    nodes:
      - {id: solve, kind: agent, prompt: "{q}", inputs: [q], outputs: [answer], tools: [calculator], max_steps: 3}
    """)
    result = wf.run({"q": "loop"}, model=model)
    assert result.outputs == {"answer": "gave up"}
    assert len(result.trace.nodes[0].tool_calls) == 2


def test_tool_node_passes_typed_values_and_renders_templates() -> None:
    wf = make("""
    version: 1
    name: tools
    inputs: {a: int, b: int}
    outputs: {total: float}
    nodes:
      - id: add
        kind: tool
        tool: calculator
        args: {expression: "{a} * {b} + 0.5"}
        inputs: [a, b]
        outputs: {total: float}
    """)
    result = wf.run({"a": 6, "b": 7})
    assert result.outputs == {"total": 42.5}
    assert result.trace.llm_calls == 0


ROUTER = """
version: 1
name: routed
inputs: {n: int}
outputs: {label: str}
nodes:
  - id: route
    kind: router
    inputs: [n]
    routes:
      - {when: "n > 10", to: big}
      - {when: "n < 0", to: negative}
    default: small
  - {id: big, kind: tool, tool: calculator, args: {expression: "1"}, outputs: [label]}
  - {id: small, kind: tool, tool: calculator, args: {expression: "2"}, outputs: [label]}
  - {id: negative, kind: tool, tool: calculator, args: {expression: "3"}, outputs: [label]}
"""


@pytest.mark.parametrize(("n", "label", "node"), [(50, "1", "big"), (3, "2", "small"), (-4, "3", "negative")])
def test_expression_router_takes_the_first_true_route_or_the_default(n: int, label: str, node: str) -> None:
    result = make(ROUTER).run({"n": n})
    assert result.outputs == {"label": label}
    assert [t.node for t in result.trace.nodes] == ["route", node]


def test_llm_router_is_constrained_to_its_labels(scripted: Any) -> None:
    model, script = scripted
    script.on("Decide which specialist", json.dumps({"route": "math"}))
    script.on("mathematician", "42")
    result = Workflow.from_yaml(WORKFLOWS / "router_specialist.yaml").run(
        {"question": "Which is 6*7?"}, model=model)
    assert result.outputs == {"answer": "42"}
    schema = script.calls[0].response_schema
    assert schema is not None and schema["properties"]["route"]["enum"] == ["math", "general"]


def test_bounded_loop_stops_after_max_iterations(scripted: Any) -> None:
    model, script = scripted
    script.on("Review the slogan", json.dumps({"approved": False, "feedback": "shorter"}))
    script.on("Write a one-line", "Cats rule")
    result = Workflow.from_yaml(WORKFLOWS / "refine_loop.yaml").run({"topic": "cats"}, model=model)
    assert [n.node for n in result.trace.nodes].count("write") == 3  # first draft + 2 revisions
    assert "max_iterations=2 reached" in result.trace.nodes[-1].notes[0]


def test_bounded_loop_exits_early_when_the_condition_holds(scripted: Any) -> None:
    model, script = scripted
    script.on("Review the slogan", json.dumps({"approved": True, "feedback": "good"}))
    script.on("Write a one-line", "Cats rule")
    result = Workflow.from_yaml(WORKFLOWS / "refine_loop.yaml").run({"topic": "cats"}, model=model)
    assert [n.node for n in result.trace.nodes] == ["write", "review", "check"]
    assert result.trace.nodes[0].inputs["feedback"] == "none yet"  # the state default


def test_parallel_branches_run_concurrently_and_the_join_waits_for_both(scripted: Any) -> None:
    model, _ = scripted
    in_flight = {"now": 0, "max": 0}

    async def slow(request: LLMRequest) -> str:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(0.05)
        in_flight["now"] -= 1
        return "x"

    class Slow:
        async def acomplete(self, request: LLMRequest) -> Any:
            from agentforge.llm.base import RawCompletion

            text = json.dumps({"winner": "pro", "verdict": "ok"}) if "FOR:" in request.prompt_text() else \
                await slow(request)
            return RawCompletion(texts=(text,))

    from agentforge.llm.scripted import register_script

    register_script(model.split("/", 1)[1], Slow())  # type: ignore[arg-type]
    result = Workflow.from_yaml(WORKFLOWS / "debate.yaml").run({"motion": "m"}, model=model)
    assert in_flight["max"] == 2
    assert [n.node for n in result.trace.nodes][-1] == "judge"
    assert result.outputs["winner"] == "pro"


def test_append_reducer_collects_values_from_parallel_branches() -> None:
    wf = make("""
    version: 1
    name: fan
    outputs: {total: float}
    state:
      parts: {type: "list[float]", reducer: append}
    entry: [a, b, c]
    nodes:
      - {id: a, kind: tool, tool: calculator, args: {expression: "1"}, outputs: {parts: float}}
      - {id: b, kind: tool, tool: calculator, args: {expression: "2"}, outputs: {parts: float}}
      - {id: c, kind: tool, tool: calculator, args: {expression: "4"}, outputs: {parts: float}}
      - id: sum
        kind: code
        source: "print(sum(parts))"
        inputs: [parts]
        outputs: {total: float}
    edges:
      - {from: [a, b, c], to: sum}
    """)
    result = wf.run({})
    assert result.outputs == {"total": 7.0}


def test_parallel_writes_to_one_field_without_a_reducer_fail_with_advice() -> None:
    wf = make("""
    version: 1
    name: clash
    outputs: {x: float}
    entry: [a, b]
    nodes:
      - {id: a, kind: tool, tool: calculator, args: {expression: "1"}, outputs: {x: float}}
      - {id: b, kind: tool, tool: calculator, args: {expression: "2"}, outputs: {x: float}}
    """)
    with pytest.raises(NodeError, match="reducer"):
        wf.run({})


def test_ensemble_votes_across_concurrent_samples_with_distinct_seeds(scripted: Any) -> None:
    model, script = scripted
    replies = {0: "A", 1: "B", 2: "B", 3: "A", 4: "B"}
    script.default = lambda request: replies[request.seed or 0]
    wf = make("""
    version: 1
    name: ens
    inputs: {q: str}
    outputs: {a: str}
    nodes:
      - id: vote
        kind: ensemble
        n: 5
        member: {instruction: Answer., prompt: "{q}"}
        inputs: [q]
        outputs: [a]
    """)
    result = wf.run({"q": "?"}, model=model)
    assert result.outputs == {"a": "B"}
    assert sorted(c.seed for c in script.calls) == [0, 1, 2, 3, 4]
    assert all(c.temperature == 0.7 for c in script.calls)
    assert len(result.trace.nodes[0].children) == 5


def test_ensemble_select_lets_a_judge_pick_a_candidate(scripted: Any) -> None:
    model, script = scripted
    script.on("Candidate 1", json.dumps({"best": 2}))
    script.default = lambda request: f"answer-{request.seed}"
    wf = make("""
    version: 1
    name: ens
    inputs: {q: str}
    outputs: {a: str}
    nodes:
      - id: pick
        kind: ensemble
        n: 3
        strategy: select
        member: {instruction: Answer., prompt: "{q}"}
        inputs: [q]
        outputs: [a]
    """)
    result = wf.run({"q": "?"}, model=model)
    assert result.outputs == {"a": "answer-1"}
    assert "judge picked candidate 2" in result.trace.nodes[0].notes


def test_code_node_runs_generated_code_with_inputs_in_the_sandbox(scripted: Any) -> None:
    model, script = scripted
    script.default = "Here you go:\n```python\nprint(17 * 23 + offset)\n```"
    wf = make("""
    version: 1
    name: code
    inputs: {problem: str, offset: int}
    outputs: {answer: int}
    nodes:
      - {id: write, kind: agent, prompt: "{problem}", inputs: [problem], outputs: [program]}
      - {id: run, kind: code, code_from: program, inputs: [program, offset], outputs: {answer: int}}
    edges: [{from: write, to: run}]
    """)
    assert wf.run({"problem": "p", "offset": 4}, model=model).outputs == {"answer": 395}


def test_code_node_failure_fails_the_run_with_the_error_text() -> None:
    wf = make("""
    version: 1
    name: code
    outputs: {answer: int}
    nodes:
      - {id: run, kind: code, source: "raise ValueError('bad input')", outputs: {answer: int}}
    """)
    with pytest.raises(NodeError, match="bad input"):
        wf.run({})


def test_code_node_on_error_continue_records_the_error_and_goes_on() -> None:
    wf = make("""
    version: 1
    name: code
    outputs: {answer: int}
    nodes:
      - {id: run, kind: code, source: "while True: pass", timeout: 1, on_error: continue, outputs: {answer: int}}
    """)
    result = wf.run({})
    assert result.outputs == {"answer": 0}
    assert result.trace.nodes[0].error == "timed out"


def test_code_node_with_several_outputs_reads_a_json_last_line() -> None:
    wf = make("""
    version: 1
    name: code
    outputs: {a: int, b: str}
    nodes:
      - id: run
        kind: code
        source: "import json\\nprint('noise')\\nprint(json.dumps({'a': 1, 'b': 'x'}))"
        outputs: {a: int, b: str}
    """)
    assert wf.run({}).outputs == {"a": 1, "b": "x"}


def test_subworkflow_runs_the_child_file_and_nests_its_trace(tmp_path: Path, scripted: Any) -> None:
    model, script = scripted
    script.on("Q: hi", "notes").on("Notes: notes", "done")
    (tmp_path / "child.yaml").write_text(textwrap.dedent(CHAIN))
    wf = make("""
    version: 1
    name: parent
    inputs: {question: str}
    outputs: {answer: str}
    nodes:
      - {id: inner, kind: subworkflow, workflow: child.yaml, inputs: [question], outputs: [answer]}
    """, tmp_path / "parent.yaml")
    result = wf.run({"question": "hi"}, model=model)
    assert result.outputs == {"answer": "done"}
    assert [c.node for c in result.trace.nodes[0].children] == ["draft", "final"]
    assert result.trace.llm_calls == 2


def test_inputs_are_checked_coerced_and_defaulted() -> None:
    wf = make("""
    version: 1
    name: inputs
    inputs:
      n: int
      scale: {type: float, default: 2.0}
    outputs: {out: float}
    nodes:
      - {id: calc, kind: tool, tool: calculator, args: {expression: "{n} * {scale}"}, inputs: [n, scale],
         outputs: {out: float}}
    """)
    assert wf.run({"n": "21"}).outputs == {"out": 42.0}
    with pytest.raises(InputError, match="missing input 'n'"):
        wf.run({})
    with pytest.raises(InputError, match="input 'n' must be int"):
        wf.run({"n": "many"})
    with pytest.raises(InputError, match="did you mean 'scale'"):
        wf.run({"n": 1, "scael": 3})


def test_run_batch_limits_concurrency_and_reports_failures_per_item(scripted: Any) -> None:
    model, _ = scripted
    in_flight = {"now": 0, "max": 0}

    class Counting:
        async def acomplete(self, request: LLMRequest) -> Any:
            from agentforge.errors import LLMError
            from agentforge.llm.base import RawCompletion

            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            await asyncio.sleep(0.02)
            in_flight["now"] -= 1
            if "Q: bad" in request.prompt_text():
                raise LLMError("refused")
            return RawCompletion(texts=("fine",))

    from agentforge.llm.scripted import register_script

    register_script(model.split("/", 1)[1], Counting())  # type: ignore[arg-type]
    wf = make("""
    version: 1
    name: one
    inputs: {question: str}
    outputs: {answer: str}
    nodes:
      - {id: a, kind: agent, prompt: "Q: {question}", inputs: [question], outputs: [answer]}
    """)
    items = [{"question": f"q{i}"} for i in range(9)] + [{"question": "bad"}]
    results = wf.run_batch(items, concurrency=3, model=model)
    assert in_flight["max"] == 3
    assert [r.ok for r in results] == [True] * 9 + [False]
    assert "refused" in (results[-1].error or "")


def test_sync_method_inside_a_running_loop_says_to_await_the_async_twin() -> None:
    wf = make(ROUTER)

    async def inside() -> None:
        wf.run({"n": 1})

    with pytest.raises(RuntimeError, match="await"):
        asyncio.run(inside())


async def test_async_run_matches_sync_run() -> None:
    result = await make(ROUTER).arun({"n": 50})
    assert result.outputs == {"label": "1"}
