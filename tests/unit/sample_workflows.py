"""Small workflow texts that many tests share: a one-node QA agent, a multi-turn policy, a fan-out/fan-in of
tools, a draft guarded by a protected node; and :func:`instructed`, for one of them with an instruction."""

from __future__ import annotations

import yaml

QA = """
version: 1
name: qa
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: ask, kind: agent, prompt: "Q: {question}", inputs: [question], outputs: [answer]}
"""

POLICY = """
version: 1
name: policy
inputs: {goal: str, observation: str, history: str}
outputs: {action: str}
nodes:
  - id: act
    kind: agent
    prompt: "{goal}\\nNow: {observation}\\nSo far:\\n{history}"
    inputs: [goal, observation, history]
    outputs: [action]
"""

# a -> (b, c) in parallel -> d, each a call of the tool `step`: interruption and resume tests.
FAN = """\
version: 1
kind: workflow
name: fan
inputs: {word: str}
outputs: {d: str}
nodes:
  - {id: a, kind: tool, tool: step, args: {text: "{word}a"}, inputs: [word], outputs: [a]}
  - {id: b, kind: tool, tool: step, args: {text: "{a}b"}, inputs: [a], outputs: [b]}
  - {id: c, kind: tool, tool: step, args: {text: "{a}c"}, inputs: [a], outputs: [c]}
  - {id: d, kind: tool, tool: step, args: {text: "{b}{c}d"}, inputs: [b, c], outputs: [d]}
edges:
  - {from: a, to: [b, c]}
  - {from: [b, c], to: d}
"""

# A drafting agent, then a protected agent that passes the draft on and must stay as written.
GUARDED = """
version: 1
name: guarded
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: draft, kind: agent, instruction: Draft an answer., prompt: "Q: {question}", inputs: [question],
     outputs: [draft]}
  - {id: guard, kind: agent, instruction: "Refuse anything unsafe; otherwise pass the draft on.",
     prompt: "Draft: {draft}", inputs: [draft], outputs: [answer], protected: true}
edges:
  - {from: draft, to: guard}
"""


def instructed(text: str, instruction: str) -> str:
    """The workflow ``text`` with ``instruction`` given to each of its agent nodes."""
    data = yaml.safe_load(text)
    for node in data["nodes"]:
        if node["kind"] == "agent":
            node["instruction"] = instruction
    return yaml.safe_dump(data, sort_keys=False)
