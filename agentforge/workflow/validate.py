"""Static checks that run before anything executes. Every problem is collected, none stops the rest.

Checks: duplicate ids, unknown edge targets, unknown tools and model aliases, unbound prompt
variables, fields a node kind would ignore, inputs nobody produces (or that only a later node
produces), port type mismatches, unreachable nodes, nodes with no path to an exit, cycles that pass
through no router with ``max_iterations``, and the same for every subworkflow file (plus how the
parent binds it: required child inputs, output types, custom tool references).
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import networkx as nx

from agentforge.config import Settings, get_settings
from agentforge.errors import Problem, SpecError
from agentforge.expr import ExpressionError, names_used
from agentforge.workflow.prompt import TemplateError, template_variables
from agentforge.workflow.spec import (
    END,
    START,
    AgentNode,
    CodeNode,
    EnsembleNode,
    RouterNode,
    SubworkflowNode,
    ToolNode,
    WorkflowSpec,
)
from agentforge.workflow.types import FieldType, coerce, is_assignable, parse_type, zero_value


def _suggest(name: str, options: Iterable[str]) -> str | None:
    close = get_close_matches(name, list(options), n=1)
    return f"did you mean '{close[0]}'?" if close else None


class _Checker:
    def __init__(self, spec: WorkflowSpec, settings: Settings, tool_names: set[str], depth: int,
                 inherited_refs: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.tool_names = tool_names | set(spec.tools)
        self.depth = depth
        # Custom tools of this file and its ancestors: a child runs with its parent's tool registry.
        self.tool_refs = {**(inherited_refs or {}), **spec.tools}
        self.source = spec._source
        self.file = spec.source_file
        self.problems: list[Problem] = []
        self.ids = spec.node_ids()
        self.child_specs: dict[str, WorkflowSpec] = {}

    # -- helpers -------------------------------------------------------------------------------
    def line(self, node_id: str | None = None, *path: str | int) -> int | None:
        if self.source is None:
            return None
        if node_id is None:
            return self.source.line(tuple(path))
        index = self.source.node_index(node_id)
        if index is None:
            return None
        return self.source.line(("nodes", index, *path))

    def add(self, message: str, *, node: str | None = None, path: tuple[str | int, ...] = (),
            field: str | None = None, hint: str | None = None, code: str = "invalid",
            line: int | None = None) -> None:
        if line is None:
            line = self.line(node, *path)
        self.problems.append(
            Problem(message, file=self.file, line=line, node=node, field=field, hint=hint, code=code)
        )

    # -- checks --------------------------------------------------------------------------------
    def parse_types(self, mapping: dict[str, Any], *, node: str | None, path: tuple[str | int, ...],
                    field: str) -> dict[str, FieldType]:
        out: dict[str, FieldType] = {}
        for name, expr in mapping.items():
            try:
                out[name] = parse_type(expr)
            except ValueError as exc:
                self.add(str(exc), node=node, path=(*path, name), field=f"{field}.{name}", code="bad_type",
                         hint="use str, int, float, bool, list, list[str], dict, any, or a JSON-schema mapping",
                         line=None if node else self.line(None, *path, name))
        return out

    def check_types(self) -> None:
        spec = self.spec
        raw_inputs = {k: v.type for k, v in spec.input_fields().items()}
        self.wf_inputs = self.parse_types(raw_inputs, node=None, path=("inputs",), field="inputs")
        for name, input_field in spec.input_fields().items():
            if not input_field.required and input_field.default is None and name in self.wf_inputs:
                self.check_zero(self.wf_inputs[name], node=None, path=("inputs", name), field=f"inputs.{name}",
                                what=f"optional input '{name}'",
                                hint="give the input a 'default', or make it required")
        self.wf_outputs = self.parse_types(dict(spec.outputs), node=None, path=("outputs",), field="outputs")
        self.node_out: dict[str, dict[str, FieldType]] = {}
        for node in spec.nodes:
            raw = dict(node.outputs) if isinstance(node.outputs, dict) else dict.fromkeys(node.outputs, "str")
            self.node_out[node.id] = self.parse_types(raw, node=node.id, path=("outputs",), field="outputs")

    def check_zero(self, ftype: FieldType, *, node: str | None, path: tuple[str | int, ...], field: str,
                   what: str, hint: str) -> None:
        """Report a type that has no zero value where one is needed (an enum that lists no zero)."""
        try:
            zero_value(ftype)
        except ValueError as exc:
            self.add(f"{what} needs a zero value, but {ftype} has none ({exc})", node=node, path=path, field=field,
                     hint=hint, code="no_zero_value", line=None if node else self.line(None, *path))

    def run(self) -> list[Problem]:
        self.check_types()
        self.check_ids()
        graph = self.build_graph()
        self.check_models()
        self.check_tools()
        self.check_subworkflows()
        self.check_prompts()
        self.check_kinds()
        self.check_dataflow(graph)
        self.check_structure(graph)
        return self.problems

    def check_ids(self) -> None:
        seen: dict[str, int] = {}
        for i, node in enumerate(self.spec.nodes):
            if node.id in (START, END, "__start__", "__end__"):
                self.add(f"'{node.id}' is reserved and cannot be a node id", node=node.id, field="id",
                         line=self.source.line(("nodes", i, "id")) if self.source else None, code="reserved_id")
            if node.id in seen:
                line = self.source.line(("nodes", i, "id")) if self.source else None
                self.add(f"duplicate node id '{node.id}' (first defined as node #{seen[node.id] + 1})",
                         node=node.id, field="id", line=line, hint="give every node a unique id",
                         code="duplicate_id")
            seen.setdefault(node.id, i)

    def target_ok(self, target: str, *, node: str | None, path: tuple[str | int, ...], field: str,
                  line: int | None = None) -> bool:
        if target == END or target in self.ids:
            return True
        self.add(f"unknown node '{target}'", node=node, path=path, field=field,
                 hint=_suggest(target, [*self.ids, END]) or "use a node id or END", code="unknown_node",
                 line=line)
        return False

    def build_graph(self) -> nx.DiGraph:
        g: nx.DiGraph = nx.DiGraph()
        g.add_node(START)
        g.add_node(END)
        for node in self.spec.nodes:
            g.add_node(node.id)
        for entry in self.spec.entries():
            if self.target_ok(entry, node=None, path=("entry",), field="entry", line=self.line(None, "entry")):
                g.add_edge(START, entry)
        outgoing: set[str] = set()
        for i, edge in enumerate(self.spec.edges):
            line = self.line(None, "edges", i)
            for src in edge.sources():
                if src == START:
                    valid_src = True
                elif src == END:
                    self.add("an edge cannot start at END", path=("edges", i), field="from", line=line,
                             code="bad_edge")
                    valid_src = False
                else:
                    valid_src = self.target_ok(src, node=None, path=("edges", i), field="from", line=line)
                    if valid_src and isinstance(self.spec.node(src), RouterNode):
                        self.add(f"router '{src}' has a plain outgoing edge", node=src, field="edges",
                                 line=line, hint="a router's exits are its routes; remove this edge",
                                 code="router_edge")
                for dst in edge.targets():
                    if dst == START:
                        self.add("an edge cannot point to START", path=("edges", i), field="to", line=line,
                                 code="bad_edge")
                        continue
                    if valid_src and self.target_ok(dst, node=None, path=("edges", i), field="to", line=line):
                        g.add_edge(src, dst)
                        outgoing.add(src)
        for node in self.spec.nodes:
            if isinstance(node, RouterNode):
                for j, route in enumerate(node.routes):
                    if self.target_ok(route.to, node=node.id, path=("routes", j, "to"), field=f"routes[{j}].to"):
                        g.add_edge(node.id, route.to)
                for name in ("default", "on_limit"):
                    target = getattr(node, name)
                    if target is not None and self.target_ok(target, node=node.id, path=(name,), field=name):
                        g.add_edge(node.id, target)
            elif node.id not in outgoing:
                g.add_edge(node.id, END)  # a node with no outgoing edge ends the workflow
        return g

    def known_models(self) -> set[str]:
        return set(self.settings.aliases())

    def check_model(self, model: str | None, *, node: str | None, path: tuple[str | int, ...], field: str) -> None:
        if model is None or "/" in model or model in self.known_models():
            return
        self.add(f"unknown model alias '{model}'", node=node, path=path, field=field,
                 hint=_suggest(model, self.known_models()) or
                 "use an alias from agentforge.yaml or a litellm 'provider/model' string",
                 code="unknown_model")

    def check_models(self) -> None:
        self.check_model(self.spec.defaults.model, node=None, path=("defaults", "model"), field="defaults.model")
        for node in self.spec.nodes:
            if isinstance(node, AgentNode):
                self.check_model(node.model, node=node.id, path=("model",), field="model")
            elif isinstance(node, RouterNode) and node.llm is not None:
                self.check_model(node.llm.model, node=node.id, path=("llm", "model"), field="llm.model")
            elif isinstance(node, EnsembleNode):
                self.check_model(node.member.model, node=node.id, path=("member", "model"), field="member.model")
                if node.judge is not None:
                    self.check_model(node.judge.model, node=node.id, path=("judge", "model"), field="judge.model")

    def check_tools(self) -> None:
        for node in self.spec.nodes:
            names: list[tuple[str, tuple[str | int, ...]]] = []
            if isinstance(node, AgentNode):
                names = [(t, ("tools", i)) for i, t in enumerate(node.tools)]
            elif isinstance(node, ToolNode):
                names = [(node.tool, ("tool",))]
            for name, path in names:
                if name not in self.tool_names:
                    self.add(f"unknown tool '{name}'", node=node.id, path=path, field="tools",
                             hint=_suggest(name, self.tool_names) or
                             f"available: {', '.join(sorted(self.tool_names))}; custom tools go under 'tools:'",
                             code="unknown_tool")

    def check_subworkflows(self) -> None:
        for node in self.spec.nodes:
            if not isinstance(node, SubworkflowNode):
                continue
            if self.depth > 8:
                self.add("subworkflows nest more than 8 deep (is a file including itself?)", node=node.id,
                         path=("workflow",), field="workflow", code="subworkflow_depth")
                continue
            from agentforge.workflow.loader import load_spec

            base = Path(self.file).parent if self.file else Path.cwd()
            path = base / node.workflow
            if not path.is_file():
                self.add(f"subworkflow file '{node.workflow}' not found (looked at {path})", node=node.id,
                         path=("workflow",), field="workflow", code="subworkflow_missing")
                continue
            try:
                child = load_spec(path)
            except SpecError as exc:
                self.problems.extend(exc.problems)
                continue
            child_problems = _Checker(child, self.settings, self.tool_names - set(self.spec.tools),
                                      self.depth + 1, self.tool_refs).run()
            self.problems.extend(child_problems)
            self.child_specs[node.id] = child
            for name, ref in child.tools.items():
                mine = self.tool_refs.get(name)
                if mine is not None and mine.strip() != ref.strip():
                    self.add(f"custom tool '{name}' is '{ref}' in '{node.workflow}' but '{mine}' here", node=node.id,
                             path=("workflow",), field="workflow", code="tool_clash",
                             hint="a child runs with its parent's tools: use the same reference in both files, "
                                  "or give one of the tools another name")

    def check_prompts(self) -> None:
        for node in self.spec.nodes:
            inputs = set(node.input_names())
            templates: list[tuple[str, tuple[str | int, ...], str]] = []
            if isinstance(node, AgentNode) and node.prompt is not None:
                templates.append((node.prompt, ("prompt",), "prompt"))
            if isinstance(node, RouterNode) and node.llm is not None and node.llm.prompt is not None:
                templates.append((node.llm.prompt, ("llm", "prompt"), "llm.prompt"))
            if isinstance(node, EnsembleNode) and node.member.prompt is not None:
                templates.append((node.member.prompt, ("member", "prompt"), "member.prompt"))
            if isinstance(node, EnsembleNode) and node.judge is not None and node.judge.prompt is not None:
                templates.append((node.judge.prompt, ("judge", "prompt"), "judge.prompt"))
            if isinstance(node, ToolNode):
                for key, value in node.args.items():
                    if isinstance(value, str):
                        templates.append((value, ("args", key), f"args.{key}"))
            for text, path, field in templates:
                try:
                    variables = template_variables(text)
                except TemplateError as exc:
                    self.add(str(exc), node=node.id, path=path, field=field, hint=exc.hint, code="bad_template")
                    continue
                for var in variables:
                    if var not in inputs:
                        self.add(f"prompt variable '{{{var}}}' is not bound", node=node.id, path=path, field=field,
                                 hint=f"add '{var}' to the node's inputs" + (
                                     f", or did you mean '{{{c}}}'?" if (c := _close(var, inputs)) else ""),
                                 code="unbound_variable")
            if isinstance(node, RouterNode):
                self.check_router(node, inputs)
            if isinstance(node, CodeNode):
                if (node.source is None) == (node.code_from is None):
                    self.add("a code node needs exactly one of 'source' or 'code_from'", node=node.id,
                             field="source", code="code_source")
                elif node.code_from is not None and node.code_from not in inputs:
                    self.add(f"code_from '{node.code_from}' is not one of the node's inputs", node=node.id,
                             path=("code_from",), field="code_from", hint=f"add '{node.code_from}' to inputs",
                             code="unbound_variable")
            if isinstance(node, AgentNode | EnsembleNode):
                demos = node.demos if isinstance(node, AgentNode) else node.member.demos
                outputs = set(self.node_out[node.id])
                for j, demo in enumerate(demos):
                    path: tuple[str | int, ...] = (
                        ("demos", j) if isinstance(node, AgentNode) else ("member", "demos", j))
                    missing_in = inputs - set(demo.inputs)
                    missing_out = outputs - set(demo.outputs)
                    if missing_in or missing_out:
                        self.add(f"demo #{j + 1} lacks {sorted(missing_in | missing_out)}", node=node.id,
                                 path=path, field="demos", code="bad_demo")
            if isinstance(node, EnsembleNode) and node.vote_on and node.vote_on not in node.outputs:
                self.add(f"vote_on '{node.vote_on}' is not an output of the node", node=node.id,
                         path=("vote_on",), field="vote_on", hint=_suggest(node.vote_on, node.outputs),
                         code="unknown_field")
            if isinstance(node, AgentNode | EnsembleNode) and not node.outputs:
                self.add("the node declares no outputs", node=node.id, field="outputs",
                         hint="add e.g. 'outputs: {answer: str}'", code="no_outputs")

    def check_router(self, node: RouterNode, inputs: set[str]) -> None:
        if node.llm is None:
            for j, route in enumerate(node.routes):
                if route.when is None:
                    self.add(f"route #{j + 1} has no 'when' condition", node=node.id, path=("routes", j),
                             field="when", hint="add 'when:' or give the router an 'llm:' to choose by label",
                             code="route_condition")
                    continue
                try:
                    used = names_used(route.when)
                except ExpressionError as exc:
                    self.add(str(exc), node=node.id, path=("routes", j, "when"), field="when", code="bad_expression")
                    continue
                for name in sorted(used - inputs):
                    self.add(f"condition uses '{name}', which is not one of the router's inputs", node=node.id,
                             path=("routes", j, "when"), field="when", hint=f"add '{name}' to inputs",
                             code="unbound_variable")
            if node.default is None:
                self.add("a router needs a 'default' route for when no condition holds", node=node.id,
                         field="default", code="router_default", hint="add 'default: <node id or END>'")
        else:
            labels = [r.label for r in node.routes]
            if any(label is None for label in labels):
                self.add("an LLM router's routes each need a 'label' to choose from", node=node.id,
                         field="routes", code="route_label")

    def unused(self, node: str, key: str, message: str, hint: str) -> None:
        self.add(message, node=node, path=tuple(key.split(".")), field=key, hint=hint, code="unused_field")

    def check_kinds(self) -> None:
        """Fields a node kind cannot honour: reported, never silently ignored."""
        for node in self.spec.nodes:
            if isinstance(node, RouterNode):
                if node.outputs:
                    self.add("a router writes no outputs; it only picks the next node", node=node.id,
                             path=("outputs",), field="outputs", code="router_outputs",
                             hint="remove 'outputs' (the route taken is in the trace); to keep a value, "
                                  "let a node on the chosen route write it")
                if node.on_limit is not None and node.max_iterations is None:
                    self.unused(node.id, "on_limit", "'on_limit' is never used without 'max_iterations'",
                                "add 'max_iterations: N', or remove 'on_limit'")
            elif isinstance(node, ToolNode) and len(node.outputs) > 1:
                self.add(f"a tool node has one output (the tool's result), not {len(node.outputs)}", node=node.id,
                         path=("outputs",), field="outputs", code="tool_outputs",
                         hint="keep one output; to split the result into several values, add a code node after it")
            elif isinstance(node, AgentNode) and node.tools:
                if node.n > 1:
                    self.unused(node.id, "n", "'n' is not used by an agent with tools (a ReAct loop is one "
                                "sample per step)", "remove 'n', or 'tools'")
                if node.demos:
                    self.unused(node.id, "demos", "'demos' are not used by an agent with tools",
                                "remove 'demos', or 'tools'")
            elif isinstance(node, EnsembleNode):
                if node.strategy == "vote" and node.judge is not None:
                    self.unused(node.id, "judge", "'judge' is only used with 'strategy: select'",
                                "set 'strategy: select', or remove 'judge'")
                if node.strategy == "select" and node.vote_on is not None:
                    self.unused(node.id, "vote_on", "'vote_on' is only used with 'strategy: vote'",
                                "set 'strategy: vote', or remove 'vote_on'")
            elif isinstance(node, CodeNode) and node.on_error == "continue":
                for name, ftype in self.node_out[node.id].items():
                    self.check_zero(ftype, node=node.id, path=("outputs", name), field=f"outputs.{name}",
                                    what=f"output '{name}' (on_error: continue)",
                                    hint="add the zero value to the enum, or use on_error: fail")

    def check_dataflow(self, graph: nx.DiGraph) -> None:
        spec = self.spec
        producers: dict[str, list[tuple[str, FieldType]]] = {}
        for name, ftype in self.wf_inputs.items():
            producers.setdefault(name, []).append((START, ftype))
        declared_state: dict[str, FieldType] = {}
        for name, field in spec.state.items():
            try:
                declared_state[name] = parse_type(field.type)
            except ValueError as exc:
                self.add(str(exc), path=("state", name, "type"), field=f"state.{name}", code="bad_type",
                         line=self.line(None, "state", name))
                continue
            if field.default is None:
                continue
            try:
                coerce(field.default, declared_state[name])
            except ValueError as exc:
                self.add(f"state field '{name}' has a default that is not {declared_state[name]}: {exc}",
                         path=("state", name, "default"), field=f"state.{name}.default", code="bad_default",
                         hint=f"give a default of type {declared_state[name]}, or change the type",
                         line=self.line(None, "state", name, "default"))
                continue
            # The default seeds the state when the run starts, so it is there before any node runs.
            producers.setdefault(name, []).append((START, declared_state[name]))
        node_outputs: dict[str, dict[str, FieldType]] = {}
        for node in spec.nodes:
            outputs = self.node_output_types(node)
            node_outputs[node.id] = outputs
            for name, ftype in outputs.items():
                state_type = declared_state.get(name)
                if state_type is not None and not _fits_state(ftype, state_type, spec.state[name].reducer):
                    self.add(f"output '{name}' is {ftype} but state field '{name}' is {state_type}",
                             node=node.id, path=("outputs", name), field=f"outputs.{name}", code="type_mismatch")
                producers.setdefault(name, []).append((node.id, ftype))
        for name, entries in producers.items():
            first_node, first_type = entries[0]
            for node_id, ftype in entries[1:]:
                if name in declared_state:
                    continue
                if not (is_assignable(ftype, first_type) and is_assignable(first_type, ftype)):
                    who = "the workflow input" if first_node == START else f"node '{first_node}'"
                    self.add(f"output '{name}' is {ftype} but {who} gives '{name}' as {first_type}",
                             node=node_id, path=("outputs", name), field=f"outputs.{name}", code="type_mismatch",
                             hint=f"declare '{name}' as {first_type} here too, or rename one of the outputs")
        for node in spec.nodes:
            ancestors = nx.ancestors(graph, node.id) if node.id in graph else set()
            try:
                declared = node.declared_input_types()
            except ValueError as exc:
                self.add(str(exc), node=node.id, path=("inputs",), field="inputs", code="bad_type")
                declared = {}
            for name in node.input_names():
                sources = producers.get(name, [])
                if name in declared_state and not sources:
                    continue
                if not sources:
                    self.add(f"input '{name}' is not produced by any node or workflow input", node=node.id,
                             path=("inputs",), field="inputs",
                             hint=_suggest(name, producers) or f"add '{name}' to the workflow inputs",
                             code="unproduced_input")
                    continue
                upstream = [(p, t) for p, t in sources if p == START or p in ancestors]
                if not upstream:
                    names = ", ".join(f"'{p}'" for p, _ in sources)
                    self.add(f"input '{name}' is produced only by {names}, which never runs before this node",
                             node=node.id, path=("inputs",), field="inputs", code="input_order",
                             hint=f"add an edge so {names} runs before '{node.id}', or declare '{name}' under "
                                  "'state:' with a default (the value it has until a node writes it)")
                    continue
                want = declared.get(name)
                if want is None and isinstance(node, SubworkflowNode) and node.id in self.child_specs:
                    want = self.child_specs[node.id].input_types().get(name)
                if want is not None:
                    for producer, got in upstream:
                        if not is_assignable(got, want):
                            who = "workflow input" if producer == START else f"node '{producer}' output"
                            self.add(f"input '{name}' expects {want} but {who} '{name}' is {got}",
                                     node=node.id, path=("inputs", name) if name in declared else ("inputs",),
                                     field=f"inputs.{name}", hint=f"change one side so both are {want}",
                                     code="type_mismatch")
        for name, ftype in self.wf_outputs.items():
            sources = producers.get(name)
            if not sources:
                self.add(f"workflow output '{name}' is not produced by any node", path=("outputs", name),
                         field=f"outputs.{name}", hint=_suggest(name, producers), code="unproduced_output",
                         line=self.line(None, "outputs", name))
                continue
            if name in declared_state:
                # The output is read from the state field, whose reducer may combine the writes (an
                # ``append`` list of single items): its declared type is what the output gets.
                if not is_assignable(declared_state[name], ftype):
                    self.add(f"workflow output '{name}' is {ftype} but state field '{name}' is "
                             f"{declared_state[name]}", path=("outputs", name), field=f"outputs.{name}",
                             code="type_mismatch", line=self.line(None, "outputs", name),
                             hint=f"make the workflow output {declared_state[name]}, or change the state type")
                continue
            for producer, got in sources:
                if producer != START and not is_assignable(got, ftype):
                    self.add(f"workflow output '{name}' is {ftype} but node '{producer}' produces {got}",
                             path=("outputs", name), field=f"outputs.{name}", code="type_mismatch",
                             hint=f"make the workflow output {got}, or node '{producer}' produce {ftype}",
                             line=self.line(None, "outputs", name))

    def node_output_types(self, node: Any) -> dict[str, FieldType]:
        if not (isinstance(node, SubworkflowNode) and node.id in self.child_specs):
            return self.node_out[node.id]
        child = self.child_specs[node.id]
        child_outputs = child.output_types()
        declared = self.node_out[node.id] if isinstance(node.outputs, dict) else {}
        out: dict[str, FieldType] = {}
        for name in node.outputs:
            if name not in child_outputs:
                self.add(f"subworkflow has no output '{name}'", node=node.id, path=("outputs",),
                         field="outputs", hint=_suggest(name, child_outputs), code="unknown_field")
                continue
            got = child_outputs[name]
            if name not in declared:  # listed by name: typed by the child
                out[name] = got
                continue
            if not is_assignable(got, declared[name]):
                self.add(f"output '{name}' is declared {declared[name]} but the subworkflow gives {got}",
                         node=node.id, path=("outputs", name), field=f"outputs.{name}", code="type_mismatch",
                         hint=f"declare it as {got}, or list it by name to take the child's type")
            out[name] = declared[name]
        for name in node.input_names():
            if name not in child.inputs:
                self.add(f"subworkflow has no input '{name}'", node=node.id, path=("inputs",),
                         field="inputs", hint=_suggest(name, child.inputs), code="unknown_field")
        given = set(node.input_names())
        for name, child_input in child.input_fields().items():
            if child_input.required and child_input.default is None and name not in given:
                self.add(f"the subworkflow needs input '{name}', which the node does not pass", node=node.id,
                         path=("inputs",), field="inputs", code="missing_input",
                         hint=f"add '{name}' to the node's inputs, or give it a default in '{node.workflow}'")
        return out

    def check_structure(self, graph: nx.DiGraph) -> None:
        reachable = nx.descendants(graph, START)
        for node_id in self.ids:
            if node_id not in reachable:
                self.add(f"node '{node_id}' is unreachable from the entry", node=node_id, field="id",
                         hint="add an edge into it, or remove it", code="unreachable")
        reaches_end = nx.ancestors(graph, END)
        for node_id in self.ids:
            if node_id in reachable and node_id not in reaches_end:
                self.add(f"node '{node_id}' has no path to an exit", node=node_id, field="id",
                         hint="every loop needs a route out (e.g. a router's default or on_limit to END)",
                         code="no_exit")
        bounded = {n for n in self.ids if isinstance(node := self.spec.node(n), RouterNode)
                   and node.max_iterations is not None}
        # Every cycle must pass through a bounded router: with those routers taken out, what is left
        # must be acyclic. Each loop that remains is a cycle no bound ever stops.
        rest = graph.subgraph(n for n in graph if n not in bounded)
        for component in nx.strongly_connected_components(rest):
            (first, *others) = component
            if not others and not rest.has_edge(first, first):
                continue
            loop = nx.find_cycle(rest.subgraph(component), source=min(component))
            path = [src for src, _ in loop] + [loop[0][0]]
            self.add(f"the loop {' -> '.join(path)} has no bound", node=path[0], field="max_iterations",
                     hint="route the loop through a router with 'max_iterations: N'", code="unbounded_cycle")


def _fits_state(value: FieldType, field: FieldType, reducer: str) -> bool:
    """An ``append`` list takes single items as well as whole lists."""
    if is_assignable(value, field):
        return True
    if reducer == "append" and field.base == "list":
        items = field.schema.get("items")
        return items is None or is_assignable(value, parse_type(_plain_name(items)))
    return False


def _plain_name(schema: dict[str, Any]) -> str | dict[str, Any]:
    names = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list",
             "object": "dict"}
    kind = schema.get("type")
    return names[kind] if isinstance(kind, str) and len(schema) == 1 and kind in names else schema


def _close(name: str, options: Iterable[str]) -> str | None:
    close = get_close_matches(name, list(options), n=1)
    return close[0] if close else None


def find_problems(spec: WorkflowSpec, *, settings: Settings | None = None,
                  tool_names: Iterable[str] | None = None) -> list[Problem]:
    """All static problems of a spec (an empty list means it can run)."""
    if tool_names is None:
        from agentforge.tools import default_registry

        tool_names = default_registry().names()
    return _Checker(spec, settings or get_settings(), set(tool_names), depth=0).run()


def check(spec: WorkflowSpec, **kwargs: Any) -> WorkflowSpec:
    """Raise ``SpecError`` with every problem, or return the spec unchanged."""
    problems = find_problems(spec, **kwargs)
    if problems:
        raise SpecError(problems)
    return spec
