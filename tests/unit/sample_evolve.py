"""What the evolve-loop and optimizer tests share: an addition environment with train/val/test splits
(its numbers, wording or tasks can be set), a scripted executor whose accuracy depends on the instruction,
a train scorer on the real evaluator, evidence from the shipped plain arithmetic seed (for the optimizers'
local-model tests), and a menu optimizer that proposes instructions.

The scripted executor answers a task right when the node's instruction says CAREFUL, and otherwise
only for every third task; TWEAK changes nothing about accuracy (a no-gain candidate), and WORSE makes
every answer wrong. So the loop under test has something real to find, and things to reject.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from agentforge.envs.base import Environment, Split, Task
from agentforge.envs.registry import load_env
from agentforge.errors import InputError
from agentforge.evaluation.evaluator import aevaluate
from agentforge.evaluation.report import TaskResult
from agentforge.llm.base import LLMRequest
from agentforge.llm.gateway import Gateway
from agentforge.llm.scripted import ScriptedModel
from agentforge.optimizers.base import Allowance, Evidence
from agentforge.optimizers.registry import OPTIMIZERS
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.edits import Change, SetComponent
from agentforge.workflow.loader import load_spec
from agentforge.workflow.spec import Candidate, WorkflowSpec
from tests.conftest import WORKFLOWS
from tests.unit.sample_envs import QASession

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


QUESTION = "what is {a} + {b}?"


def add_task(task_id: str, split: Split, a: int, b: int, question: str = QUESTION) -> Task:
    """A task asking for ``a + b`` in the words of ``question`` (a template of ``{a}`` and ``{b}``)."""
    return Task(id=task_id, split=split, inputs={"question": question.format(a=a, b=b)}, answer=a + b)


def consecutive(k: int) -> tuple[int, int]:
    return k, k + 1


class AddEnv(Environment):
    """Additions scored by exact match. Task ``k``, numbered on across the splits (id ``<split><k>``), asks
    for the sum of ``numbers(k)`` in the words of ``question``; or, given ``tasks``, exactly those."""

    name = "add"
    instruction = "Add the two numbers."

    def __init__(self, train: int = 12, val: int = 12, test: int = 12, *,
                 numbers: Callable[[int], tuple[int, int]] = consecutive, question: str = QUESTION,
                 tasks: Sequence[Task] | None = None, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        if tasks is None:
            splits: list[Split] = ["train"] * train + ["val"] * val + ["test"] * test
            tasks = [add_task(f"{split}{k}", split, *numbers(k), question=question) for k, split in enumerate(splits)]
        super().__init__(tasks)

    def session(self) -> QASession:
        return QASession(self)


def answer(request: LLMRequest) -> str:
    """The executor: right with CAREFUL, wrong for everything with WORSE, else right for every third task."""
    text = request.prompt_text()
    found = re.findall(r"what is (\d+) \+ (\d+)\?", text)
    if not found:  # not a task: e.g. an optimizer's question, answered unusably (a malformed reply)
        return "I do not know."
    a, b = (int(x) for x in found[-1])
    right = "WORSE" not in text and ("CAREFUL" in text or a % 3 == 0)
    return str(a + b if right else a + b + 1)


def executor(log: Path | None = None) -> ScriptedModel:
    def reply(request: LLMRequest) -> str:
        if log is not None:
            with log.open("a") as fh:
                fh.write("call\n")
        return answer(request)

    return ScriptedModel(default=reply)


class TrainScorer:
    """The evolve loop's train scorer, on the real evaluator: train ids only (anything else refused), every
    id it is asked about recorded."""

    def __init__(self, env: Environment, gateway: Gateway, train: Sequence[str], model: str | None = None) -> None:
        self.env, self.gateway, self.train, self.model = env, gateway, set(train), model
        self.seen: list[str] = []

    async def ascore(self, spec: WorkflowSpec, task_ids: Sequence[str]) -> list[TaskResult]:
        self.seen.extend(task_ids)
        refused = [t for t in task_ids if t not in self.train]
        if refused:
            raise InputError(f"not train tasks: {refused}")
        report = await aevaluate(Workflow(spec, gateway=self.gateway), self.env, task_ids=list(task_ids),
                                 concurrency=2, model=self.model)
        return report.results


PLAIN_SEED = WORKFLOWS / "arithmetic_plain.yaml"  # the shipped plain seed: one agent, a number as the answer


async def arithmetic_evidence(tasks: int, gateway: Gateway | None = None, *,
                              scored: bool = False) -> tuple[Workflow, Evidence]:
    """The plain seed really evaluated (on its own model, the local one) on the first ``tasks`` arithmetic
    train tasks, and that as evidence; ``scored`` adds a :class:`TrainScorer` over those tasks."""
    env = load_env("arithmetic")
    train = [t.id for t in env.tasks("train")[:tasks]]
    workflow = Workflow(load_spec(PLAIN_SEED), gateway=gateway)
    report = await aevaluate(workflow, env, task_ids=train, concurrency=2)
    scorer = TrainScorer(env, workflow.gateway, train) if scored else None
    return workflow, Evidence(env=env.name, results=tuple(report.results), train_ids=tuple(train), scorer=scorer)


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
