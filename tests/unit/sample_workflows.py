"""Small workflow texts that many evaluation tests share: a one-node QA agent and a multi-turn policy."""

from __future__ import annotations

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
