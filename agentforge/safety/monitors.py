"""The four monitors of the gate: protected nodes, caps, length caps, no answer leaks (see ``safety.gate``).

Each is pure: it reads the two specs and the evidence and returns a ``Verdict`` whose reasons name
the monitor, the evidence (node, component, span) and the threshold.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import networkx as nx

from agentforge.safety.base import GateEvidence, Reason, Verdict, example_text
from agentforge.safety.gate import END, START, GateConfig, LeakIndex, PriceLookup, RunEstimate, estimate_run, flow_edges
from agentforge.workflow.nodes.base import Component
from agentforge.workflow.spec import Candidate, WorkflowSpec

__all__ = ["Caps", "LengthCap", "NoAnswerLeak", "ProtectedNodes", "changed_components"]

TEXT_KINDS = ("text", "label", "code")
PROMPT_KINDS = ("text", "label", "demos")  # what a model reads; code runs instead


def changed_components(parent: WorkflowSpec, spec: WorkflowSpec) -> list[Component]:
    """The candidate's components that are new or whose value differs from the parent's."""
    before = {c.name: c.value for c in parent.components()}
    return [c for c in spec.components() if c.name not in before or before[c.name] != c.value]


def _scope(parent: WorkflowSpec, spec: WorkflowSpec, check_all: bool) -> Iterable[Component]:
    return spec.components() if check_all else changed_components(parent, spec)


# -- 1. protected nodes ------------------------------------------------------------------------
def bypass_edges(spec: WorkflowSpec, protected: str) -> tuple[set[tuple[str, str]], nx.DiGraph]:
    """The edges on some route from START to END that never passes ``protected``, and the graph they lie in.

    A join fires only once all its sources have run, so reachability is worked out with that "and"
    (a join waiting on the protected node never fires without it).
    """
    edges = [(srcs, dst) for srcs, dst in flow_edges(spec) if protected not in srcs and dst != protected]
    waiting = [len(set(srcs)) for srcs, _ in edges]
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, (srcs, _) in enumerate(edges):
        for src in set(srcs):
            by_source[src].append(i)
    reached, queue = {START}, [START]
    while queue:
        for i in by_source[queue.pop()]:
            waiting[i] -= 1
            target = edges[i][1]
            if waiting[i] == 0 and target not in reached:
                reached.add(target)
                queue.append(target)
    graph: nx.DiGraph = nx.DiGraph()
    if END not in reached:
        return set(), graph
    for srcs, dst in edges:
        if all(s in reached for s in srcs):
            graph.add_edges_from((s, dst) for s in srcs)
    to_end = nx.ancestors(graph, END) | {END}
    return {(u, v) for u, v in graph.edges if v in to_end}, graph


def _route(graph: nx.DiGraph, edges: set[tuple[str, str]], via: tuple[str, str]) -> str:
    sub = graph.edge_subgraph(edges)
    path = [*nx.shortest_path(sub, START, via[0]), *nx.shortest_path(sub, via[1], END)]
    return " -> ".join(path)


def _node_data(node: Any) -> dict[str, Any]:
    data: dict[str, Any] = node.model_dump(mode="json", by_alias=True)
    return data


class ProtectedNodes:
    """Every node the parent protects is in the candidate unchanged, still protected, and not routed around.

    Routing around means a route from an entry to END that skips the node. A parent that already had
    such a route fails only candidates that add a new one (an edge on a skipping route it did not have).
    """

    name = "protected_nodes"
    threshold = "protected nodes stay unchanged and on every entry-to-END route"

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence) -> Verdict:
        spec = candidate.spec
        now = {n.id: n for n in spec.nodes}
        reasons: list[Reason] = []
        for node in (n for n in parent.nodes if n.protected):
            new = now.get(node.id)
            if new is None:
                reasons.append(self._reason(f"protected node '{node.id}' was removed",
                                            f"node '{node.id}' ({node.kind}) is not in the candidate"))
                continue
            before, after = _node_data(node), _node_data(new)
            if before != after:
                fields = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
                if fields == ["protected"]:
                    reasons.append(self._reason(f"protected node '{node.id}' is no longer protected",
                                                f"node '{node.id}': protected: false"))
                else:
                    reasons.append(self._reason(f"protected node '{node.id}' was rewritten",
                                                f"node '{node.id}' changed {', '.join(fields)}"))
            had, _ = bypass_edges(parent, node.id)
            has, graph = bypass_edges(spec, node.id)
            new_edges = sorted(has - had)
            if new_edges:
                reasons.append(self._reason(f"protected node '{node.id}' can be bypassed",
                                            f"route {_route(graph, has, new_edges[0])} skips '{node.id}'"))
        return Verdict.reject(*reasons) if reasons else Verdict.accept()

    def _reason(self, message: str, evidence: str) -> Reason:
        return Reason(monitor=self.name, message=message, evidence=evidence, threshold=self.threshold)


# -- 2. caps -----------------------------------------------------------------------------------
class Caps:
    """Node count, and calls, tokens and dollars per task (``estimate_run``), each under its cap.

    When the parent's calls per task were measured, the candidate's are also projected from that
    figure (measured x candidate estimate / parent estimate), and the larger of estimate and
    projection is what is capped. A parent already over a cap fails only candidates that go further.
    """

    name = "caps"

    def __init__(self, config: GateConfig | None = None, *, price: PriceLookup | None = None) -> None:
        self.config = config or GateConfig()
        self.price = price

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence) -> Verdict:
        cfg = self.config
        new = estimate_run(candidate.spec, price=self.price)
        old = estimate_run(parent, price=self.price)
        new_calls, old_calls = float(new.calls), float(old.calls)
        measured = evidence.parent_calls_per_task
        if measured is not None and old.calls > 0:
            new_calls = max(new_calls, measured * new.calls / old.calls)
            old_calls = max(old_calls, measured)
        figures = [
            ("nodes", "max_nodes", cfg.max_nodes, float(len(candidate.spec.nodes)), float(len(parent.nodes)),
             f"{len(candidate.spec.nodes)} nodes"),
            ("calls per task", "max_calls_per_task", cfg.max_calls_per_task, new_calls, old_calls,
             f"{new_calls:g} calls" + (f" (parent measured {measured:g})" if measured is not None else "")),
            ("tokens per task", "max_tokens_per_task", cfg.max_tokens_per_task, float(new.tokens), float(old.tokens),
             f"{new.tokens} tokens"),
            ("cost per task", "max_cost_per_task", cfg.max_cost_per_task, new.cost, old.cost, f"${new.cost:.4f}"),
        ]
        reasons: list[Reason] = []
        for label, key, cap, value, before, shown in figures:
            if cap is None or value <= cap or (before > cap and value <= before):
                continue
            reasons.append(Reason(monitor=self.name, message=f"estimated {label} exceed the cap",
                                  evidence=f"{shown}; parent {before:g}; {_spenders(new)}",
                                  threshold=f"{key}={cap:g}"))
        if reasons:
            return Verdict.reject(*reasons)
        unpriced = sorted(set(new.unpriced) - set(old.unpriced))
        if unpriced and cfg.max_cost_per_task is not None and cfg.unpriced_model != "accept":
            reason = Reason(monitor=self.name, message="the candidate uses a model whose price is unknown",
                            evidence=f"models {', '.join(unpriced)} are not in the price table",
                            threshold=f"max_cost_per_task={cfg.max_cost_per_task:g}")
            return Verdict(decision=cfg.unpriced_model, reasons=(reason,))
        return Verdict.accept()


def _spenders(estimate: RunEstimate) -> str:
    top = estimate.top()
    return f"most from {top}" if top else "no model calls"


# -- 3. length caps ----------------------------------------------------------------------------
def prompt_chars(spec: WorkflowSpec) -> int:
    """The prompt text a spec carries: its instructions, templates, labels and demos (as JSON)."""
    total = 0
    for c in spec.components():
        if c.kind == "demos" and c.value:
            total += len(json.dumps(c.value, ensure_ascii=False))
        elif c.kind in PROMPT_KINDS and isinstance(c.value, str):
            total += len(c.value)
    return total


class LengthCap:
    """Each text component and each node's demos stay under their caps; the prompt text may not balloon.

    The candidate's prompt text may be at most ``max_prompt_growth`` times the parent's (or times
    ``growth_floor_chars``, for a parent with less).
    """

    name = "length_cap"

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence) -> Verdict:
        cfg = self.config
        reasons: list[Reason] = []
        for c in _scope(parent, candidate.spec, cfg.check_all):
            if c.kind in TEXT_KINDS and isinstance(c.value, str) and len(c.value) > cfg.max_component_chars:
                reasons.append(Reason(monitor=self.name, message=f"component '{c.name}' is too long",
                                      evidence=f"{c.name}: {len(c.value)} chars",
                                      threshold=f"max_component_chars={cfg.max_component_chars}"))
            elif c.kind == "demos" and isinstance(c.value, list) and len(c.value) > cfg.max_demos:
                reasons.append(Reason(monitor=self.name, message=f"component '{c.name}' has too many demos",
                                      evidence=f"{c.name}: {len(c.value)} demos",
                                      threshold=f"max_demos={cfg.max_demos}"))
        before, after = prompt_chars(parent), prompt_chars(candidate.spec)
        allowed = cfg.max_prompt_growth * max(before, cfg.growth_floor_chars)
        if after > allowed:
            reasons.append(Reason(
                monitor=self.name, message="the prompt text grew too much",
                evidence=f"{after} chars of prompt text, parent {before} ({after / max(before, 1):.1f}x)",
                threshold=f"max_prompt_growth={cfg.max_prompt_growth:g} over max(parent, "
                          f"growth_floor_chars={cfg.growth_floor_chars}) = {allowed:g} chars"))
        return Verdict.reject(*reasons) if reasons else Verdict.accept()


# -- 4. no answer leaks ------------------------------------------------------------------------
class NoAnswerLeak:
    """No instruction, template, label or code holds a verbatim span of any split's answer; no demo
    repeats a val or test example (demos of train examples are what few-shot demos are)."""

    name = "no_answer_leak"

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()

    def index(self, evidence: GateEvidence) -> LeakIndex:
        cfg = self.config
        return LeakIndex.of(evidence, ngram=cfg.leak_ngram, min_chars=cfg.leak_min_chars,
                            demo_ngram=cfg.demo_ngram, demo_overlap=cfg.demo_overlap)

    def check(self, parent: WorkflowSpec, candidate: Candidate, evidence: GateEvidence) -> Verdict:
        cfg = self.config
        index = self.index(evidence)
        if index.empty:
            return Verdict.accept()
        answer_rule = f"leak_ngram={cfg.leak_ngram} words, or a whole answer of >= leak_min_chars={cfg.leak_min_chars}"
        demo_rule = f"no val/test example; demo_overlap={cfg.demo_overlap:g} of its {cfg.demo_ngram}-grams"
        reasons: list[Reason] = []
        for c in _scope(parent, candidate.spec, cfg.check_all):
            if c.kind in TEXT_KINDS and isinstance(c.value, str):
                hit = index.answer_span(c.value)
                if hit is not None:
                    reasons.append(Reason(
                        monitor=self.name, message=f"component '{c.name}' holds a {hit.split} answer verbatim",
                        evidence=f"{c.name}, {hit.where()} = {hit.split} answer #{hit.index}",
                        threshold=answer_rule))
            elif c.kind == "demos" and isinstance(c.value, list):
                for j, demo in enumerate(c.value):
                    inputs = demo.get("inputs") if isinstance(demo, dict) else None
                    hit = index.example_match(example_text(inputs)) if isinstance(inputs, dict) else None
                    if hit is not None:
                        reasons.append(Reason(
                            monitor=self.name, message=f"demo #{j + 1} of '{c.name}' is a {hit.split} example",
                            evidence=f"{c.name}[{j}] inputs match {hit.split} example #{hit.index} ({hit.span})",
                            threshold=demo_rule))
        return Verdict.reject(*reasons) if reasons else Verdict.accept()
