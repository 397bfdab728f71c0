"""The TextCraft policy on the real local model, against TextCraft served over HTTP (what
``agentforge env serve textcraft`` runs), through the remote client: docs/remote-envs.md's run, on two
tasks with a short step limit (slow: about a minute on 2 cores)."""

from __future__ import annotations

import re

import pytest

from agentforge.envs.registry import load_env
from agentforge.envs.remote.client import RemoteEnv
from agentforge.envs.remote.server import serve_in_thread
from agentforge.evaluation.evaluator import evaluate
from agentforge.runtime.workflow import Workflow
from tests.conftest import WORKFLOWS

pytestmark = pytest.mark.local_model

COMMAND = re.compile(r"^(get \d+ .+|craft \d+ .+ using .+|inventory)$")


def test_textcraft_policy_plays_a_served_textcraft_with_the_goal_in_view() -> None:
    wf = Workflow.from_yaml(WORKFLOWS / "textcraft_policy.yaml")
    with serve_in_thread(load_env("textcraft")) as url:
        env = RemoteEnv(url, max_steps=6)
        report = evaluate(wf, env, split="val", limit=2, concurrency=1)
        env.close()
    assert len(report.results) == 2 and report.errors == 0, [r.failure for r in report.results]
    for result in report.results:
        assert 1 <= result.steps <= 6
        # the local model follows the command format it is shown (the goal's crafting commands)
        assert sum(bool(COMMAND.match(a.strip())) for a in result.actions) >= result.steps // 2, result.actions
        for trace in result.traces:  # the goal (crafting commands and goal item) is in every step's prompt
            prompt = trace.nodes[0].llm_calls[0].messages[-1]["content"]
            assert "Crafting commands:" in prompt and "Goal: craft" in prompt
