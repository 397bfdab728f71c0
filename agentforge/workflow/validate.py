"""Static checks that run before anything executes. Every problem is collected, none stops the rest.

Graph-level checks live here: duplicate ids, unknown edge and branch targets, types (declared,
parsed, and matched across every edge), inputs nobody produces (or that only a later node produces),
unreachable nodes, nodes with no path to an exit, and cycles that pass through no loop bound. Each
node kind checks itself (``NodeBase.check``: its prompts, models, tools, fields it would ignore)
through the services this checker offers (``CheckContext``: model aliases, tool names, templates,
and child workflows, themselves checked in full).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import networkx as nx

from agentforge.config import Settings, get_settings
from agentforge.errors import Problem, SpecError
from agentforge.workflow.nodes.base import suggest
from agentforge.workflow.prompt import TemplateError, template_variables
from agentforge.workflow.render import back_edges
from agentforge.workflow.spec import END, START, WorkflowSpec
from agentforge.workflow.types import FieldType, coerce, is_assignable, parse_type, zero_value

_LARGE = 500  # options past which a 'did you mean' search counts against the checker's budget


class _Checker:
    def __init__(self, spec: WorkflowSpec, settings: Settings, tool_names: set[str] | None, depth: int,
                 inherited_refs: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.settings = settings
        # ``None``: the caller knows no tool registry, so tool names are not checked.
        self.tool_names = None if tool_names is None else tool_names | set(spec.tools)
        self.depth = depth
        # Custom tools of this file and its ancestors: a child runs with its parent's tool registry.
        self.tool_refs = {**(inherited_refs or {}), **spec.tools}
        self.source = spec._source
        self.file = spec.source_file
        self.problems: list[Problem] = []
        self.ids = spec.node_ids()
        self.by_id: dict[str, Any] = {}
        for node in spec.nodes:
            self.by_id.setdefault(node.id, node)
        self.child_specs: dict[str, WorkflowSpec | None] = {}
        self.large_suggestions = 20

    # -- helpers -------------------------------------------------------------------------------
    def suggest(self, name: str, options: Iterable[str]) -> str | None:
        """'did you mean' over node ids or state names: each search over a large graph costs O(nodes), so
        only the first few are made (a file with thousands of typos would otherwise take minutes)."""
        options = list(options)
        if len(options) > _LARGE:
            if self.large_suggestions <= 0:
                return None
            self.large_suggestions -= 1
        return suggest(name, options)

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
        self.check_model(self.spec.defaults.model, node=None, path=("defaults", "model"), field="defaults.model")
        for node in self.spec.nodes:
            node.check(self)
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
        if target == END or target in self.by_id:
            return True
        self.add(f"unknown node '{target}'", node=node, path=path, field=field,
                 hint=self.suggest(target, [*self.by_id, END]) or "use a node id or END", code="unknown_node",
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
                    if valid_src and (node := self.by_id[src]).branches():
                        self.add(f"{node.kind} '{src}' has a plain outgoing edge", node=src, field="edges",
                                 line=line, hint=f"a {node.kind}'s exits are its routes; remove this edge",
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
            branches = node.branches()
            for branch in branches:
                if self.target_ok(branch.target, node=node.id, path=branch.path, field=branch.field):
                    g.add_edge(node.id, branch.target)
            if not branches and node.id not in outgoing:
                g.add_edge(node.id, END)  # a node with no outgoing edge ends the workflow
        return g

    def known_models(self) -> set[str]:
        return set(self.settings.aliases())

    def check_model(self, model: str | None, *, node: str | None, path: tuple[str | int, ...], field: str) -> None:
        if model is None or "/" in model or model in self.known_models():
            return
        self.add(f"unknown model alias '{model}'", node=node, path=path, field=field,
                 hint=suggest(model, self.known_models()) or
                 "use an alias from agentforge.yaml or a litellm 'provider/model' string",
                 code="unknown_model")

    # -- services for the kinds' own checks (``CheckContext``) ------------------------------------
    def output_types(self, node_id: str) -> dict[str, FieldType]:
        return self.node_out[node_id]

    def check_tool(self, name: str, *, node: str, path: tuple[str | int, ...]) -> None:
        if self.tool_names is None or name in self.tool_names:
            return
        self.add(f"unknown tool '{name}'", node=node, path=path, field="tools",
                 hint=suggest(name, self.tool_names) or
                 f"available: {', '.join(sorted(self.tool_names))}; custom tools go under 'tools:'",
                 code="unknown_tool")

    def check_template(self, text: str, *, node: str, path: tuple[str | int, ...], field: str,
                       inputs: set[str]) -> None:
        try:
            variables = template_variables(text)
        except TemplateError as exc:
            self.add(str(exc), node=node, path=path, field=field, hint=exc.hint, code="bad_template")
            return
        for var in variables:
            if var not in inputs:
                self.add(f"prompt variable '{{{var}}}' is not bound", node=node, path=path, field=field,
                         hint=f"add '{var}' to the node's inputs" + (
                             f", or did you mean '{{{c}}}'?" if (c := _close(var, inputs)) else ""),
                         code="unbound_variable")

    def child(self, node: str, workflow: str) -> WorkflowSpec | None:
        """Load and check the child file once per node; problems in it are reported here."""
        if node in self.child_specs:
            return self.child_specs[node]
        self.child_specs[node] = None
        if self.depth > 8:
            self.add("subworkflows nest more than 8 deep (is a file including itself?)", node=node,
                     path=("workflow",), field="workflow", code="subworkflow_depth")
            return None
        from agentforge.workflow.loader import load_spec

        base = Path(self.file).parent if self.file else Path.cwd()
        path = base / workflow
        if not path.is_file():
            self.add(f"subworkflow file '{workflow}' not found (looked at {path})", node=node,
                     path=("workflow",), field="workflow", code="subworkflow_missing")
            return None
        try:
            child = load_spec(path)
        except SpecError as exc:
            self.problems.extend(exc.problems)
            return None
        inherited = None if self.tool_names is None else self.tool_names - set(self.spec.tools)
        self.problems.extend(_Checker(child, self.settings, inherited, self.depth + 1, self.tool_refs).run())
        self.child_specs[node] = child
        for name, ref in child.tools.items():
            mine = self.tool_refs.get(name)
            if mine is not None and mine.strip() != ref.strip():
                self.add(f"custom tool '{name}' is '{ref}' in '{workflow}' but '{mine}' here", node=node,
                         path=("workflow",), field="workflow", code="tool_clash",
                         hint="a child runs with its parent's tools: use the same reference in both files, "
                              "or give one of the tools another name")
        return child

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
            outputs = node.static_output_types(self, self.node_out[node.id])
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
        ancestors_of = _ancestor_masks(graph)
        bit = {name: 1 << i for i, name in enumerate(graph)}
        for node in spec.nodes:
            ancestors = ancestors_of.get(node.id, 0)
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
                             hint=self.suggest(name, producers) or f"add '{name}' to the workflow inputs",
                             code="unproduced_input")
                    continue
                upstream = [(p, t) for p, t in sources if p == START or ancestors & bit.get(p, 0)]
                if not upstream:
                    names = ", ".join(f"'{p}'" for p, _ in sources)
                    self.add(f"input '{name}' is produced only by {names}, which never runs before this node",
                             node=node.id, path=("inputs",), field="inputs", code="input_order",
                             hint=f"add an edge so {names} runs before '{node.id}', or declare '{name}' under "
                                  "'state:' with a default (the value it has until a node writes it)")
                    continue
                want = declared.get(name)
                if want is None:
                    want = node.static_input_type(self, name)
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
                         field=f"outputs.{name}", hint=self.suggest(name, producers), code="unproduced_output",
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

    def check_structure(self, graph: nx.DiGraph) -> None:
        reachable = nx.descendants(graph, START)
        for node_id in self.ids:
            if node_id not in reachable:
                self.add(f"node '{node_id}' is unreachable from the entry", node=node_id, field="id",
                         hint="add an edge into it, or remove it", code="unreachable")
        stuck = self.check_loop_bounds(graph)
        reaches_end = nx.ancestors(graph, END)
        for node_id in self.ids:
            if node_id in reachable and node_id not in reaches_end and node_id not in stuck:
                self.add(f"node '{node_id}' has no path to an exit", node=node_id, field="id",
                         hint="every loop needs a route out (e.g. a router's default or on_limit to END)",
                         code="no_exit")

    def check_loop_bounds(self, graph: nx.DiGraph) -> set[str]:
        """Report each loop no bound stops, once, on the router that closes it (else on the edge that does).

        Returns the nodes whose missing exit that report already explains (those that can only reach such
        a loop), so they are not reported again as having no path to an exit.
        """
        bounded = {n.id for n in self.spec.nodes if n.loop_bound() is not None}
        # Every cycle must pass through a bounded router: with those routers taken out, what is left
        # must be acyclic. Each loop that remains is a cycle no bound ever stops.
        rest: nx.DiGraph = nx.DiGraph()  # built directly: a subgraph view is slow to walk
        rest.add_nodes_from(n for n in graph if n not in bounded)
        rest.add_edges_from((u, v) for u, v in graph.edges if u not in bounded and v not in bounded)
        back = back_edges(graph, START)
        loops: list[set[str]] = []
        for component in nx.strongly_connected_components(rest):
            (first, *others) = component
            if not others and not rest.has_edge(first, first):
                continue
            loops.append(component)
            order = [n for n in self.ids if n in component]
            routers = [n for n in order if self.by_id[n].branches()]
            inner_back = [(src, dst) for src, dst in back if src in component and dst in component]
            closing = [n for n in routers if any(src == n for src, _ in inner_back)]
            heads = [n for n in order if any(dst == n for _, dst in inner_back)]  # where a plain-edge loop starts
            at = (closing or routers or heads or order)[0]
            loop = nx.find_cycle(rest.subgraph(component), source=at)
            path = " -> ".join([src for src, _ in loop] + [loop[0][0]])
            if routers:
                exits = any(b.target not in component for b in self.by_id[at].branches())
                hint = f"add 'max_iterations: N' to router '{at}'" + (
                    "" if exits else " and 'on_limit: END' (or another node) so the loop has a way out")
                self.add(f"the loop {path} has no bound", node=at, field="max_iterations", hint=hint,
                         code="unbounded_cycle")
            else:
                self.add(f"the loop {path} has no bound", node=at, field="edges", code="unbounded_cycle",
                         hint="route the loop through a router with 'max_iterations: N' and 'on_limit: END'")
        if not loops:
            return set()
        exits = nx.ancestors(graph, END)
        upstream: set[str] = set().union(*loops)
        frontier = list(upstream)
        while frontier:
            for pred in graph.predecessors(frontier.pop()):
                if pred not in upstream:
                    upstream.add(pred)
                    frontier.append(pred)
        return upstream - exits


def _ancestor_masks(graph: nx.DiGraph) -> dict[str, int]:
    """Each node's ancestors as a bitmask over ``graph``'s node order (itself excluded, as ``nx.ancestors``).

    One pass over the condensation in topological order: linear in edges times a word per 64 nodes,
    where an ``nx.ancestors`` call per node is quadratic on a long chain.
    """
    bit = {name: 1 << i for i, name in enumerate(graph)}
    dag = nx.condensation(graph)
    members = {c: dag.nodes[c]["members"] for c in dag}
    member_bits = {c: sum(bit[n] for n in names) for c, names in members.items()}
    above: dict[int, int] = {}
    out: dict[str, int] = {}
    for c in nx.topological_sort(dag):
        mask = 0
        for p in dag.predecessors(c):
            mask |= above[p] | member_bits[p]
        above[c] = mask
        for name in members[c]:
            out[name] = mask | (member_bits[c] & ~bit[name])
    return out


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
    """All static problems of a spec (an empty list means it can run).

    ``tool_names`` are the tools the run will have (e.g. ``default_registry().names()``); the
    workflow layer knows no registry, so without them tool names are not checked.
    """
    names = None if tool_names is None else set(tool_names)
    # As in parsing: the checker builds many small objects and no reference cycles, and the collector's
    # repeated scans of them cost more than the checks on a large graph.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Checker(spec, settings or get_settings(), names, depth=0).run()
    finally:
        if collecting:
            gc.enable()


def check(spec: WorkflowSpec, **kwargs: Any) -> WorkflowSpec:
    """Raise ``SpecError`` with every problem, or return the spec unchanged."""
    problems = find_problems(spec, **kwargs)
    if problems:
        raise SpecError(problems)
    return spec
