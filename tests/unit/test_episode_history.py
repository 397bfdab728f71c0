"""Multi-turn episodes: the history keeps the action actually sent, is capped by tokens (the cap is
recorded), and the episode's goal reaches the policy at every step."""

from __future__ import annotations

import textwrap
from typing import Any

from agentforge.config import get_settings
from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task
from agentforge.evaluation.evaluator import evaluate, render_history
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text

POLICY = """
version: 1
name: policy
inputs: {goal: str, observation: str, history: str}
outputs: {action: str}
nodes:
  - id: act
    kind: agent
    prompt: "Goal: {goal}\\nNow: {observation}\\nSo far:\\n{history}"
    inputs: [goal, observation, history]
    outputs: [action]
"""

GOAL = "Crafting commands: craft 1 golden tiara using 3 gold ingot. Goal: craft golden tiara."


class _Session(LocalSession):
    env: _LongEnv

    def _reset(self, task: Task) -> Observation:
        self.turn = 0
        return Observation(text=GOAL)

    def _step(self, action: str) -> StepResult:
        self.turn += 1
        # like a textcraft adapter taking the action line, or agentforge's server taking up to 4,096 characters
        sent = action[:4096] if self.env.whole else action.splitlines()[0][:60]
        return StepResult(observation=Observation(text=f"Got it ({self.turn})."), reward=0.0, done=False,
                          info={"action_sent": sent})


class _LongEnv(Environment):
    """An episode that never ends before its step limit and never repeats its goal after reset."""

    name = "long"
    multi_turn = True

    def __init__(self, max_steps: int = 12, whole: bool = False) -> None:
        super().__init__([Task(id="t0", split="val")])
        self.max_steps = max_steps
        self.whole = whole

    def session(self) -> _Session:
        return _Session(self)


def _policy(**settings: Any) -> Workflow:
    return Workflow(spec_from_text(textwrap.dedent(POLICY)), settings=get_settings().model_copy(update=settings))


def test_an_echo_model_keeps_the_prompt_bounded_over_many_steps(scripted: Any) -> None:
    model, script = scripted
    script.default = lambda request: request.messages[-1].content  # repeats its whole context as its action
    report = evaluate(_policy(eval_history_tokens=500), _LongEnv(max_steps=12, whole=True), split="val", model=model)
    sizes = [len(call.messages[-1].content) for call in script.calls]
    assert len(sizes) == 12
    # goal + observation + ~500 tokens (2,000 characters) of history + the template, whatever the step
    assert max(sizes) < 2_000 + 600, sizes
    result = report.results[0]
    notes = result.notes
    assert any("history capped at 500 tokens" in note for note in notes), notes


def test_history_holds_the_action_sent_not_the_raw_output(scripted: Any) -> None:
    model, script = scripted
    script.default = "move north\nbecause the raw reasoning after the action line is long and never sent"
    evaluate(_policy(), _LongEnv(max_steps=3), split="val", model=model)
    third = script.calls[2].messages[-1].content
    assert "1. action: move north\n" in third and "2. action: move north\n" in third
    assert "raw reasoning" not in third


def test_the_goal_reaches_the_prompt_at_step_3(scripted: Any) -> None:
    model, script = scripted
    script.default = "inventory"
    evaluate(_policy(), _LongEnv(max_steps=3), split="val", model=model)
    assert len(script.calls) == 3
    assert "Goal: craft golden tiara." in script.calls[2].messages[-1].content
    assert "Now: Got it (2)." in script.calls[2].messages[-1].content


def test_render_history_keeps_the_newest_steps_within_the_cap() -> None:
    history = [(f"action {i}", "x" * 400) for i in range(10)]
    text, note = render_history(history, max_tokens=300)  # 1,200 characters: two steps of ~420 fit
    assert "10. action: action 9" in text and "9. action: action 8" in text and "8. action" not in text
    assert note is not None and "dropped 8 earlier step(s)" in note
    assert render_history(history[:1], max_tokens=300) == (f"1. action: action 0\n   result: {'x' * 400}", None)
    huge, note = render_history([("a" * 10_000, "ok")], max_tokens=100)
    assert len(huge) <= 410 and note is not None and "cut" in note
