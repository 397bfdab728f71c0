"""An LLM router's prompt names its labels, and its reply is constrained to them by a JSON-schema enum."""

from __future__ import annotations

import json
from typing import Any

from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.messages import format_instructions
from agentforge.workflow.types import parse_type
from tests.conftest import WORKFLOWS

YES_NO = """
version: 1
name: yes-no
inputs: {question: str}
outputs: {answer: str}
nodes:
  - id: gate
    kind: router
    inputs: [question]
    llm: {instruction: Is the question answerable with yes or no?}
    routes:
      - {label: "yes", to: short}
      - {label: "no", to: long, description: an open question that needs an explanation}
    default: long
  - {id: short, kind: agent, instruction: Answer yes or no., prompt: "{question}", inputs: [question],
     outputs: [answer]}
  - {id: long, kind: agent, instruction: Explain., prompt: "{question}", inputs: [question], outputs: [answer]}
"""


def test_router_prompt_lists_the_labels_and_the_request_carries_the_enum(scripted: Any) -> None:
    model, script = scripted
    script.on("Decide which specialist", json.dumps({"route": "general"})).on("generalist", "Rayleigh scattering")
    result = Workflow.from_yaml(WORKFLOWS / "router_specialist.yaml").run(
        {"question": "Why is the sky blue?"}, model=model)
    assert [n.node for n in result.trace.nodes] == ["route", "general_expert"]
    request = script.calls[0]
    system = request.messages[0].content
    assert "- math: arithmetic or other mathematics" in system and "- general: anything else" in system
    assert '"route" (one of "math", "general")' in system
    assert "JSON value" not in system
    route_schema = request.response_schema["properties"]["route"]  # type: ignore[index]
    assert route_schema == {"type": "string", "enum": ["math", "general"]}
    assert request.response_schema["required"] == ["route"]  # type: ignore[index]
    assert request.response_schema["additionalProperties"] is False  # type: ignore[index]


def test_a_label_outside_the_enum_is_repaired_then_falls_back_to_the_default(scripted: Any) -> None:
    model, script = scripted
    script.on("yes or no", [json.dumps({"route": "maybe"}), json.dumps({"route": "perhaps"})])
    script.on("Explain", "because")
    result = Workflow(spec_from_text(YES_NO)).run({"question": "Why is the sky blue?"}, model=model)
    assert [n.node for n in result.trace.nodes] == ["gate", "long"]
    gate = result.trace.nodes[0]
    assert len(gate.llm_calls) == 2  # the reply, then one repair showing the allowed labels
    repair = gate.llm_calls[1].messages[-1]["content"]
    assert "not one of ['yes', 'no']" in repair and '(one of "yes", "no")' in repair
    assert any("taking default" in note for note in gate.notes)
    system = gate.llm_calls[0].messages[0]["content"]
    assert "- yes: short" in system and "- no: an open question" in system


def test_format_instructions_name_enum_members_and_schema_types() -> None:
    text = format_instructions({"winner": parse_type({"type": "string", "enum": ["pro", "con"]}),
                                "score": parse_type({"type": "integer"}),
                                "why": parse_type("str")})
    assert text == ('Reply with only a JSON object with the keys "winner" (one of "pro", "con"), '
                    '"score" (integer), "why" (string).')
