"""The ``ensemble`` kind: n concurrent samples of one agent, then a vote or an LLM judge's pick."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from agentforge.workflow import messages as msg
from agentforge.workflow.nodes.agent import check_demos, majority
from agentforge.workflow.nodes.base import (
    CheckContext,
    Component,
    Demo,
    NodeBase,
    NodeRecord,
    NodeRuntime,
    Sampling,
    register,
    suggest,
)
from agentforge.workflow.nodes.router import RouterChoice, choice_components
from agentforge.workflow.prompt import default_prompt
from agentforge.workflow.types import parse_type

MEMBER_TEMPERATURE = 0.7  # identical greedy samples would make the vote pointless


class EnsembleMember(Sampling):
    instruction: str = ""
    prompt: str | None = None
    demos: tuple[Demo, ...] = ()


@register
class EnsembleNode(NodeBase):
    """Run one agent n times concurrently, then vote or let an LLM judge select."""

    kind: Literal["ensemble"] = "ensemble"  # type: ignore[assignment]
    member: EnsembleMember
    n: int = Field(default=3, ge=2, le=32)
    strategy: Literal["vote", "select"] = "vote"
    vote_on: str | None = None
    judge: RouterChoice | None = None

    shape = ("[/", "/]")
    color = "#e2d9f3"

    def check(self, ctx: CheckContext) -> None:
        inputs = set(self.input_names())
        ctx.check_model(self.member.model, node=self.id, path=("member", "model"), field="member.model")
        if self.judge is not None:
            ctx.check_model(self.judge.model, node=self.id, path=("judge", "model"), field="judge.model")
        if self.member.prompt is not None:
            ctx.check_template(self.member.prompt, node=self.id, path=("member", "prompt"), field="member.prompt",
                               inputs=inputs)
        if self.judge is not None and self.judge.prompt is not None:
            ctx.check_template(self.judge.prompt, node=self.id, path=("judge", "prompt"), field="judge.prompt",
                               inputs=inputs)
        check_demos(ctx, self, self.member.demos, ("member", "demos"))
        if self.vote_on and self.vote_on not in self.outputs:
            ctx.add(f"vote_on '{self.vote_on}' is not an output of the node", node=self.id, path=("vote_on",),
                    field="vote_on", hint=suggest(self.vote_on, self.outputs), code="unknown_field")
        if not self.outputs:
            ctx.add("the node declares no outputs", node=self.id, field="outputs",
                    hint="add e.g. 'outputs: {answer: str}'", code="no_outputs")
        if self.strategy == "vote" and self.judge is not None:
            ctx.add("'judge' is only used with 'strategy: select'", node=self.id, path=("judge",), field="judge",
                    hint="set 'strategy: select', or remove 'judge'", code="unused_field")
        if self.strategy == "select" and self.vote_on is not None:
            ctx.add("'vote_on' is only used with 'strategy: vote'", node=self.id, path=("vote_on",),
                    field="vote_on", hint="set 'strategy: vote', or remove 'vote_on'", code="unused_field")

    def components(self) -> tuple[Component, ...]:
        m = self.member
        return (
            self.component("member.instruction", m.instruction, "text"),
            self.component("member.prompt", m.prompt, "text"),
            self.component("member.demos", [d.model_dump(mode="json") for d in m.demos], "demos"),
            *self.sampling_components(m, "member."),
            self.component("n", self.n, "sampling"),
            *(choice_components(self, self.judge, "judge") if self.judge else ()),
        )

    async def execute(self, values: dict[str, Any], rt: NodeRuntime, record: NodeRecord) -> dict[str, Any]:
        import asyncio  # kept out of validation's imports

        outputs = self.output_types()
        prompt = self.member.prompt if self.member.prompt is not None else default_prompt(self.input_names())
        params = rt.params(self.member, temperature=MEMBER_TEMPERATURE)
        messages = msg.build_messages(self.member.instruction, prompt, values, outputs, self.member.demos)
        base_seed = params.seed if params.seed is not None else 0
        members = [rt.child_record(record, f"{self.id}[{i}]", "agent") for i in range(self.n)]

        async def sample(i: int) -> dict[str, Any]:
            (out,) = await rt.generate(members[i], params, messages, outputs, seed=base_seed + i)
            members[i].outputs = out
            return out

        samples = list(await asyncio.gather(*(sample(i) for i in range(self.n))))
        if self.strategy == "vote":
            return majority(samples, self.vote_on or next(iter(outputs)))
        judge = self.judge or RouterChoice(instruction="Pick the candidate answer that is most likely correct.")
        listing = "\n\n".join(f"Candidate {i + 1}:\n{json.dumps(s, ensure_ascii=False)}"
                              for i, s in enumerate(samples))
        pick = {"best": parse_type({"type": "integer", "enum": list(range(1, self.n + 1))})}
        # The judge's prompt (a template over the node's inputs, like the member's) comes first, then the candidates.
        lead = judge.prompt if judge.prompt is not None else default_prompt(self.input_names())
        judge_prompt = lead.rstrip() + "\n\n{__candidates}"
        judge_messages = msg.build_messages(judge.instruction, judge_prompt, {**values, "__candidates": listing}, pick)
        (choice,) = await rt.generate(record, rt.params(judge), judge_messages, pick)
        record.notes.append(f"judge picked candidate {choice['best']}")
        return samples[choice["best"] - 1]
