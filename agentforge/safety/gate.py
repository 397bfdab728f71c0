"""The gate's four invariants, configured by one ``GateConfig``; ``default_gate(config)`` builds the gate.

1. ``protected_nodes``: a node marked ``protected`` in the parent is in the candidate unchanged, still
   protected, and on every route from an entry to END (no rewiring may route around it).
2. ``caps``: node count, and the calls, tokens and dollars one task may cost, as ``estimate_run``
   reads them from the spec (an upper estimate: no model is called).
3. ``length_cap``: each text component, the demos per node, and the growth of the prompt text.
4. ``no_answer_leak``: no instruction, template, label or code holds a verbatim span of a train, val
   or test answer; demos may hold train examples but never a val or test one (``LeakIndex``).

The monitors live in ``safety/monitors.py``. Checks 3 and 4 look only at the components the
candidate changed (``check_all`` looks at every one), so a parent that already breaks a rule does not
fail every child for text the child did not touch. Caps work the same way: a parent already over a cap
fails only the children that go further.

The estimate is static. Each node kind counts its calls (an agent 1, or up to ``max_steps`` with tools;
an ensemble ``n`` members and a judge; an LLM router 1), prompt tokens from its texts plus an allowance
for the task's own text, and completion tokens as ``max_tokens`` per sample. Nodes inside a bounded
loop count once per pass the bound allows; a subworkflow counts its child's estimate. Every branch of
a router is counted, so exclusive branches make it an over-estimate. Dollars are tokens times the
model's price (0 for the local and scripted models; litellm's table for others, read only when such a
model appears).
"""

from __future__ import annotations

import json
import os
import string
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from agentforge.safety.base import Decision, Gate, GateEvidence
from agentforge.workflow.nodes import AgentNode, EnsembleNode, RouterNode, SubworkflowNode
from agentforge.workflow.nodes.base import END, START
from agentforge.workflow.prompt import default_prompt
from agentforge.workflow.spec import WorkflowSpec

__all__ = ["GateConfig", "LeakHit", "LeakIndex", "PriceLookup", "RunEstimate", "default_gate", "estimate_run",
           "flow_edges", "model_price", "words"]


class GateConfig(BaseModel):
    """Thresholds of the four invariants (``None`` turns a cap off). Defaults pass every shipped workflow."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_nodes: int | None = Field(default=40, ge=1)
    max_calls_per_task: int | None = Field(default=60, ge=1)
    max_tokens_per_task: int | None = Field(default=120_000, ge=1)
    max_cost_per_task: float | None = Field(default=0.5, ge=0, description="US dollars.")
    unpriced_model: Decision = Field(
        default="needs_approval",
        description="When a cost cap is set and the candidate brings in a model whose price is unknown.")
    max_component_chars: int = Field(default=4000, ge=1)
    max_demos: int = Field(default=8, ge=0)
    max_prompt_growth: float = Field(default=2.0, ge=1.0, description="Candidate prompt text / parent's.")
    growth_floor_chars: int = Field(
        default=1000, ge=0, description="A parent's prompt text below this grows against this instead.")
    leak_ngram: int = Field(default=6, ge=2, description="Words a shared span needs to count as a leak.")
    leak_min_chars: int = Field(
        default=12, ge=1, description="An answer shorter than leak_ngram words leaks only if this long.")
    demo_ngram: int = Field(default=4, ge=1, description="Word n-grams compared between demos and examples.")
    demo_overlap: float = Field(default=0.8, gt=0, le=1, description="Share of an example's n-grams a demo "
                                                                      "may hold before it counts as that example.")
    check_all: bool = Field(default=False, description="Check every component, not only the changed ones.")


CHARS_PER_TOKEN = 4  # the same rough rule the evaluator uses for history budgets
INPUT_TOKENS = 256  # the task's own text in each prompt: unknown statically
OBSERVATION_TOKENS = 256  # one tool result shown to the next ReAct step
TOOL_TOKENS = 96  # one tool's description and argument schema in a ReAct prompt
FALLBACK_MAX_TOKENS = 1024  # a reply with no max_tokens anywhere
FREE_PREFIXES = ("local/", "scripted/")

Price = tuple[float, float]  # dollars per prompt token, per completion token
PriceLookup = Callable[[str], Price | None]


class RunEstimate(BaseModel):
    """An upper estimate of one task's run: model calls, tokens and dollars, with the nodes that spend them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens: int = 0
    cost: float = Field(default=0.0, description="US dollars; unpriced models count 0.")
    by_node: dict[str, tuple[int, int]] = Field(default_factory=dict, description="node -> (calls, tokens)")
    unpriced: tuple[str, ...] = Field(default=(), description="Models whose price is unknown (counted at 0).")
    unresolved: tuple[str, ...] = Field(default=(), description="Subworkflow files that could not be read.")

    def top(self, k: int = 3) -> str:
        """The ``k`` nodes that spend the most tokens, for messages."""
        ranked = sorted(self.by_node.items(), key=lambda item: (-item[1][1], item[0]))[:k]
        return ", ".join(f"{node}: {calls} calls, {tokens} tokens" for node, (calls, tokens) in ranked)


@dataclass
class _Tally:
    calls: int = 0
    prompt: int = 0
    completion: int = 0
    cost: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)

    def call(self, price: PriceLookup, model: str, prompt: int, completion: int, calls: int = 1) -> None:
        self.calls += calls
        self.prompt += prompt
        self.completion += completion
        rate = price(model)
        if rate is None:
            self.unpriced.add(model)
        else:
            self.cost += prompt * rate[0] + completion * rate[1]

    def add(self, other: _Tally, times: int) -> None:
        self.calls += other.calls * times
        self.prompt += other.prompt * times
        self.completion += other.completion * times
        self.cost += other.cost * times
        self.unpriced |= other.unpriced
        self.unresolved |= other.unresolved


def _tokens(*texts: str | None) -> int:
    return sum(len(t) for t in texts if t) // CHARS_PER_TOKEN


def _demo_text(demos: tuple[Any, ...]) -> str:
    return json.dumps([d.model_dump(mode="json") for d in demos]) if demos else ""


# -- the graph a run walks ---------------------------------------------------------------------
def flow_edges(spec: WorkflowSpec) -> list[tuple[tuple[str, ...], str]]:
    """Every way control passes, as (sources, target): entries from START, edges (a join has several
    sources and fires once all have run), a branching node's exits, and END after a node with no
    outgoing edge (as the compiler wires it)."""
    out: list[tuple[tuple[str, ...], str]] = [((START,), entry) for entry in spec.entries()]
    has_out: set[str] = set()
    for edge in spec.edges:
        sources = edge.sources()
        out.extend((sources, target) for target in edge.targets())
        has_out.update(sources)
    for node in spec.nodes:
        branches = node.branches()
        if branches:
            out.extend(((node.id,), b.target) for b in branches)
        elif node.id not in has_out:
            out.append(((node.id,), END))
    return out


def _loop_multipliers(spec: WorkflowSpec) -> dict[str, int]:
    """How many times each node may run: inside a loop, once per pass its routers' bounds allow."""
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(spec.node_ids())
    for sources, target in flow_edges(spec):
        graph.add_edges_from((s, target) for s in sources)
    bounds = {n.id: n.loop_bound() for n in spec.nodes}
    out = dict.fromkeys(spec.node_ids(), 1)
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1 and not any(graph.has_edge(n, n) for n in component):
            continue
        times = 1
        for node_id in component:
            bound = bounds.get(node_id)
            if bound is not None:
                times *= bound + 1  # the body runs once more than the router lets it loop back
        for node_id in component:
            if node_id in out:
                out[node_id] = times
    return out


# -- per kind ----------------------------------------------------------------------------------
def _max_tokens(own: int | None, spec: WorkflowSpec) -> int:
    return own or spec.defaults.max_tokens or FALLBACK_MAX_TOKENS


def _model(own: str | None, spec: WorkflowSpec) -> str:
    return own or spec.defaults.model or "local"


def _node_tally(node: Any, spec: WorkflowSpec, price: PriceLookup, child: Callable[[str], _Tally]) -> _Tally:
    tally = _Tally()
    if isinstance(node, AgentNode):
        prompt = node.prompt if node.prompt is not None else default_prompt(node.input_names())
        base = _tokens(node.instruction, prompt, _demo_text(node.demos)) + INPUT_TOKENS
        reply = _max_tokens(node.max_tokens, spec)
        model = _model(node.model, spec)
        if node.tools:
            steps = node.max_steps
            base += TOOL_TOKENS * len(node.tools)
            # Each step sees every earlier reply and observation again.
            history = (reply + OBSERVATION_TOKENS) * steps * (steps - 1) // 2
            tally.call(price, model, steps * base + history, steps * reply, calls=steps)
        else:
            tally.call(price, model, base, reply * node.n)
    elif isinstance(node, EnsembleNode):
        m = node.member
        prompt = m.prompt if m.prompt is not None else default_prompt(node.input_names())
        base = _tokens(m.instruction, prompt, _demo_text(m.demos)) + INPUT_TOKENS
        reply = _max_tokens(m.max_tokens, spec)
        tally.call(price, _model(m.model, spec), base * node.n, reply * node.n, calls=node.n)
        if node.strategy == "select":
            judge = node.judge
            text = _tokens(judge.instruction if judge else "", judge.prompt if judge else None)
            judge_reply = _max_tokens(judge.max_tokens if judge else None, spec)
            tally.call(price, _model(judge.model if judge else None, spec),
                       text + INPUT_TOKENS + reply * node.n, judge_reply)
    elif isinstance(node, RouterNode):
        if node.llm is not None:
            labels = " ".join(f"{r.label} {r.description or r.to}" for r in node.routes)
            prompt = node.llm.prompt if node.llm.prompt is not None else default_prompt(node.input_names())
            tally.call(price, _model(node.llm.model, spec), _tokens(node.llm.instruction, prompt, labels)
                       + INPUT_TOKENS, _max_tokens(node.llm.max_tokens, spec))
    elif isinstance(node, SubworkflowNode):
        tally.add(child(node.workflow), 1)
    return tally  # code and tool nodes call no model


def _spec_tally(spec: WorkflowSpec, price: PriceLookup, children: Mapping[str, WorkflowSpec] | None,
                seen: frozenset[Path]) -> tuple[_Tally, dict[str, tuple[int, int]]]:
    def child(workflow: str) -> _Tally:
        if children is not None and workflow in children:
            return _spec_tally(children[workflow], price, None, seen)[0]
        path = (spec.base_dir / workflow).resolve()
        loaded = None if path in seen else _load_child(path)
        if loaded is None:
            return _Tally(unresolved={workflow})
        return _spec_tally(loaded, price, None, seen | {path})[0]

    total = _Tally()
    by_node: dict[str, tuple[int, int]] = {}
    times = _loop_multipliers(spec)
    for node in spec.nodes:
        one = _node_tally(node, spec, price, child)
        total.add(one, times[node.id])
        if one.calls or one.prompt:
            by_node[node.id] = (one.calls * times[node.id], (one.prompt + one.completion) * times[node.id])
    return total, by_node


def _load_child(path: Path) -> WorkflowSpec | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _load_cached(path: str, mtime_ns: int, size: int) -> WorkflowSpec | None:
    # The key holds mtime and size: an edited child file is read again.
    from agentforge.errors import SpecError
    from agentforge.workflow.loader import load_spec

    try:
        return load_spec(path)
    except SpecError:
        return None


def estimate_run(spec: WorkflowSpec, *, price: PriceLookup | None = None,
                 children: Mapping[str, WorkflowSpec] | None = None) -> RunEstimate:
    """An upper estimate of one task's calls, tokens and cost for ``spec``.

    ``children`` maps a subworkflow node's ``workflow`` path to its spec; a path not given is read
    from disk (relative to the spec's file), the same read ``spec.hash`` makes. ``price`` maps a model
    name to dollars per prompt and completion token (default: ``model_price``).
    """
    tally, by_node = _spec_tally(spec, price or model_price, children, frozenset())
    return RunEstimate(calls=tally.calls, prompt_tokens=tally.prompt, completion_tokens=tally.completion,
                       tokens=tally.prompt + tally.completion, cost=tally.cost, by_node=by_node,
                       unpriced=tuple(sorted(tally.unpriced)), unresolved=tuple(sorted(tally.unresolved)))


# -- prices ------------------------------------------------------------------------------------
def model_price(model: str, settings: Any = None) -> Price | None:
    """Dollars per prompt and completion token for a model name or alias; ``None`` if unknown.

    An alias's own ``input_cost_per_token``/``output_cost_per_token`` params win; local and scripted
    models are free; otherwise litellm's price table is consulted (imported only then, offline).
    """
    from agentforge.config import get_settings

    alias = (settings or get_settings()).aliases().get(model)
    name = alias.model if alias is not None else model
    params = alias.params if alias is not None else {}
    if "input_cost_per_token" in params or "output_cost_per_token" in params:
        return (float(params.get("input_cost_per_token", 0.0)), float(params.get("output_cost_per_token", 0.0)))
    return _table_price(name)


@lru_cache(maxsize=512)
def _table_price(name: str) -> Price | None:
    if name.startswith(FREE_PREFIXES) or name == "local":
        return (0.0, 0.0)
    from agentforge.llm.gateway import import_litellm

    table: dict[str, Any] = import_litellm().model_cost
    entry = table.get(name) or table.get(name.partition("/")[2])
    if not isinstance(entry, dict) or "input_cost_per_token" not in entry:
        return None
    return (float(entry.get("input_cost_per_token") or 0.0), float(entry.get("output_cost_per_token") or 0.0))


# -- the leak index ----------------------------------------------------------------------------
_PUNCT = string.punctuation + "“”‘’«»…—–"


def words(text: str) -> tuple[str, ...]:
    """Text as the leak check compares it: case-folded words split on whitespace, each stripped of
    punctuation at its ends (``Paris.`` is ``paris``; a token of punctuation alone is kept, so
    ``2 + 3`` and ``2 - 3`` stay apart)."""
    return tuple(token.strip(_PUNCT) or token for token in text.casefold().split())


@dataclass(frozen=True)
class LeakHit:
    """Where scanned text matched a task: the task's split and index, and the matching words."""

    split: str
    index: int
    start: int
    length: int
    span: str

    def where(self) -> str:
        return f"words {self.start}-{self.start + self.length}: '{_clip(self.span)}'"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LeakIndex:
    """Every split's answers and the held-out splits' examples, hashed once for fast scans.

    An answer of at least ``ngram`` words is stored as its word n-grams; a shorter one as a whole
    (only if its normalised text has ``min_chars`` characters: ``12`` or ``yes`` in a prompt is not a
    leak). Examples of ``example_splits`` are stored for the demo check: exactly, and as
    ``demo_ngram``-grams with the example each came from. Build it once per ``GateEvidence`` with
    ``LeakIndex.of``; a scan is then a dictionary lookup per window of words.
    """

    def __init__(self, evidence: GateEvidence, *, ngram: int = 6, min_chars: int = 12, demo_ngram: int = 4,
                 demo_overlap: float = 0.8, example_splits: tuple[str, ...] = ("val", "test")) -> None:
        self.ngram, self.min_chars = ngram, min_chars
        self.demo_ngram, self.demo_overlap = demo_ngram, demo_overlap
        self._answers: dict[tuple[str, ...], tuple[str, int]] = {}
        self._answer_sizes: set[int] = set()
        for split, answers in evidence.answers.items():
            for i, answer in enumerate(answers):
                for gram in self._answer_grams(words(answer)):
                    self._answers.setdefault(gram, (split, i))
                    self._answer_sizes.add(len(gram))
        self._exact: dict[tuple[str, ...], tuple[str, int]] = {}
        self._short: dict[tuple[str, ...], tuple[str, int]] = {}
        self._short_sizes: set[int] = set()
        self._postings: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self._examples: list[tuple[str, int, int, tuple[str, ...]]] = []  # split, index, distinct n-grams, numbers
        for split in example_splits:
            for i, text in enumerate(evidence.examples.get(split, ())):
                w = words(text)
                if not w:
                    continue
                self._exact.setdefault(w, (split, i))
                grams = set(_grams(w, demo_ngram))
                if not grams:
                    if len(" ".join(w)) >= min_chars:  # too few words for n-grams: match it whole
                        self._short.setdefault(w, (split, i))
                        self._short_sizes.add(len(w))
                    continue
                for gram in grams:
                    self._postings[gram].append(len(self._examples))
                self._examples.append((split, i, len(grams), _numbers(w)))

    @classmethod
    def of(cls, evidence: GateEvidence, **params: Any) -> LeakIndex:
        """The index for ``evidence`` with these parameters, built on first use and kept on the evidence."""
        key = ("leak_index", *sorted(params.items()))
        return evidence.memo(key, lambda: cls(evidence, **params))

    def _answer_grams(self, w: tuple[str, ...]) -> list[tuple[str, ...]]:
        if len(w) >= self.ngram:
            return _grams(w, self.ngram)
        return [w] if w and len(" ".join(w)) >= self.min_chars else []

    @property
    def empty(self) -> bool:
        return not (self._answers or self._exact)

    def answer_span(self, text: str) -> LeakHit | None:
        """The first span of ``text`` that is an answer's n-gram, or a whole short answer."""
        if not self._answers:
            return None
        return _scan(words(text), self._answers, self._answer_sizes)

    def example_match(self, text: str) -> LeakHit | None:
        """The held-out example ``text`` repeats: exactly, as a whole short example, or holding at least
        ``demo_overlap`` of the example's n-grams."""
        w = words(text)
        if not w:
            return None
        if w in self._exact:
            split, i = self._exact[w]
            return LeakHit(split, i, 0, len(w), " ".join(w))
        if self._short:
            hit = _scan(w, self._short, self._short_sizes)
            if hit is not None:
                return hit
        counts: dict[int, int] = defaultdict(int)
        numbers = _numbers(w)
        for gram in set(_grams(w, self.demo_ngram)):
            for example in self._postings.get(gram, ()):
                counts[example] += 1
        best: tuple[float, int] | None = None
        for example, shared in counts.items():
            # Templated tasks share most of their words: the same wording with other numbers is another task.
            if self._examples[example][3] != numbers:
                continue
            share = shared / self._examples[example][2]
            if share >= self.demo_overlap and (best is None or share > best[0]):
                best = (share, example)
        if best is None:
            return None
        split, i, _, _ = self._examples[best[1]]
        return LeakHit(split, i, 0, len(w), f"{best[0]:.0%} of the example's {self.demo_ngram}-grams")


def _numbers(w: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in w if any(ch.isdigit() for ch in t))


def _grams(w: tuple[str, ...], n: int) -> list[tuple[str, ...]]:
    return [w[i:i + n] for i in range(len(w) - n + 1)]


def _scan(w: tuple[str, ...], table: dict[tuple[str, ...], tuple[str, int]], sizes: set[int]) -> LeakHit | None:
    for size in sorted(sizes, reverse=True):
        for i in range(len(w) - size + 1):
            found = table.get(w[i:i + size])
            if found is not None:
                return LeakHit(found[0], found[1], i, size, " ".join(w[i:i + size]))
    return None


# -- the gate ----------------------------------------------------------------------------------
def default_gate(config: GateConfig | Mapping[str, Any] | None = None, *, price: PriceLookup | None = None) -> Gate:
    """The gate this issue defines: protected nodes, caps, length caps and no answer leaks.

    ``config`` is a ``GateConfig`` or its fields as a mapping (``EvolveConfig.gate``); ``price``
    overrides the model price lookup of the cost cap.
    """
    from agentforge.safety.monitors import Caps, LengthCap, NoAnswerLeak, ProtectedNodes

    cfg = config if isinstance(config, GateConfig) else GateConfig.model_validate(dict(config or {}))
    return Gate(ProtectedNodes(), Caps(cfg, price=price), LengthCap(cfg), NoAnswerLeak(cfg))
