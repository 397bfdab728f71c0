"""The reflect optimizer's menu: typed options (demos, hints and lessons, sampling) built from the
evidence for one agent node, and the text helpers they share (the hint paragraph, the echo check).

An option is an edit list plus a one-line description; the model chooses among descriptions, never
writes the edits. Everything here is pure and draws randomness only from the ``rng`` it is given.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentforge.optimizers.base import ComponentRecord, Evidence
from agentforge.workflow.edits import Edit, SetComponent, SetSampling
from agentforge.workflow.nodes import AgentNode
from agentforge.workflow.spec import WorkflowSpec

OptionKind = Literal["demos", "hint", "lesson", "sampling", "rewrite"]
# The appended paragraph is marked, so the next hint replaces it instead of piling up (whatever menu
# or lesson it came from, in this run or an earlier one).
HINT_PREFIX = "Hint: "
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Option:
    kind: OptionKind
    node: str
    edits: tuple[Edit, ...]
    description: str


@dataclass(frozen=True)
class SamplingVariant:
    n: int
    temperature: float


# -- text helpers ----------------------------------------------------------------------------------
def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (an ellipsis marks the cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)].rstrip() + "…"


def show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def split_hint(instruction: str) -> tuple[str, str | None]:
    """The instruction without its trailing hint paragraph, and that paragraph (None if there is none)."""
    head, _, last = instruction.rstrip().rpartition("\n\n")
    if last.lstrip().startswith(HINT_PREFIX):
        return head.rstrip(), last.strip()
    return instruction.rstrip(), None


def hint_paragraph(text: str) -> str:
    return HINT_PREFIX + " ".join(text.split())


def with_hint(instruction: str, text: str) -> str:
    """``instruction`` ending with ``text`` as its hint paragraph, replacing any hint already there."""
    base, _ = split_hint(instruction)
    paragraph = hint_paragraph(text)
    return f"{base}\n\n{paragraph}" if base else paragraph


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


ECHO_MIN_WORDS = 3  # an input shorter than this ("Paris", "42") may be quoted freely


def echoes(text: str, sources: Iterable[str], n: int) -> bool:
    """True when ``text`` shares a run of ``n`` words with any of ``sources``, or holds a whole source
    shorter than that (GEPA's failure: the proposer copies the task back as the instruction)."""
    for source in sources:
        size = min(n, len(_WORD.findall(source)))
        if size >= ECHO_MIN_WORDS and ngrams(text, size) & ngrams(source, size):
            return True
    return False


# -- targets ---------------------------------------------------------------------------------------
def targets(parent: WorkflowSpec, evidence: Evidence) -> list[tuple[AgentNode, list[ComponentRecord]]]:
    """The parent's top-level, unprotected agent nodes the evidence shows running, in spec order.
    (Agents inside ensembles and subworkflows are not targeted yet.)"""
    out: list[tuple[AgentNode, list[ComponentRecord]]] = []
    for node in parent.nodes:
        if isinstance(node, AgentNode) and not node.protected:
            records = evidence.records(node.id)
            if records:
                out.append((node, records))
    return out


def is_success(record: ComponentRecord, solved: set[str]) -> bool:
    return record.task_id in solved and record.error is None


# -- options ---------------------------------------------------------------------------------------
def _demo_pool(node: AgentNode, records: Sequence[ComponentRecord], solved: set[str],
               max_chars: int) -> list[dict[str, Any]]:
    """Distinct demos from the node's runs on solved tasks, in evidence order."""
    inputs, outputs = node.input_names(), tuple(node.output_types())
    pool: dict[str, dict[str, Any]] = {}
    for record in records:
        if not is_success(record, solved):
            continue
        if any(k not in record.inputs for k in inputs) or any(record.outputs.get(k) is None for k in outputs):
            continue
        demo = {"inputs": {k: record.inputs[k] for k in inputs}, "outputs": {k: record.outputs[k] for k in outputs}}
        key = json.dumps(demo, sort_keys=True, default=str)
        if len(key) <= max_chars:
            pool.setdefault(key, demo)
    return list(pool.values())


def demo_options(node: AgentNode, records: Sequence[ComponentRecord], solved: set[str], rng: random.Random, *,
                 max_demos: int, options: int, max_chars: int) -> list[Option]:
    """Up to ``options`` demo sets (1..max_demos solved train examples each), each replacing the node's
    demos and none equal to them. An agent with tools takes no demos."""
    if node.tools or max_demos < 1:
        return []
    pool = _demo_pool(node, records, solved, max_chars)
    if not pool:
        return []
    current = json.dumps([d.model_dump(mode="json") for d in node.demos], sort_keys=True, default=str)
    seen = {current}
    out: list[Option] = []
    for _ in range(options * 4):  # a few draws more than wanted: some repeat a set already seen
        if len(out) == options:
            break
        k = rng.randint(1, min(max_demos, len(pool)))
        picked = sorted(rng.sample(range(len(pool)), k))
        demos = [pool[i] for i in picked]
        key = json.dumps(demos, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        what = "example" if k == 1 else "examples"
        out.append(Option("demos", node.id, (SetComponent(name=f"{node.id}.demos", value=demos),),
                          f"[{node.id}] show {k} worked {what} from solved training tasks"))
    return out


def hint_options(node: AgentNode, hints: Sequence[str], lessons: Sequence[str], rng: random.Random, *,
                 hints_per_target: int, lessons_per_target: int) -> list[Option]:
    """Lessons first (up to ``lessons_per_target``), then menu hints drawn by ``rng``; each becomes the
    instruction's last paragraph, replacing a hint already there."""
    _, current = split_hint(node.instruction)
    taken = {current} if current else set()
    out: list[Option] = []

    def add(kind: OptionKind, text: str) -> None:
        paragraph = hint_paragraph(text)
        if not text.strip() or paragraph in taken:
            return
        taken.add(paragraph)
        edit = SetComponent(name=f"{node.id}.instruction", value=with_hint(node.instruction, text))
        label = "apply the lesson" if kind == "lesson" else "add the hint"
        out.append(Option(kind, node.id, (edit,), f'[{node.id}] {label}: "{clip(text, 160)}"'))

    for lesson in list(dict.fromkeys(lessons))[:lessons_per_target]:
        add("lesson", lesson)
    menu = [h for h in dict.fromkeys(hints) if hint_paragraph(h) not in taken]
    for hint in rng.sample(menu, min(hints_per_target, len(menu))):
        add("hint", hint)
    return out


def votable(node: AgentNode, records: Sequence[ComponentRecord], max_chars: int) -> bool:
    """Whether n samples can vote on the node's answer: its first output is a number, a boolean or an
    enum, or text that the evidence shows is always short."""
    if node.tools:
        return False
    types = node.output_types()
    if not types:
        return False
    first, ftype = next(iter(types.items()))
    if ftype.base in ("int", "float", "bool") or "enum" in ftype.schema:
        return True
    if ftype.base != "str":
        return False
    values = [r.outputs.get(first) for r in records]
    return bool(values) and all(isinstance(v, str) and 0 < len(v) <= max_chars for v in values)


def sampling_options(node: AgentNode, records: Sequence[ComponentRecord], default_temperature: float | None,
                     variants: Sequence[SamplingVariant], *, vote_max_chars: int) -> list[Option]:
    """Sampling variants (n samples at a temperature, majority wins) that differ from the node's own."""
    if not votable(node, records, vote_max_chars):
        return []
    temperature = node.temperature if node.temperature is not None else (default_temperature or 0.0)
    out: list[Option] = []
    for v in variants:
        if (v.n, v.temperature) == (node.n, temperature):
            continue
        edits = (SetSampling(node=node.id, param="n", value=v.n),
                 SetSampling(node=node.id, param="temperature", value=v.temperature))
        what = (f"sample {v.n} answers at temperature {v.temperature:g} and keep the most common" if v.n > 1
                else f"give a single answer at temperature {v.temperature:g}")
        out.append(Option("sampling", node.id, edits, f"[{node.id}] {what}"))
    return out


def failing(records: Sequence[ComponentRecord], solved: set[str], limit: int,
            rng: random.Random) -> list[ComponentRecord]:
    """Up to ``limit`` failing runs, one per task, drawn by ``rng`` and kept in evidence order."""
    by_task: dict[str, ComponentRecord] = {}
    for record in records:
        if not is_success(record, solved):
            by_task.setdefault(record.task_id, record)
    pool = list(by_task.values())
    if len(pool) <= limit:
        return pool
    return [pool[i] for i in sorted(rng.sample(range(len(pool)), limit))]


def interleave(menu: Sequence[Option], rng: random.Random) -> list[int]:
    """Every option's index, kinds taking turns (each kind shuffled, the kinds' order shuffled): the
    order options are taken in when no model chooses, so a few picks still span demos, hints and sampling."""
    groups: dict[str, list[int]] = {}
    for i, option in enumerate(menu):
        groups.setdefault("hint" if option.kind == "lesson" else option.kind, []).append(i)
    lists = [groups[k] for k in sorted(groups)]
    for items in lists:
        rng.shuffle(items)
    rng.shuffle(lists)
    order: list[int] = []
    while any(lists):
        for items in lists:
            if items:
                order.append(items.pop(0))
    return order
