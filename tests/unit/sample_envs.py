"""A small environment tests share: three val tasks whose observation is the question; one step, reward 1."""

from __future__ import annotations

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task


class EchoSession(LocalSession):
    def _reset(self, task: Task) -> Observation:
        return Observation(text=task.inputs["question"], fields=dict(task.inputs))

    def _step(self, action: str) -> StepResult:
        return StepResult(observation=Observation(text="ok"), reward=1.0, done=True)


class EchoEnv(Environment):
    name = "echo"

    def __init__(self) -> None:
        super().__init__([Task(id=f"t{k}", split="val", inputs={"question": f"question number {k}"})
                          for k in range(3)])

    def session(self) -> EchoSession:
        return EchoSession(self)
