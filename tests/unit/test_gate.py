"""The gate: its contract (verdicts, all_of/any_of, needs-approval) and this issue's four invariants."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentforge.errors import SafetyViolation
from agentforge.safety import (
    Caps,
    Gate,
    GateConfig,
    GateEvidence,
    LeakIndex,
    LengthCap,
    NoAnswerLeak,
    ProtectedNodes,
    Reason,
    Verdict,
    all_of,
    any_of,
    default_gate,
    estimate_run,
    example_text,
)
from agentforge.safety.gate import model_price
from agentforge.workflow.edits import (
    AddEdge,
    AddNode,
    Candidate,
    Change,
    RemoveEdge,
    RemoveNode,
    ReplaceNode,
    SetComponent,
    SetField,
    SetSampling,
    SetTools,
)
from agentforge.workflow.loader import load_spec, spec_from_text
from agentforge.workflow.nodes.base import Edge
from agentforge.workflow.spec import WorkflowSpec
from tests.conftest import WORKFLOWS
from tests.unit.sample_workflows import GUARDED, QA

# The protected judge waits for two parallel branches (a join).
JOINED = """
version: 1
name: joined
inputs: {motion: str}
outputs: {verdict: str}
entry: [pro, con]
nodes:
  - {id: pro, kind: agent, prompt: "M: {motion}", inputs: [motion], outputs: [pro_case]}
  - {id: con, kind: agent, prompt: "M: {motion}", inputs: [motion], outputs: [con_case]}
  - {id: judge, kind: agent, prompt: "{pro_case} {con_case}", inputs: [pro_case, con_case], outputs: [verdict],
     protected: true}
edges:
  - {from: [pro, con], to: judge}
"""


def edge(src: str | list[str], dst: str | list[str]) -> Edge:
    return Edge.model_validate({"from": src, "to": dst})


def propose(parent: WorkflowSpec, *edits: Any) -> Candidate:
    return Candidate.of(parent.apply(list(edits), Change(author="test")))


def reasons_of(verdict: Verdict, monitor: str) -> list[Reason]:
    return [r for r in verdict.reasons if r.monitor == monitor]


def guarded() -> WorkflowSpec:
    return spec_from_text(GUARDED)


EMPTY = GateEvidence()


# -- the contract ------------------------------------------------------------------------------
class Fixed:
    """A monitor that always decides the same way (a real Monitor, for combining)."""

    def __init__(self, name: str, decision: str) -> None:
        self.name, self.decision = name, decision

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence) -> Verdict:
        reasons = () if self.decision == "accept" else (Reason(monitor=self.name, message=self.decision),)
        return Verdict(decision=self.decision, reasons=reasons)  # type: ignore[arg-type]


def test_all_of_rejects_if_any_rejects_and_keeps_every_reason_in_order() -> None:
    parent = guarded()
    cand = propose(parent, SetComponent(name="draft.instruction", value="Draft."))
    verdict = all_of(Fixed("a", "needs_approval"), Fixed("b", "reject"), Fixed("c", "accept")).check(
        parent, cand, EMPTY)
    assert verdict.decision == "reject" and not verdict.accepted
    assert [r.monitor for r in verdict.reasons] == ["a", "b"]
    assert all_of(Fixed("a", "accept"), Fixed("b", "needs_approval")).check(parent, cand, EMPTY).decision == \
        "needs_approval"
    assert all_of(Fixed("a", "accept"), Fixed("b", "accept")).check(parent, cand, EMPTY).accepted


def test_any_of_accepts_if_one_accepts_and_otherwise_keeps_the_mildest_refusal() -> None:
    parent = guarded()
    cand = propose(parent, SetComponent(name="draft.instruction", value="Draft."))
    assert any_of(Fixed("a", "reject"), Fixed("b", "accept")).check(parent, cand, EMPTY).accepted
    mild = any_of(Fixed("a", "reject"), Fixed("b", "needs_approval")).check(parent, cand, EMPTY)
    assert mild.decision == "needs_approval" and [r.monitor for r in mild.reasons] == ["a", "b"]
    assert any_of(Fixed("a", "reject"), Fixed("b", "reject")).check(parent, cand, EMPTY).decision == "reject"
    # Real monitors: a long instruction breaks the length cap, which an any_of with a passing monitor forgives.
    long = propose(parent, SetComponent(name="draft.instruction", value="x" * 5000))
    assert not all_of(ProtectedNodes(), LengthCap()).check(parent, long, EMPTY).accepted
    assert any_of(ProtectedNodes(), LengthCap()).check(parent, long, EMPTY).accepted


def test_verdict_describes_its_reasons_and_require_raises_a_safety_violation() -> None:
    verdict = Verdict.reject(Reason(monitor="caps", message="too many calls", evidence="9 calls",
                                    threshold="max_calls_per_task=3"))
    assert verdict.describe() == ("reject\n"
                                  "  - [caps] too many calls (evidence: 9 calls; threshold: max_calls_per_task=3)")
    with pytest.raises(SafetyViolation, match="too many calls"):
        verdict.require()
    Verdict.accept().require()
    assert Verdict.needs_approval().decision == "needs_approval"


def test_gate_names_its_monitors_and_default_gate_takes_its_config_as_a_mapping() -> None:
    gate = default_gate({"max_nodes": 3})
    assert gate.names == ["protected_nodes", "caps", "length_cap", "no_answer_leak"]
    with pytest.raises(ValidationError, match="max_nodez"):
        default_gate({"max_nodez": 3})


# -- 1. protected nodes ------------------------------------------------------------------------
def test_an_unrelated_edit_passes_the_protected_node_check() -> None:
    parent = guarded()
    cand = propose(parent, SetComponent(name="draft.instruction", value="Draft a short answer."),
                   SetSampling(node="draft", param="temperature", value=0.3))
    assert ProtectedNodes().check(parent, cand, EMPTY).accepted


def test_removing_a_protected_node_is_rejected() -> None:
    parent = guarded()
    cand = propose(parent, RemoveEdge(edge=edge("draft", "guard")), RemoveNode(id="guard"),
                   ReplaceNode(node={**parent.node("draft").model_dump(), "outputs": ["answer"]}))
    (reason,) = ProtectedNodes().check(parent, cand, EMPTY).reasons
    assert reason.monitor == "protected_nodes" and "removed" in reason.message
    assert "guard" in reason.evidence and reason.threshold


def test_rewriting_a_protected_nodes_instruction_is_rejected() -> None:
    parent = guarded()
    cand = propose(parent, SetComponent(name="guard.instruction", value="Pass the draft on."))
    verdict = ProtectedNodes().check(parent, cand, EMPTY)
    assert verdict.decision == "reject"
    assert "rewritten" in verdict.reasons[0].message and "instruction" in verdict.reasons[0].evidence


def test_unprotecting_a_node_is_rejected() -> None:
    parent = guarded()
    cand = propose(parent, ReplaceNode(node={**parent.node("guard").model_dump(), "protected": False}))
    (reason,) = ProtectedNodes().check(parent, cand, EMPTY).reasons
    assert "no longer protected" in reason.message and "guard" in reason.evidence


def test_a_bypass_edge_around_a_protected_node_is_rejected_with_the_route() -> None:
    parent = guarded()
    cand = propose(parent, AddEdge(edge=edge("draft", "END")))
    (reason,) = ProtectedNodes().check(parent, cand, EMPTY).reasons
    assert "bypassed" in reason.message
    assert reason.evidence == "route START -> draft -> END skips 'guard'"


def test_a_new_entry_that_skips_the_protected_node_is_a_bypass() -> None:
    parent = guarded()
    extra = {"id": "shortcut", "kind": "agent", "prompt": "{question}", "inputs": ["question"], "outputs": ["answer"]}
    cand = propose(parent, AddNode(node=extra), SetField(field="entry", value=["draft", "shortcut"]))
    verdict = ProtectedNodes().check(parent, cand, EMPTY)
    assert verdict.decision == "reject" and "START -> shortcut -> END" in verdict.reasons[0].evidence


def test_a_parallel_branch_that_joins_before_the_protected_node_is_not_a_bypass() -> None:
    parent = spec_from_text(JOINED)
    extra = {"id": "facts", "kind": "agent", "prompt": "{motion}", "inputs": ["motion"], "outputs": ["facts"]}
    joined = propose(parent, AddNode(node=extra), SetField(field="entry", value=["pro", "con", "facts"]),
                     RemoveEdge(edge=edge(["pro", "con"], "judge")),
                     AddEdge(edge=edge(["pro", "con", "facts"], "judge")))
    assert ProtectedNodes().check(parent, joined, EMPTY).accepted
    # The same branch left to end on its own routes around the judge.
    loose = propose(parent, AddNode(node=extra), SetField(field="entry", value=["pro", "con", "facts"]))
    assert "START -> facts -> END" in ProtectedNodes().check(parent, loose, EMPTY).reasons[0].evidence


def test_a_join_that_waits_on_a_node_behind_the_protected_one_is_not_a_bypass() -> None:
    parent = spec_from_text(GUARDED)
    post = {"id": "post", "kind": "agent", "prompt": "{answer}", "inputs": ["answer"], "outputs": ["checked"]}
    final = {"id": "final", "kind": "agent", "prompt": "{draft} {checked}", "inputs": ["draft", "checked"],
             "outputs": ["summary"]}
    # draft -> guard -> post; final waits for draft and post: every route to END still passes the guard.
    cand = propose(parent, AddNode(node=post), AddNode(node=final), AddEdge(edge=edge("guard", "post")),
                   AddEdge(edge=edge(["draft", "post"], "final")))
    assert ProtectedNodes().check(parent, cand, EMPTY).accepted


def test_a_parent_that_is_already_bypassable_fails_only_children_that_add_a_new_route() -> None:
    parent = guarded().apply([AddEdge(edge=edge("draft", "END"))])
    assert ProtectedNodes().check(parent, propose(parent, SetComponent(name="draft.instruction", value="D.")),
                                  EMPTY).accepted
    extra = {"id": "shortcut", "kind": "agent", "prompt": "{question}", "inputs": ["question"], "outputs": ["x"]}
    worse = propose(parent, AddNode(node=extra), SetField(field="entry", value=["draft", "shortcut"]))
    assert ProtectedNodes().check(parent, worse, EMPTY).decision == "reject"


# -- 2. caps -----------------------------------------------------------------------------------
def qa() -> WorkflowSpec:
    return spec_from_text(QA)


def free(model: str) -> tuple[float, float]:
    return (0.0, 0.0)


def test_every_shipped_workflow_passes_the_default_gate() -> None:
    seed = qa()
    for path in sorted(WORKFLOWS.glob("*.yaml")):
        spec = load_spec(path)
        estimate = estimate_run(spec)
        config = GateConfig(check_all=True)
        assert config.max_calls_per_task is not None and estimate.calls <= config.max_calls_per_task, path.name
        assert config.max_tokens_per_task is not None and estimate.tokens <= config.max_tokens_per_task, path.name
        itself = Candidate(spec=spec, parent_hash=spec.hash, change=Change())
        assert default_gate(config).check(spec, itself).accepted, path.name
        # Grown from a one-node seed, every shipped workflow is still within every cap.
        grown = Candidate(spec=spec, parent_hash=seed.hash, change=Change())
        verdict = default_gate(config).check(seed, grown)
        assert verdict.accepted, (path.name, verdict.describe())


def test_estimate_counts_react_steps_samples_loops_ensembles_and_subworkflows(tmp_path: Path) -> None:
    one = estimate_run(qa())
    assert one.calls == 1 and one.completion_tokens == 512  # the default max_tokens
    sampled = estimate_run(qa().apply([SetSampling(node="ask", param="n", value=4)]))
    assert sampled.calls == 1 and sampled.completion_tokens == 4 * 512
    react = estimate_run(qa().apply([SetTools(node="ask", tools=("calculator",))]))
    assert react.calls == 6 and react.completion_tokens == 6 * 512  # max_steps defaults to 6
    loop = estimate_run(load_spec(WORKFLOWS / "refine_loop.yaml"))  # write and review, max_iterations 2
    assert loop.calls == 2 * 3 and loop.by_node["write"][0] == 3
    ensemble = spec_from_text("""
version: 1
name: vote
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: many, kind: ensemble, n: 5, strategy: select, member: {prompt: "{question}"}, inputs: [question],
     outputs: [answer]}
""")
    assert estimate_run(ensemble).calls == 5 + 1  # members, then the judge
    (tmp_path / "child.yaml").write_text(load_spec(WORKFLOWS / "refine_loop.yaml").model_dump_json(by_alias=True))
    (tmp_path / "parent.yaml").write_text("""
version: 1
name: outer
inputs: {topic: str}
outputs: {draft: str}
nodes:
  - {id: sub, kind: subworkflow, workflow: child.yaml, inputs: [topic], outputs: [draft]}
  - {id: polish, kind: agent, prompt: "{draft}", inputs: [draft], outputs: [final]}
edges:
  - {from: sub, to: polish}
""")
    outer = estimate_run(load_spec(tmp_path / "parent.yaml"))
    assert outer.calls == 6 + 1 and outer.by_node["sub"][0] == 6 and not outer.unresolved


def test_a_candidate_over_the_call_cap_is_rejected_naming_the_node_that_spends() -> None:
    parent = qa()
    caps = Caps(GateConfig(max_calls_per_task=3), price=free)
    react = propose(parent, SetTools(node="ask", tools=("calculator",)))
    (reason,) = caps.check(parent, react, EMPTY).reasons
    assert reason.monitor == "caps" and reason.threshold == "max_calls_per_task=3"
    assert reason.evidence.startswith("6 calls") and "ask: 6 calls" in reason.evidence
    assert caps.check(parent, propose(parent, SetComponent(name="ask.instruction", value="Be brief.")), EMPTY).accepted


def test_calls_measured_on_the_parent_scale_the_candidates_estimate() -> None:
    parent = qa()
    extra = {"id": "check", "kind": "agent", "prompt": "{answer}", "inputs": ["answer"], "outputs": ["ok"]}
    cand = propose(parent, AddNode(node=extra), AddEdge(edge=edge("ask", "check")))  # 1 -> 2 estimated calls
    caps = Caps(GateConfig(max_calls_per_task=3), price=free)
    assert caps.check(parent, cand, EMPTY).accepted
    # The parent was measured at 2 calls a task (repairs): twice the estimate, so the candidate projects to 4.
    (reason,) = caps.check(parent, cand, GateEvidence(parent_calls_per_task=2.0)).reasons
    assert reason.evidence.startswith("4 calls (parent measured 2)")


def test_token_node_and_cost_caps_each_reject_with_their_threshold() -> None:
    parent = qa()
    sampled = propose(parent, SetSampling(node="ask", param="n", value=8))
    (tokens,) = Caps(GateConfig(max_tokens_per_task=2000), price=free).check(parent, sampled, EMPTY).reasons
    assert tokens.threshold == "max_tokens_per_task=2000" and "tokens" in tokens.message
    priced = Caps(GateConfig(max_cost_per_task=0.005), price=lambda model: (1e-6, 2e-6))
    (cost,) = priced.check(parent, sampled, EMPTY).reasons  # 8 x 512 completion tokens at $2e-6
    assert cost.threshold == "max_cost_per_task=0.005" and cost.evidence.startswith("$0.008")
    extra = {"id": "check", "kind": "code", "source": "print(1)", "inputs": ["answer"], "outputs": ["ok"]}
    bigger = propose(parent, AddNode(node=extra), AddEdge(edge=edge("ask", "check")))
    (nodes,) = Caps(GateConfig(max_nodes=1), price=free).check(parent, bigger, EMPTY).reasons
    assert nodes.threshold == "max_nodes=1" and nodes.evidence.startswith("2 nodes")


def test_a_parent_already_over_a_cap_fails_only_children_that_spend_more() -> None:
    parent = qa().apply([SetSampling(node="ask", param="n", value=8)])
    caps = Caps(GateConfig(max_tokens_per_task=2000), price=free)
    assert caps.check(parent, propose(parent, SetSampling(node="ask", param="n", value=6)), EMPTY).accepted
    assert not caps.check(parent, propose(parent, SetSampling(node="ask", param="n", value=10)), EMPTY).accepted


def test_a_model_with_no_known_price_needs_approval_and_the_gate_passes_that_on() -> None:
    parent = qa()
    prices = {"local": (0.0, 0.0)}
    cand = propose(parent, SetSampling(node="ask", param="model", value="mystery/model"))
    caps = Caps(GateConfig(), price=prices.get)
    verdict = caps.check(parent, cand, EMPTY)
    assert verdict.decision == "needs_approval" and "mystery/model" in verdict.reasons[0].evidence
    gate = Gate(ProtectedNodes(), caps, LengthCap())
    assert gate.check(parent, cand).decision == "needs_approval"
    both = propose(parent, SetSampling(node="ask", param="model", value="mystery/model"),
                   SetComponent(name="ask.instruction", value="x" * 5000))
    rejected = gate.check(parent, both)  # a rejection outranks a request for approval; both reasons stay
    assert rejected.decision == "reject" and rejected.monitors() == ("caps", "length_cap")


def test_model_price_reads_litellms_table_and_keeps_local_and_scripted_models_free() -> None:
    assert model_price("local") == (0.0, 0.0) and model_price("scripted/x") == (0.0, 0.0)
    price = model_price("gpt-4o-mini")
    assert price is not None and price[0] > 0 and price[1] > 0
    assert model_price("no-such-provider/no-such-model") is None


# -- 3. length caps ----------------------------------------------------------------------------
def test_a_component_over_the_length_cap_is_rejected_and_one_under_it_passes() -> None:
    parent = qa()
    cap = LengthCap(GateConfig(max_component_chars=100))
    (reason,) = cap.check(parent, propose(parent, SetComponent(name="ask.instruction", value="y" * 101)),
                          EMPTY).reasons
    assert reason.monitor == "length_cap" and reason.evidence == "ask.instruction: 101 chars"
    assert reason.threshold == "max_component_chars=100"
    assert cap.check(parent, propose(parent, SetComponent(name="ask.instruction", value="y" * 100)), EMPTY).accepted


def test_more_demos_than_the_cap_are_rejected() -> None:
    parent = qa()
    demos = [{"inputs": {"question": f"q{i}"}, "outputs": {"answer": f"a{i}"}} for i in range(4)]
    cap = LengthCap(GateConfig(max_demos=3))
    (reason,) = cap.check(parent, propose(parent, SetComponent(name="ask.demos", value=demos)), EMPTY).reasons
    assert reason.evidence == "ask.demos: 4 demos" and reason.threshold == "max_demos=3"
    assert cap.check(parent, propose(parent, SetComponent(name="ask.demos", value=demos[:3])), EMPTY).accepted


def test_prompt_text_may_not_grow_past_the_factor_over_the_parent() -> None:
    parent = qa().apply([SetComponent(name="ask.instruction", value="i" * 1500)])
    cap = LengthCap()
    grown = propose(parent, SetComponent(name="ask.instruction", value="i" * 3100))  # 3.1k > 2 x 1.5k
    (reason,) = cap.check(parent, grown, EMPTY).reasons
    assert "grew" in reason.message and "max_prompt_growth=2" in reason.threshold
    assert cap.check(parent, propose(parent, SetComponent(name="ask.instruction", value="i" * 2900)), EMPTY).accepted
    # A small parent grows against the floor: 1,000 chars x 2.
    small = qa()
    assert cap.check(small, propose(small, SetComponent(name="ask.instruction", value="s" * 1900)), EMPTY).accepted
    assert not cap.check(small, propose(small, SetComponent(name="ask.instruction", value="s" * 2100)),
                         EMPTY).accepted


def test_a_parent_already_over_the_length_cap_does_not_fail_a_child_that_left_that_text_alone() -> None:
    parent = qa().apply([SetComponent(name="ask.instruction", value="z" * 5000)])
    child = propose(parent, SetComponent(name="ask.prompt", value="Question: {question}"))
    assert LengthCap().check(parent, child, EMPTY).accepted
    (reason,) = LengthCap(GateConfig(check_all=True)).check(parent, child, EMPTY).reasons
    assert reason.evidence == "ask.instruction: 5000 chars"


# -- 4. no answer leaks ------------------------------------------------------------------------
LEAKY = GateEvidence(
    answers={
        "train": ("The mitochondria is the powerhouse of the cell",),
        "val": ("Water boils at one hundred degrees Celsius at sea level",),
        "test": ("Paris, France", "12", "yes", "Canberra is the capital city of Australia"),
    },
    examples={
        "train": ("What is the powerhouse of the cell?",),
        "val": ("At what temperature does water boil at sea level in degrees Celsius?",),
        "test": ("Which city is the capital of Australia, and why was it chosen?", "2+3"),
    },
)


def test_an_instruction_holding_a_span_of_a_test_answer_is_rejected_naming_the_span() -> None:
    parent = qa()
    text = "Remember: CANBERRA is the capital   city of Australia! Answer briefly."
    (reason,) = NoAnswerLeak().check(parent, propose(parent, SetComponent(name="ask.instruction", value=text)),
                                     LEAKY).reasons
    assert reason.monitor == "no_answer_leak" and "test answer" in reason.message
    assert reason.evidence == ("ask.instruction, words 1-7: 'canberra is the capital city of' = test answer #3")
    assert "leak_ngram=6" in reason.threshold


def test_answer_spans_of_train_and_val_leak_too_and_a_short_but_long_enough_answer_counts_whole() -> None:
    parent = qa()
    for text, split in [("Note the mitochondria is the powerhouse of everything.", "train"),
                        ("Water boils at one hundred degrees Celsius, usually.", "val"),
                        ("The answer might be paris france.", "test")]:
        cand = propose(parent, SetComponent(name="ask.prompt", value=text + " {question}"))
        verdict = NoAnswerLeak().check(parent, cand, LEAKY)
        assert verdict.decision == "reject" and f"{split} answer" in verdict.reasons[0].message, text


def test_tiny_answers_and_five_word_overlaps_are_not_leaks() -> None:
    parent = qa()
    text = "Reply yes or no, or a number such as 12. Canberra is the capital city. Be brief."
    assert NoAnswerLeak().check(parent, propose(parent, SetComponent(name="ask.instruction", value=text)),
                                LEAKY).accepted


def test_demos_may_hold_train_examples_but_not_val_or_test_ones() -> None:
    parent = qa()

    def with_demo(question: str) -> Candidate:
        demo = {"inputs": {"question": question}, "outputs": {"answer": "x"}}
        return propose(parent, SetComponent(name="ask.demos", value=[demo]))

    assert NoAnswerLeak().check(parent, with_demo("What is the powerhouse of the cell?"), LEAKY).accepted
    exact = NoAnswerLeak().check(parent, with_demo("  at what temperature does WATER boil at sea level in "
                                                   "degrees celsius"), LEAKY)
    (reason,) = exact.reasons
    assert "val example" in reason.message and reason.evidence.startswith("ask.demos[0] inputs match val example #0")
    near = NoAnswerLeak().check(parent, with_demo("Which city is the capital of Australia, and why was it chosen? "
                                                  "Think step by step."), LEAKY)
    assert near.decision == "reject" and "test example #0" in near.reasons[0].evidence
    assert not NoAnswerLeak().check(parent, with_demo("2+3"), LEAKY).accepted
    assert NoAnswerLeak().check(parent, with_demo("2 - 3"), LEAKY).accepted


def test_a_templated_train_task_with_other_numbers_is_not_a_held_out_example() -> None:
    template = "{} students are going on a trip in vans that carry {} students each. How many vans are needed?"
    evidence = GateEvidence(answers={"val": ("10",)}, examples={"val": (template.format(120, 12),)})
    parent = qa()

    def with_demo(question: str) -> Candidate:
        demo = {"inputs": {"question": question}, "outputs": {"answer": "5"}}
        return propose(parent, SetComponent(name="ask.demos", value=[demo]))

    assert NoAnswerLeak().check(parent, with_demo(template.format(55, 12)), evidence).accepted
    assert not NoAnswerLeak().check(parent, with_demo(template.format(120, 12) + " Explain."), evidence).accepted


def test_a_leak_already_in_the_parent_fails_only_children_that_change_that_text() -> None:
    parent = qa().apply([SetComponent(name="ask.instruction", value="Canberra is the capital city of Australia.")])
    child = propose(parent, SetSampling(node="ask", param="temperature", value=0.5))
    assert NoAnswerLeak().check(parent, child, LEAKY).accepted
    assert not NoAnswerLeak(GateConfig(check_all=True)).check(parent, child, LEAKY).accepted


def test_example_text_joins_input_values_in_order() -> None:
    assert example_text({"a": "x y", "b": 3}) == "x y\n3"
    assert example_text(["p", "q"]) == "p\nq"


def test_leak_index_is_built_once_per_evidence_and_checks_a_long_prompt_fast() -> None:
    # A third short answers (2-4 words), the rest 8-40 words; every word unique to its answer.
    answers = tuple(" ".join(f"ans{i}word{k}" for k in range(2 + (i // 3) % 3 if i % 3 == 0 else 8 + i % 33))
                    for i in range(1000))
    evidence = GateEvidence(answers={"train": answers[:600], "val": answers[600:800], "test": answers[800:]},
                            examples={"val": tuple(f"question {i} about w{i} and w{i + 1}" for i in range(200)),
                                      "test": tuple(f"question {i} on w{i}" for i in range(200))})
    started = time.perf_counter()
    index = LeakIndex.of(evidence, ngram=6, min_chars=12)
    built = time.perf_counter() - started
    assert LeakIndex.of(evidence, ngram=6, min_chars=12) is index
    prompt = ("Think carefully about the question and answer it in one line. " * 64)[:4000]
    started = time.perf_counter()
    for _ in range(20):
        assert index.answer_span(prompt) is None
    scan = (time.perf_counter() - started) / 20
    parent = qa().apply([SetComponent(name="ask.instruction", value=prompt[:3000])])
    cand = propose(parent, SetComponent(name="ask.instruction", value=prompt))
    gate = default_gate()
    gate.check(parent, cand, evidence)
    started = time.perf_counter()
    for _ in range(20):
        assert gate.check(parent, cand, evidence).accepted
    whole = (time.perf_counter() - started) / 20
    print(f"\nleak index of 1,000 answers: built in {built * 1e3:.1f} ms; a 4,000-char prompt scans in "
          f"{scan * 1e3:.2f} ms; the whole default gate checks a candidate in {whole * 1e3:.2f} ms")
    for i in (900, 901):  # a short answer found whole, a long one by a 6-word span
        leaked = prompt[:2000] + " " + answers[i] + " " + prompt[2000:]
        hit = index.answer_span(leaked)
        assert hit is not None and (hit.split, hit.index) == ("test", i - 800)
        assert not gate.check(parent, propose(parent, SetComponent(name="ask.instruction", value=leaked)),
                              evidence).accepted


def test_the_safety_package_exports_are_pinned() -> None:
    import agentforge.safety as safety

    assert sorted(safety.__all__) == [
        "Caps", "Decision", "Gate", "GateConfig", "GateEvidence", "LeakIndex", "LengthCap", "Monitor",
        "NoAnswerLeak", "ProtectedNodes", "Reason", "RunEstimate", "Verdict", "all_of", "any_of", "default_gate",
        "estimate_run", "example_text"]
    assert all(hasattr(safety, name) for name in safety.__all__)
