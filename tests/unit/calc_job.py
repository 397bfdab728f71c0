"""A small evaluation job needing no LLM, for executor tests: a calculator workflow and a JSONL
environment of 24 arithmetic tasks in which every third answer is off by one (mean score 16/24)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from agentforge.runtime.workflow import Workflow

CALC_WORKFLOW = """
version: 1
name: calc
inputs: {expression: str}
outputs: {answer: float}
nodes:
  - {id: calc, kind: tool, tool: calculator, args: {expression: "{expression}"}, inputs: [expression],
     outputs: {answer: float}}
"""

ENV_YAML = """
version: 1
kind: env
name: {name}
source: {{type: jsonl, path: {name}.jsonl, input_fields: [{fields}], answer_field: answer}}
metric: numeric
splits: {{train: 0.5, val: 0.5}}
seed: 0
"""

CALC_MEAN_SCORE = 16 / 24


def write_env(tmp: Path, name: str, fields: str, rows: list[dict[str, object]]) -> Path:
    """A JSONL dataset environment under ``tmp``; returns its YAML path."""
    (tmp / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env_path = tmp / f"{name}.yaml"
    env_path.write_text(textwrap.dedent(ENV_YAML.format(name=name, fields=fields)))
    return env_path


def calc_setup(tmp: Path) -> tuple[Workflow, Path]:
    rows: list[dict[str, object]] = [
        {"id": f"e{i}", "expression": f"{i} * 7 + 1", "answer": i * 7 + 1 + (i % 3 == 0)} for i in range(24)]
    env_path = write_env(tmp, "calc", "expression", rows)
    (tmp / "calc_wf.yaml").write_text(textwrap.dedent(CALC_WORKFLOW))
    return Workflow.from_yaml(tmp / "calc_wf.yaml"), env_path
