"""The ``ensemble`` node: n concurrent samples of one agent, then a vote or an LLM judge's pick."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agentforge.runtime import generation as gen
from agentforge.runtime.context import RunContext
from agentforge.runtime.nodes.agent import majority
from agentforge.runtime.trace import NodeTrace
from agentforge.workflow.prompt import default_prompt
from agentforge.workflow.spec import EnsembleNode, RouterChoice
from agentforge.workflow.types import parse_type

MEMBER_TEMPERATURE = 0.7  # identical greedy samples would make the vote pointless


async def execute(node: EnsembleNode, values: dict[str, Any], ctx: RunContext, record: NodeTrace) -> dict[str, Any]:
    outputs = node.output_types()
    prompt = node.member.prompt if node.member.prompt is not None else default_prompt(node.input_names())
    params = gen.resolve_params(node.member, ctx, temperature=MEMBER_TEMPERATURE)
    messages = gen.build_messages(node.member.instruction, prompt, values, outputs, node.member.demos)
    base_seed = params.seed if params.seed is not None else 0
    members = [NodeTrace(node=f"{node.id}[{i}]", kind="agent", started_at=record.started_at) for i in range(node.n)]

    async def sample(i: int) -> dict[str, Any]:
        (out,) = await gen.generate(ctx, members[i], params, messages, outputs, seed=base_seed + i)
        members[i].outputs = out
        return out

    samples = list(await asyncio.gather(*(sample(i) for i in range(node.n))))
    record.children.extend(members)
    if node.strategy == "vote":
        return majority(samples, node.vote_on or next(iter(outputs)))
    judge = node.judge or RouterChoice(instruction="Pick the candidate answer that is most likely correct.")
    listing = "\n\n".join(f"Candidate {i + 1}:\n{json.dumps(s, ensure_ascii=False)}" for i, s in enumerate(samples))
    instruction = judge.instruction
    pick = {"best": parse_type({"type": "integer", "enum": list(range(1, node.n + 1))})}
    # The judge's prompt (a template over the node's inputs, like the member's) comes first, then the candidates.
    lead = judge.prompt if judge.prompt is not None else default_prompt(node.input_names())
    judge_prompt = lead.rstrip() + "\n\n{__candidates}"
    judge_messages = gen.build_messages(instruction, judge_prompt, {**values, "__candidates": listing}, pick)
    (choice,) = await gen.generate(ctx, record, gen.resolve_params(judge, ctx), judge_messages, pick)
    record.notes.append(f"judge picked candidate {choice['best']}")
    return samples[choice["best"] - 1]
