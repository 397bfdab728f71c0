"""What the evolve-loop tests share: an addition environment with train/val/test splits, a scripted
executor whose accuracy depends on the instruction, and a menu optimizer that proposes instructions.

The scripted executor answers a task right when the node's instruction says CAREFUL, and otherwise
only for every third task; TWEAK changes nothing about accuracy (a no-gain candidate), and WORSE makes
every answer wrong. So the loop under test has something real to find, and things to reject.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task
from agentforge.llm.base import LLMRequest
from agentforge.llm.scripted import ScriptedModel
from agentforge.optimizers.base import Allowance, Evidence
from agentforge.optimizers.registry import OPTIMIZERS
from agentforge.workflow.edits import Change, SetComponent
from agentforge.workflow.spec import Candidate, WorkflowSpec

SEED_WORKFLOW = """
version: 1
name: adder
inputs: {question: str}
outputs: {answer: str}
nodes:
  - id: ask
    kind: agent
    instruction: Answer the question.
    prompt: "Q: {question}"
    inputs: [question]
    outputs: [answer]
"""


class AddSession(LocalSession):
    def _reset(self, task: Task) -> Observation:
        return Observation(text=task.inputs["question"], fields=dict(task.inputs))

    def _step(self, action: str) -> StepResult:
        assert self.task is not None
        ok = action.strip() == str(self.task.answer)
        return StepResult(observation=Observation(text="scored"), reward=float(ok), done=True,
                          feedback=None if ok else f"expected {self.task.answer}, got {action.strip()[:40]}")


class AddEnv(Environment):
    name = "add"
    instruction = "Add the two numbers."

    def __init__(self, train: int = 12, val: int = 12, test: int = 12) -> None:
        tasks = []
        k = 0
        for split, n in (("train", train), ("val", val), ("test", test)):
            for _ in range(n):
                tasks.append(Task(id=f"{split}{k}", split=split, inputs={"question": f"what is {k} + {k + 1}?"},
                                  answer=2 * k + 1))
                k += 1
        super().__init__(tasks)

    def session(self) -> AddSession:
        return AddSession(self)


def answer(request: LLMRequest) -> str:
    """The executor: right with CAREFUL, wrong for everything with WORSE, else right for every third task."""
    text = request.prompt_text()
    a, b = (int(x) for x in re.findall(r"what is (\d+) \+ (\d+)\?", text)[-1])
    right = "WORSE" not in text and ("CAREFUL" in text or a % 3 == 0)
    return str(a + b if right else a + b + 1)


def executor(log: Path | None = None) -> ScriptedModel:
    def reply(request: LLMRequest) -> str:
        if log is not None:
            with log.open("a") as fh:
                fh.write("call\n")
        return answer(request)

    return ScriptedModel(default=reply)


class MenuOptimizer:
    """Proposes instruction rewrites drawn (by its rng) from a fixed menu; records every task id it is shown."""

    name: ClassVar[str] = "menu-test"
    calls_per_proposal: ClassVar[int] = 0
    shown: ClassVar[list[str]] = []

    def __init__(self, *, gateway: Any, model: str, rng: random.Random, menu: Sequence[str] = (),
                 per_call: int = 2, numbered: bool = False) -> None:
        self.rng = rng
        self.menu = list(menu) or ["Answer the question. TWEAK", "Answer the question. CAREFUL",
                                   "Answer the question. WORSE"]
        self.per_call = per_call
        self.numbered = numbered  # make every proposal new (tag it with a number), so each costs an evaluation

    async def apropose(self, parent: WorkflowSpec, evidence: Evidence, allowance: Allowance) -> list[Candidate]:
        type(self).shown.extend(evidence.task_ids())
        out = []
        for text in self.rng.sample(self.menu, min(self.per_call, len(self.menu))):
            if self.numbered:
                text = f"{text} #{self.rng.randrange(10**9)}"
            spec = parent.apply([SetComponent(name="ask.instruction", value=text)],
                                Change(author=self.name, summary=f"instruction: {text}"))
            out.append(Candidate.of(spec))
        return out


OPTIMIZERS["menu-test"] = f"{__name__}:MenuOptimizer"
