"""Where the workflow format and the code disagreed: each case, checked statically and at run time."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentforge._sync import run_sync
from agentforge.errors import NodeError, Problem, SpecError
from agentforge.runtime.workflow import Workflow
from agentforge.workflow.loader import load_spec, spec_from_text
from agentforge.workflow.prompt import TemplateError, render, template_variables
from agentforge.workflow.types import is_assignable, parse_type, zero_value
from agentforge.workflow.validate import find_problems


def problems(text: str, tmp_path: Path | None = None, name: str = "wf.yaml") -> list[Problem]:
    text = textwrap.dedent(text)
    if tmp_path is None:
        return find_problems(spec_from_text(text))
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    try:
        return find_problems(load_spec(path))
    except SpecError as exc:
        return exc.problems


def only(found: list[Problem], code: str) -> Problem:
    hits = [p for p in found if p.code == code]
    assert len(hits) == 1, f"expected one '{code}' problem, got {[p.render() for p in found]}"
    return hits[0]


def make(text: str, path: Path | None = None, **kwargs: Any) -> Workflow:
    text = textwrap.dedent(text)
    if path is not None:
        path.write_text(text, encoding="utf-8")
        return Workflow.from_yaml(path, **kwargs)
    return Workflow(spec_from_text(text), **kwargs)


# -- 1. template variables are plain names ------------------------------------------------------

TEMPLATE = """
version: 1
name: t
inputs: {x: dict}
outputs: {a: str}
nodes:
  - {id: ask, kind: agent, prompt: "Value: PLACEHOLDER", inputs: [x], outputs: [a]}
"""


@pytest.mark.parametrize("variable", ["{x.y}", "{x[0]}", "{x!r}", "{x:>5}"])
def test_attribute_index_spec_and_conversion_in_a_template_are_bad_templates(variable: str) -> None:
    p = only(problems(TEMPLATE.replace("PLACEHOLDER", variable)), "bad_template")
    assert p.node == "ask" and p.field == "prompt"
    assert variable in p.message and "plain name" in p.message
    assert p.hint is not None and "'{x}'" in p.hint
    with pytest.raises(TemplateError):
        render(f"Value: {variable}", {"x": {"y": 1}})  # never a KeyError, never silently unformatted


def test_plain_variables_and_escaped_braces_still_render() -> None:
    assert template_variables("{a} {{b}} {a} {c}") == ["a", "c"]
    assert render("{a} {{b}} {c}", {"a": "x", "c": [1]}) == "x {b} [1]"


# -- 2. subworkflow outputs keep the child's types ------------------------------------------------

CHILD_INT = """
version: 1
name: child
inputs: {question: str}
outputs: {n: int}
nodes:
  - {id: count, kind: code, source: "print(len(question))", inputs: [question], outputs: {n: int}}
"""

PARENT_LISTED = """
version: 1
name: parent
inputs: {question: str}
outputs: {n: any}
nodes:
  - {id: inner, kind: subworkflow, workflow: child.yaml, inputs: [question], outputs: [n]}
"""


def test_subworkflow_outputs_listed_by_name_keep_the_child_types_at_run_time(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(textwrap.dedent(CHILD_INT), encoding="utf-8")
    result = make(PARENT_LISTED, tmp_path / "parent.yaml").run({"question": "abcd"})
    assert result.outputs == {"n": 4}
    assert result.trace.nodes[0].outputs == {"n": 4}  # the int the child gave, not the text "4"


def test_subworkflow_output_declared_with_a_type_the_child_does_not_give_is_a_mismatch(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(textwrap.dedent(CHILD_INT), encoding="utf-8")
    text = PARENT_LISTED.replace("outputs: [n]", "outputs: {n: bool}")
    p = only(problems(text, tmp_path), "type_mismatch")
    assert p.node == "inner" and p.field == "outputs.n"
    assert "bool" in p.message and "int" in p.message
    assert problems(PARENT_LISTED.replace("outputs: [n]", "outputs: {n: float}"), tmp_path) == []


# -- 3. a subworkflow's required inputs ------------------------------------------------------------


def test_required_child_input_the_node_does_not_pass_is_reported(tmp_path: Path) -> None:
    child = CHILD_INT.replace("inputs: {question: str}", "inputs: {question: str, extra: int, opt: {type: int, "
                              "default: 1}, maybe: {type: str, required: false}}")
    (tmp_path / "child.yaml").write_text(textwrap.dedent(child), encoding="utf-8")
    p = only(problems(PARENT_LISTED, tmp_path), "missing_input")
    assert p.node == "inner" and "'extra'" in p.message
    assert p.hint is not None and "add 'extra'" in p.hint


# -- 4. the same custom tool in parent and child -----------------------------------------------------

TOOL_MODULE = '''
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


def whisper(text: str) -> str:
    """Lower-case the text."""
    return text.lower()
'''

TOOL_CHILD = """
version: 1
name: child
inputs: {text: str}
outputs: {loud: str}
tools: {shout: "MODULE:CHILD_REF"}
nodes:
  - {id: call, kind: tool, tool: shout, args: {text: "{text}"}, inputs: [text], outputs: [loud]}
"""

TOOL_PARENT = """
version: 1
name: parent
inputs: {text: str}
outputs: {loud: str, again: str}
tools: {shout: "MODULE:shout"}
nodes:
  - {id: inner, kind: subworkflow, workflow: child.yaml, inputs: [text], outputs: {loud: str}}
  - {id: mine, kind: tool, tool: shout, args: {text: "{loud}!"}, inputs: [loud], outputs: [again]}
edges:
  - {from: inner, to: mine}
"""


def _tool_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, child_ref: str) -> Path:
    (tmp_path / f"{module}.py").write_text(TOOL_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    child = TOOL_CHILD.replace("MODULE", module).replace("CHILD_REF", child_ref)
    (tmp_path / "child.yaml").write_text(textwrap.dedent(child), encoding="utf-8")
    path = tmp_path / "parent.yaml"
    path.write_text(textwrap.dedent(TOOL_PARENT.replace("MODULE", module)), encoding="utf-8")
    return path


def test_custom_tool_declared_in_parent_and_child_with_the_same_ref_runs(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = _tool_files(tmp_path, monkeypatch, "fmt_tools_same", "shout")
    result = Workflow.from_yaml(path).run({"text": "hi"})
    assert result.outputs == {"loud": "HI", "again": "HI!"}


def test_custom_tool_with_another_ref_under_the_same_name_is_a_clear_error(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = _tool_files(tmp_path, monkeypatch, "fmt_tools_other", "whisper")
    p = only(find_problems(load_spec(path)), "tool_clash")
    assert p.node == "inner" and "'shout'" in p.message and "whisper" in p.message
    wf = Workflow.from_yaml(path, validate=False)  # the run-time guard, for a spec nobody validated
    with pytest.raises(NodeError, match=r"custom tool 'shout'.*clashes"):
        wf.run({"text": "hi"})


# -- 5. every cycle needs a bound, not every strongly connected component ----------------------------

PLAIN_CYCLE_BESIDE_A_BOUNDED_ONE = """
version: 1
name: t
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: a, kind: agent, inputs: [question], outputs: [answer]}
  - {id: b, kind: agent, inputs: [answer], outputs: [note]}
  - id: r
    kind: router
    inputs: [note]
    routes:
      - {when: "note == 'again'", to: a}
    default: END
    max_iterations: 2
edges:
  - {from: a, to: b}
  - {from: b, to: [a, r]}
"""


def test_a_plain_edge_cycle_is_unbounded_even_if_its_component_has_a_bounded_router() -> None:
    p = only(problems(PLAIN_CYCLE_BESIDE_A_BOUNDED_ONE), "unbounded_cycle")
    assert "a -> b -> a" in p.message and p.node == "a"
    fixed = PLAIN_CYCLE_BESIDE_A_BOUNDED_ONE.replace("{from: b, to: [a, r]}", "{from: b, to: r}")
    assert problems(fixed) == []


# -- 6. a code node without outputs ------------------------------------------------------------------


def test_code_node_without_outputs_just_runs() -> None:
    wf = make("""
    version: 1
    name: effects
    nodes:
      - {id: touch, kind: code, source: "open('flag.txt', 'w').write('done')"}
    """)
    result = wf.run({})
    assert result.ok and result.outputs == {}
    assert result.trace.nodes[0].outputs == {} and result.trace.nodes[0].error is None


# -- 7. on_error: continue with any and inline-schema outputs ----------------------------------------

ON_ERROR = """
version: 1
name: t
outputs: {record: dict, label: str, score: float, seen_none: bool}
nodes:
  - id: fail
    kind: code
    source: "raise SystemExit(3)"
    on_error: continue
    outputs:
      value: any
      record: {type: object, properties: {k: {type: integer}, tags: {type: array}}, required: [k, tags]}
      label: {type: string, enum: ["", "x"]}
      score: {type: number}
  - {id: check, kind: code, source: "print(value is None)", inputs: [value], outputs: {seen_none: bool}}
edges:
  - {from: fail, to: check}
"""


def test_on_error_continue_gives_zero_values_that_fit_and_a_produced_none_is_a_value() -> None:
    result = make(ON_ERROR).run({})
    assert result.outputs == {"record": {"k": 0, "tags": []}, "label": "", "score": 0.0, "seen_none": True}
    assert result.trace.nodes[0].error is not None and "exited with 3" in result.trace.nodes[0].error


def test_on_error_continue_with_an_enum_that_lists_no_zero_is_reported() -> None:
    p = only(problems(ON_ERROR.replace('enum: ["", "x"]', "enum: [x, y]")), "no_zero_value")
    assert p.node == "fail" and p.field == "outputs.label"
    assert p.hint is not None and "on_error: fail" in p.hint


def test_zero_values() -> None:
    assert [zero_value(parse_type(t)) for t in ("str", "int", "float", "bool", "list", "dict", "any")] == [
        "", 0, 0.0, False, [], {}, None]
    assert zero_value(parse_type({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}})) \
        == {"a": ""}
    with pytest.raises(ValueError, match="enum"):
        zero_value(parse_type({"type": "integer", "enum": [1, 2]}))


# -- 8. a tool node has one output -----------------------------------------------------------------


def test_tool_node_with_two_outputs_is_reported() -> None:
    p = only(problems("""
    version: 1
    name: t
    outputs: {a: float}
    nodes:
      - {id: calc, kind: tool, tool: calculator, args: {expression: "1+1"}, outputs: {a: float, b: str}}
    """), "tool_outputs")
    assert p.node == "calc" and p.field == "outputs"
    assert p.hint is not None and "code node" in p.hint


# -- 9. optional inputs without a default --------------------------------------------------------------

OPTIONAL = """
version: 1
name: t
inputs:
  style: {type: str, required: false}
  n: {type: int, required: false}
  tags: {type: "list[str]", required: false}
  extra: {type: any, required: false}
outputs: {seen: str}
nodes:
  - id: show
    kind: code
    source: "import json; print(json.dumps([style, n, tags, extra]))"
    inputs: [style, n, tags, extra]
    outputs: {seen: str}
"""


def test_optional_input_without_default_binds_the_zero_value_of_its_type() -> None:
    result = make(OPTIONAL).run({})
    assert json.loads(result.outputs["seen"]) == ["", 0, [], None]
    assert result.trace.inputs == {"style": "", "n": 0, "tags": [], "extra": None}


def test_optional_input_whose_type_has_no_zero_needs_a_default() -> None:
    text = OPTIONAL.replace("{type: str, required: false}", "{type: {type: string, enum: [a, b]}, required: false}")
    p = only(problems(text), "no_zero_value")
    assert p.field == "inputs.style" and p.hint is not None and "default" in p.hint


# -- 10. a state default lets a node read a field a later node writes ---------------------------------

LOOP_CARRIED = """
version: 1
name: t
inputs: {question: str}
outputs: {answer: str}
state:
  notes: {type: str, default: "none yet"}
nodes:
  - {id: first, kind: agent, prompt: "Q: {question} Notes: {notes}", inputs: [question, notes], outputs: [answer]}
  - {id: second, kind: agent, inputs: [question], outputs: [notes]}
edges:
  - {from: first, to: second}
"""


def test_input_declared_in_state_with_a_default_may_be_written_by_a_later_node(scripted: Any) -> None:
    assert problems(LOOP_CARRIED) == []
    without_default = LOOP_CARRIED.replace('{type: str, default: "none yet"}', "{type: str}")
    p = only(problems(without_default), "input_order")
    assert p.hint is not None and "'state:' with a default" in p.hint
    model, script = scripted
    script.on("Notes: none yet", "first answer").on("question: q", "later notes")
    result = make(LOOP_CARRIED).run({"question": "q"}, model=model)
    assert result.outputs == {"answer": "first answer"}


def test_state_default_must_be_of_the_field_type() -> None:
    p = only(problems(LOOP_CARRIED.replace('default: "none yet"', "default: [1, 2]").replace(
        "type: str,", 'type: "list[str]",')), "bad_default")
    assert p.field == "state.notes.default"


# -- 11. workflow outputs read reducer fields by their state type ---------------------------------------

APPEND_OUTPUT = """
version: 1
name: t
outputs: {ideas: "list[str]"}
state:
  ideas: {type: "list[str]", reducer: append}
entry: [a, b]
nodes:
  - {id: a, kind: code, source: "print('x')", outputs: {ideas: str}}
  - {id: b, kind: code, source: "print('y')", outputs: {ideas: str}}
"""


def test_workflow_output_on_an_append_field_is_typed_by_the_state_field() -> None:
    assert problems(APPEND_OUTPUT) == []
    assert sorted(make(APPEND_OUTPUT).run({}).outputs["ideas"]) == ["x", "y"]
    p = only(problems(APPEND_OUTPUT.replace('outputs: {ideas: "list[str]"}', "outputs: {ideas: str}")),
             "type_mismatch")
    assert "state field 'ideas'" in p.message


# -- 12. routers write no outputs -------------------------------------------------------------------------


def test_router_with_outputs_is_reported() -> None:
    p = only(problems("""
    version: 1
    name: t
    inputs: {n: int}
    outputs: {label: str}
    nodes:
      - id: route
        kind: router
        inputs: [n]
        outputs: [label]
        routes:
          - {when: "n > 1", to: END}
        default: END
    """), "router_outputs")
    assert p.node == "route" and p.field == "outputs"


# -- 13. every type name works in the full input form -----------------------------------------------------


@pytest.mark.parametrize("type_name", ["list[any]", "list[list]", "list[str]", "any"])
def test_full_input_form_recognises_every_type_name(type_name: str) -> None:
    spec = spec_from_text(f"""
version: 1
name: t
inputs:
  xs: {{type: "{type_name}", description: Some values}}
outputs: {{n: int}}
nodes:
  - {{id: count, kind: code, source: "print(len(xs))", inputs: [xs], outputs: {{n: int}}}}
""")
    field = spec.input_fields()["xs"]
    assert (field.type, field.description) == (type_name, "Some values")
    assert find_problems(spec) == []


# -- 14. state defaults seed every reducer ------------------------------------------------------------------


def test_state_defaults_seed_append_merge_and_sum_fields() -> None:
    wf = make("""
    version: 1
    name: t
    outputs: {items: "list[str]", meta: dict, total: int}
    state:
      items: {type: "list[str]", reducer: append, default: [seed]}
      meta: {type: dict, reducer: merge, default: {a: 1}}
      total: {type: int, reducer: sum, default: 10}
    nodes:
      - id: write
        kind: code
        source: "import json; print(json.dumps({'items': 'x', 'meta': {'b': 2}, 'total': 5}))"
        outputs: {items: str, meta: dict, total: int}
    """)
    assert wf.run({}).outputs == {"items": ["seed", "x"], "meta": {"a": 1, "b": 2}, "total": 15}


# -- 15. 16. fields a node kind would ignore ------------------------------------------------------------------

AGENT_WITH_TOOLS = """
version: 1
name: t
inputs: {q: str}
outputs: {a: str}
nodes:
  - id: solve
    kind: agent
    inputs: [q]
    outputs: [a]
    tools: [calculator]
    EXTRA
"""


@pytest.mark.parametrize(("extra", "field"), [
    ("n: 3", "n"),
    ("demos: [{inputs: {q: x}, outputs: {a: y}}]", "demos"),
])
def test_agent_with_tools_rejects_n_and_demos(extra: str, field: str) -> None:
    p = only(problems(AGENT_WITH_TOOLS.replace("EXTRA", extra)), "unused_field")
    assert (p.node, p.field) == ("solve", field)
    assert p.hint is not None and "remove" in p.hint


ENSEMBLE = """
version: 1
name: t
inputs: {q: str}
outputs: {a: str}
nodes:
  - id: pick
    kind: ensemble
    n: 3
    STRATEGY
    member: {instruction: Answer., prompt: "{q}"}
    inputs: [q]
    outputs: [a]
"""


def test_ensemble_judge_with_vote_is_reported() -> None:
    text = ENSEMBLE.replace("STRATEGY", "strategy: vote\n    judge: {instruction: Pick.}")
    p = only(problems(text), "unused_field")
    assert (p.node, p.field) == ("pick", "judge")
    assert p.hint is not None and "strategy: select" in p.hint


def test_router_on_limit_without_max_iterations_is_reported() -> None:
    text = PLAIN_CYCLE_BESIDE_A_BOUNDED_ONE.replace("{from: b, to: [a, r]}", "{from: b, to: r}").replace(
        "    max_iterations: 2\n", "    max_iterations: 2\n    on_limit: END\n")
    assert problems(text) == []
    p = only(problems(text.replace("    max_iterations: 2\n", "")), "unused_field")
    assert (p.node, p.field) == ("r", "on_limit")


def test_ensemble_judge_prompt_is_rendered_before_the_candidates(scripted: Any) -> None:
    model, script = scripted
    script.on("Candidate 1", json.dumps({"best": 3}))
    script.default = lambda request: f"answer-{request.seed}"
    text = ENSEMBLE.replace("STRATEGY", 'strategy: select\n    judge: {instruction: Pick., prompt: "Task was: {q}"}')
    result = make(text).run({"q": "name a colour"}, model=model)
    assert result.outputs == {"a": "answer-2"}
    judge_prompt = script.calls[-1].messages[-1].content
    assert judge_prompt.startswith("Task was: name a colour\n\nCandidate 1:")
    unbound = text.replace("Task was: {q}", "Task was: {task}")
    assert only(problems(unbound), "unbound_variable").field == "judge.prompt"


# -- 17. a failing router condition is a node error ------------------------------------------------------------


def test_router_condition_error_names_router_expression_and_types() -> None:
    wf = make("""
    version: 1
    name: t
    inputs: {n: str}
    outputs: {label: str}
    nodes:
      - id: route
        kind: router
        inputs: [n]
        routes:
          - {when: "n > 3", to: big}
        default: big
      - {id: big, kind: tool, tool: calculator, args: {expression: "1"}, outputs: [label]}
    """)
    with pytest.raises(NodeError) as info:
        wf.run({"n": "5"})
    message = info.value.message
    assert "router 'route'" in message and "'n > 3'" in message and "n: str" in message
    assert info.value.fields["node"] == "route" and info.value.fields["expression"] == "n > 3"
    # The trace of the failed run comes back as data, not on the exception.
    outcome = run_sync(wf.aexecute({"n": "5"}))
    assert isinstance(outcome.exception, NodeError) and outcome.exception.fields["node"] == "route"
    record = outcome.trace.nodes[0]
    assert record.node == "route" and record.error is not None and "n > 3" in record.error


# -- 18. the hash keeps the order that means something ----------------------------------------------------------


ORDERED = """
version: 1
name: t
inputs: {q: str}
outputs: {a: str}
nodes:
  - NODE
"""


def node_spec(node: str) -> Any:
    return spec_from_text(ORDERED.replace("NODE", node))


def test_output_order_changes_the_hash() -> None:
    first = node_spec("{id: ask, kind: agent, n: 3, inputs: [q], outputs: {a: str, b: int}}")
    swapped = node_spec("{id: ask, kind: agent, n: 3, inputs: [q], outputs: {b: int, a: str}}")
    assert list(swapped.nodes[0].outputs) == ["b", "a"]  # b is now the key the samples vote on
    assert swapped.hash != first.hash
    # The order of a node's own keys in the YAML is formatting, not identity.
    keys_moved = node_spec("{outputs: {a: str, b: int}, kind: agent, inputs: [q], id: ask, n: 3}")
    assert keys_moved.hash == first.hash


# -- 19. assignability of inline schemas ---------------------------------------------------------------------


def test_a_schema_without_a_type_fits_any_plain_type_and_the_rules_stay_symmetric() -> None:
    t = parse_type
    untyped = t({"enum": [1, "a"]})
    assert is_assignable(untyped, t("dict")) and is_assignable(untyped, t("str"))
    assert is_assignable(t("str"), untyped)
    assert is_assignable(t({"type": "object"}), t("dict"))
    assert not is_assignable(t({"type": "object"}), t("str"))
    assert is_assignable(t({"type": "array"}), t("list")) and is_assignable(t("list[int]"), t({"type": "array"}))
    assert not is_assignable(t("list[int]"), t("list[str]"))
