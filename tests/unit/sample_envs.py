"""Small environments tests share: a one-step QA session scored by exact match, and an echo environment
(three val tasks whose observation is the question; one step, reward 1)."""

from __future__ import annotations

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task


class QASession(LocalSession):
    """One step: the observation is the task's question, the action its answer, reward 1 if the answer
    is the task's (spaces aside); a wrong answer's feedback says what was expected and what was given."""

    def _reset(self, task: Task) -> Observation:
        return Observation(text=task.inputs["question"], fields=dict(task.inputs))

    def _step(self, action: str) -> StepResult:
        assert self.task is not None
        ok = action.strip() == str(self.task.answer)
        return StepResult(observation=Observation(text="scored"), reward=float(ok), done=True,
                          feedback=None if ok else f"expected {self.task.answer}, got {action.strip()}")


class EchoSession(QASession):
    def _step(self, action: str) -> StepResult:
        return StepResult(observation=Observation(text="ok"), reward=1.0, done=True)


class EchoEnv(Environment):
    name = "echo"

    def __init__(self) -> None:
        super().__init__([Task(id=f"t{k}", split="val", inputs={"question": f"question number {k}"})
                          for k in range(3)])

    def session(self) -> EchoSession:
        return EchoSession(self)
