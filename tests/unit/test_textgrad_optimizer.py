"""The textgrad optimizer with scripted models: credit assignment across nodes, edits, the allowance, a
bounded context, survival of bad replies, multi-turn episodes, determinism, and a clean working directory."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task
from agentforge.errors import InputError, LLMError
from agentforge.evaluation.evaluator import aevaluate
from agentforge.llm.base import LLMRequest
from agentforge.llm.gateway import Gateway
from agentforge.llm.scripted import ScriptedModel
from agentforge.optimizers._textgrad_engine import Halt, load_textgrad, make_engine
from agentforge.optimizers.base import Allowance, Evidence, Optimizer
from agentforge.optimizers.registry import optimizer_class
from agentforge.optimizers.textgrad import TextGradConfig, TextGradOptimizer
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.edits import SetComponent
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.spec import WorkflowSpec
from tests.conftest import fresh_script
from tests.unit import sample_workflows
from tests.unit.sample_evolve import AddEnv
from tests.unit.sample_workflows import instructed

REPO = Path(__file__).resolve().parents[2]

# solve writes a draft, format only copies it into the answer: a wrong answer is solve's fault.
TWO = """
version: 1
name: two
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: solve, kind: agent, instruction: "Solve it.", prompt: "Q: {question}", inputs: [question], outputs: [draft]}
  - {id: format, kind: agent, instruction: "Copy the number.", inputs: [draft], outputs: [answer]}
edges:
  - {from: solve, to: format}
"""

# write makes a program, run (a code step, no model call) runs it.
CODE = """
version: 1
name: coded
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: write, kind: agent, instruction: "Write code.", prompt: "Problem: {question}", inputs: [question],
     outputs: [program]}
  - {id: run, kind: code, code_from: program, inputs: [program], outputs: {answer: str}, timeout: 10}
edges:
  - {from: write, to: run}
"""

QA = instructed(sample_workflows.QA, "Answer.")
POLICY = instructed(sample_workflows.POLICY, "Act.")

GRADIENT = r"following role: <ROLE> "  # textgrad's backward prompt names the variable's role so
UPDATE = r"variable you will improve: <ROLE>"  # and its TGD update prompt so


def tagged(text: str) -> str:
    return f"<IMPROVED_VARIABLE>{text}</IMPROVED_VARIABLE>"


def sums(n: int = 2, pad: int = 0) -> AddEnv:
    """``n`` train tasks, the k-th asking for k+k, each question padded with " please" ``pad`` times."""
    return AddEnv(train=n, val=0, test=0, numbers=lambda k: (k, k), question="{a}+{b}?" + " please" * pad,
                  name="sums")


class DoorSession(LocalSession):
    """Three steps; the door never opens."""

    def _reset(self, task: Task) -> Observation:
        self.turn = 0
        return Observation(text="A locked door.")

    def _step(self, action: str) -> StepResult:
        self.turn += 1
        done = self.turn == 3
        return StepResult(observation=Observation(text=f"Nothing happens ({self.turn})."), reward=0.0, done=done,
                          feedback="the door stayed locked: no key was ever used" if done else None)


class DoorEnv(Environment):
    name = "door"
    multi_turn = True
    max_steps = 5

    def __init__(self) -> None:
        super().__init__([Task(id="d0", split="train")])

    def session(self) -> DoorSession:
        return DoorSession(self)


@pytest.fixture
def optimizer_model() -> Iterator[tuple[str, ScriptedModel]]:
    """The optimizer's own scripted model (the `scripted` fixture answers for the workflow)."""
    with fresh_script("textgrad") as pair:
        yield pair


async def evidence(text: str, env: Environment, model: str) -> tuple[WorkflowSpec, Evidence]:
    spec = spec_from_text(textwrap.dedent(text))
    report = await aevaluate(Workflow(spec), env, split="train", model=model)
    return spec, Evidence(env=env.name, results=tuple(report.results))


def prompts(model: ScriptedModel, pattern: str) -> list[str]:
    return [r.prompt_text() for r in model.calls if pattern in r.prompt_text()]


def optimizer(model: str, seed: int = 0, **config: Any) -> TextGradOptimizer:
    return TextGradOptimizer(gateway=Gateway(), model=model, rng=random.Random(seed), **config)


async def test_credit_reaches_the_upstream_node_whose_draft_the_last_node_only_copied(
        scripted: Any, optimizer_model: Any) -> None:
    model, script = scripted
    script.on("Copy the number", "5").on("Solve it", "five")
    spec, ev = await evidence(TWO, sums(), model)
    name, opt = optimizer_model
    opt.on(GRADIENT + "output of the 'solve'", "The draft spells the number in words; it must be the sum in digits.")
    opt.on(GRADIENT + r"instruction \(system prompt\) of the 'solve'", "Ask for the sum, written in digits.")
    opt.on(GRADIENT, "")  # format's instruction and solve's template: no feedback
    opt.on(UPDATE + r"instruction \(system prompt\) of the 'solve'", tagged("Add the numbers. Reply in digits."))

    candidates = await optimizer(name, optimize_prompts=False).apropose(spec, ev, Allowance(calls=30))

    # the metric's words reach format's input, i.e. solve's draft ...
    on_draft = prompts(opt, "<ROLE> output of the 'solve'")
    assert len(on_draft) == 2 and all("Copy the number." in p for p in on_draft)
    assert any("expected 0, got 5" in p for p in on_draft) and any("expected 2, got 5" in p for p in on_draft)
    # ... and the feedback on the draft reaches solve's instruction (the chain rule), not only format's
    on_solve = prompts(opt, "<ROLE> instruction (system prompt) of the 'solve'")
    assert len(on_solve) == 2 and all("spells the number in words" in p for p in on_solve)
    assert not prompts(opt, "improve: <ROLE>instruction (system prompt) of the 'format'")  # no feedback, no update
    (candidate,) = candidates
    (edit,) = candidate.change.edits
    assert isinstance(edit, SetComponent) and edit.name == "solve.instruction"
    assert (edit.before, edit.after) == ("Solve it.", "Add the numbers. Reply in digits.")
    assert candidate.parent_hash == spec.hash and candidate.change.author == "textgrad"
    assert candidate.spec.node("solve").instruction == "Add the numbers. Reply in digits."
    assert candidate.spec.node("format").instruction == "Copy the number."
    assert "written in digits" in candidate.change.rationale


async def test_a_failing_code_step_hands_its_error_to_the_agent_that_wrote_the_code_without_a_call(
        scripted: Any, optimizer_model: Any) -> None:
    model, script = scripted
    script.on("Write code", "```python\nprint(1/0)\n```")
    spec, ev = await evidence(CODE, sums(n=1), model)
    assert ev.results[0].failure is not None and ev.results[0].failure.node == "run"
    name, opt = optimizer_model
    opt.on(GRADIENT, "Tell the model to print the sum of the two numbers.")
    opt.on(UPDATE, tagged("Write a Python program that prints the sum."))

    (candidate,) = await optimizer(name, candidates=1).apropose(spec, ev, Allowance(calls=10))

    assert not prompts(opt, "<ROLE> result of the code step")  # the code step passed feedback on, no call
    # the error reaches the program's writer as feedback on its output, and from there its instruction
    (on_instruction,) = prompts(opt, "<ROLE> instruction (system prompt) of the 'write'")
    assert "ZeroDivisionError" in on_instruction and "went into the code step 'run' as 'program'" in on_instruction
    assert [e.name for e in candidate.change.edits] == ["write.instruction"]  # the template's rewrite lost {question}


async def test_new_instruction_and_template_become_edits_and_a_template_losing_its_placeholder_is_refused(
        scripted: Any, optimizer_model: Any) -> None:
    model, script = scripted
    script.default = "seven"
    spec, ev = await evidence(QA, sums(), model)
    name, opt = optimizer_model
    opt.on(GRADIENT, "Ask for digits.")
    opt.on(UPDATE + "instruction", tagged("Answer with the number in digits."))
    opt.on(UPDATE + "prompt template", [tagged("Question: {question}\nAnswer in digits:"), tagged("Answer:")])

    first, second = await optimizer(name).apropose(spec, ev, Allowance(calls=30))

    assert {e.name: e.value for e in first.change.edits} == {
        "ask.instruction": "Answer with the number in digits.", "ask.prompt": "Question: {question}\nAnswer in digits:"}
    assert first.spec.node("ask").prompt == "Question: {question}\nAnswer in digits:"
    # the second candidate's template dropped {question}: refused; its instruction alone still makes a new spec
    assert [e.name for e in second.change.edits] == ["ask.instruction"]
    assert second.spec.node("ask").prompt == "Q: {question}"


@pytest.mark.parametrize("calls", [0, 1, 2, 3, 4, 7])
async def test_calls_never_exceed_the_allowance(scripted: Any, optimizer_model: Any, calls: int) -> None:
    model, script = scripted
    script.default = "seven"
    spec, ev = await evidence(QA, sums(n=4), model)
    name, opt = optimizer_model
    opt.on(GRADIENT, "Ask for digits.")
    opt.on(UPDATE, tagged("Answer in digits."))
    allowance = Allowance(calls=calls)

    candidates = await optimizer(name, optimize_prompts=False).apropose(spec, ev, allowance)

    assert allowance.used == len(opt.calls) <= calls
    # a record costs one gradient call, an update one call; the 4 records and one update need 5, and the second
    # candidate (the same records, answered from memory) one more update
    assert allowance.used == {0: 0, 1: 0, 2: 2, 3: 3, 4: 4, 7: 6}[calls]
    assert len(candidates) == (1 if calls >= 2 else 0)


async def test_the_engine_refuses_a_call_beyond_the_allowance(optimizer_model: Any) -> None:
    name, opt = optimizer_model
    opt.default = "feedback"
    allowance = Allowance(calls=1)
    engine = make_engine(load_textgrad(), gateway=Gateway(), model=name, loop=asyncio.get_running_loop(),
                         allowance=allowance, base_seed=1, temperature=0.7, max_tokens={"gradient": 50},
                         reply_chars={}, stop=threading.Event())

    def two_calls() -> list[str]:
        out = [engine("first", system_prompt="s")]
        out.append(engine("second", system_prompt="s"))
        return out

    with pytest.raises(Halt) as stopped:
        await asyncio.to_thread(two_calls)
    assert stopped.value.reason == "allowance" and len(opt.calls) == 1 and allowance.used == 1
    request: LLMRequest = opt.calls[0]
    assert request.cache is True and request.seed is not None and request.model == name


async def test_two_hundred_records_give_the_same_bounded_prompts_as_twenty(scripted: Any,
                                                                           optimizer_model: Any) -> None:
    model, script = scripted
    script.default = "seven " * 400  # long outputs and long questions: clipping must bite
    name, opt = optimizer_model
    opt.on(GRADIENT, "Use digits. " * 200)  # a long-winded gradient is clipped too
    opt.on(UPDATE, tagged("Answer in digits."))
    largest, used, records = [], [], []
    for n in (20, 200):
        opt.calls.clear()
        spec, ev = await evidence(QA, sums(n=n, pad=300), model)
        tg = optimizer(name, candidates=1)
        allowance = Allowance(calls=500)
        await tg.apropose(spec, ev, allowance)
        largest.append(max(len(r.prompt_text()) for r in opt.calls))
        used.append(allowance.used)
        records.append(len(tg.last_run.records[0]))
    # at most max_records, fewer when their feedback would overflow one update prompt; the same for 20 and 200
    assert records[0] == records[1] <= TextGradConfig().max_records
    assert used[0] == used[1] == records[0] * 2 + 2  # 2 gradients a record (instruction, template), 2 updates
    cfg = TextGradConfig()
    assert max(largest) <= cfg.max_prompt_chars + 3000  # the feedback cap plus textgrad's own wording
    assert abs(largest[0] - largest[1]) < 200


async def test_malformed_empty_overlong_bare_and_echoing_updates_are_counted_and_survived(
        scripted: Any, optimizer_model: Any) -> None:
    model, script = scripted
    script.default = "seven"
    spec, ev = await evidence(QA, sums(pad=8), model)  # questions end in "please" eight times
    name, opt = optimizer_model
    opt.on(GRADIENT, "Ask for digits.")
    opt.on(UPDATE, ["I would say: answer in digits", tagged("   "), tagged("x " * 40), tagged("{answer: 120}"),
                    tagged("Answer. please please please please please please")])
    allowance = Allowance(calls=30)

    tg = optimizer(name, candidates=5, optimize_prompts=False, max_chars=60)
    candidates = await tg.apropose(spec, ev, allowance)

    assert candidates == []
    assert allowance.malformed == tg.last_run.malformed == 2  # no tags, then nothing between them
    assert tg.last_run.rejected == {"untagged": 1, "empty": 1, "too_long": 1, "too_short": 1, "echo": 1}
    assert tg.last_run.reason is not None and "rejected" in tg.last_run.reason


async def test_a_multi_turn_episode_gives_one_record_per_step_each_with_the_episode_outcome(
        scripted: Any, optimizer_model: Any) -> None:
    model, script = scripted
    script.default = "knock"
    spec, ev = await evidence(POLICY, DoorEnv(), model)
    assert len(ev.results[0].traces) == 3
    name, opt = optimizer_model
    opt.on(GRADIENT, "Try using a key instead of knocking.")
    opt.on(UPDATE, tagged("Act. Look for a key and use it on the door."))

    tg = optimizer(name, candidates=1, optimize_prompts=False)
    (candidate,) = await tg.apropose(spec, ev, Allowance(calls=10))

    assert tg.last_run.records == [["d0#2", "d0#1", "d0#0"]]  # the last step first
    gradients = prompts(opt, GRADIENT)
    assert len(gradients) == 3 and all("the door stayed locked" in p for p in gradients)
    for step in (1, 2, 3):
        assert sum(f"step {step} of 3 of a multi-turn episode" in p for p in gradients) == 1
    assert candidate.spec.node("act").instruction == "Act. Look for a key and use it on the door."


async def test_same_seed_gives_the_same_candidates_and_a_rerun_replays_from_the_cache(
        scripted: Any, optimizer_model: Any) -> None:
    model, script = scripted
    script.on("Copy the number", "5").on("Solve it", "five")
    spec, ev = await evidence(TWO, sums(n=4), model)
    name, opt = optimizer_model
    opt.default = lambda request: f"feedback {request.seed}"  # the reply depends on the seed sent
    opt.on(UPDATE, lambda request: tagged(f"Solve it, seed {request.seed}."))
    runs = []
    for _ in range(2):
        tg = optimizer(name, seed=7)
        allowance = Allowance(calls=40)
        runs.append(([c.spec.hash for c in await tg.apropose(spec, ev, allowance)], allowance.used))
    (hashes, used), (again, used_again) = runs
    assert hashes and hashes == again and used == used_again
    assert len(opt.calls) == used  # the second run was answered by the gateway's cache
    other = await optimizer(name, seed=8).apropose(spec, ev, Allowance(calls=40))
    assert [c.spec.hash for c in other] != hashes


async def test_protected_nodes_pass_credit_on_but_are_never_rewritten(scripted: Any, optimizer_model: Any) -> None:
    model, script = scripted
    script.on("Copy the number", "5").on("Solve it", "five")
    protected = TWO.replace("id: format, kind: agent,", "id: format, kind: agent, protected: true,")
    spec, ev = await evidence(protected, sums(), model)
    name, opt = optimizer_model
    opt.on(GRADIENT, "Use digits.")
    opt.on(UPDATE, tagged("Solve it in digits."))

    (candidate,) = await optimizer(name, candidates=1).apropose(spec, ev, Allowance(calls=30))

    assert not prompts(opt, "<ROLE> instruction (system prompt) of the 'format'")
    assert prompts(opt, "<ROLE> instruction (system prompt) of the 'solve'")
    assert {e.name for e in candidate.change.edits} <= {"solve.instruction", "solve.prompt"}


async def test_a_model_error_is_not_swallowed(scripted: Any, optimizer_model: Any) -> None:
    model, script = scripted
    script.default = "seven"
    spec, ev = await evidence(QA, sums(), model)
    name, opt = optimizer_model
    opt.default = LLMError("the optimizer model is down")
    with pytest.raises(LLMError, match="down"):
        await optimizer(name).apropose(spec, ev, Allowance(calls=10))


def test_config_is_strict_and_the_preset_holds_the_defaults() -> None:
    with pytest.raises(InputError, match="max_recods"):
        TextGradOptimizer(gateway=Gateway(), model="scripted/x", rng=random.Random(0), max_recods=3)
    preset = yaml.safe_load((REPO / "optimizers" / "textgrad.yaml").read_text())
    assert (preset["kind"], preset["optimizer"]) == ("optimizer", "textgrad")
    assert TextGradConfig(**preset["config"]) == TextGradConfig()
    cls = optimizer_class("textgrad")
    assert cls is TextGradOptimizer and cls.name == "textgrad"
    assert isinstance(TextGradOptimizer(gateway=Gateway(), model="scripted/x", rng=random.Random(0)), Optimizer)


def test_textgrad_is_imported_only_when_used_and_leaves_no_logs_in_the_working_directory(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    code = textwrap.dedent("""
        import json, logging, os, random, sys
        from agentforge.llm.gateway import Gateway
        from agentforge.optimizers.textgrad import TextGradOptimizer
        TextGradOptimizer(gateway=Gateway(), model="scripted/x", rng=random.Random(0))
        lazy = "textgrad" not in sys.modules
        from agentforge.optimizers._textgrad_engine import load_textgrad
        tg = load_textgrad()
        logger = logging.getLogger("textgrad")
        handlers = [type(h).__name__ for h in logger.handlers]
        print(json.dumps({"lazy": lazy, "handlers": handlers, "off": logger.disabled and not logger.propagate,
                          "env": os.environ.get("TEXTGRAD_LOG_DIR"), "log_dir": tg.LOG_DIR}))
    """)
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(scratch), "HOME": str(tmp_path),
           "AGENTFORGE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["lazy"] is True
    assert seen["handlers"] == ["NullHandler"] and seen["off"] and seen["env"] is None
    assert not (tmp_path / "logs").exists()
    assert list(scratch.iterdir()) == []  # its log folder was a private temporary one, now gone
    assert seen["log_dir"].startswith(str(scratch))
