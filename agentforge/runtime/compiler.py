"""Spec -> LangGraph ``StateGraph``: typed state with reducers, fan-out, joins, routing nodes, loop bounds.

Build once, compile per checkpointer (the no-checkpointer graph is cached). Node functions read the
run's context from a contextvar, so one compiled graph serves every run and every batch item. The
compiler knows no kind by name: a node with ``branches()`` picks its successor (``route``), every
other node runs (``execute``) and is followed by its edges.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

from agentforge.errors import AgentforgeError, InputError, NodeError, OutputError, Problem, SpecError
from agentforge.runtime.context import current_run
from agentforge.runtime.trace import NodeTrace
from agentforge.workflow.spec import END, START, WorkflowSpec
from agentforge.workflow.types import coerce, parse_type

ROUTE_KEY = "__route__"
VISITS_KEY = "__visits__"
# Hidden channel: each finished node's ``NodeTrace`` (as JSON) rides along with its state writes, so the
# record is checkpointed exactly when those writes are. A Topic emptied every step keeps each record in
# one checkpoint only (an accumulating list would be copied into every later checkpoint).
TRACE_KEY = "__trace__"


def _append(left: list[Any] | None, right: Any) -> list[Any]:
    left = list(left or [])
    return left + (list(right) if isinstance(right, list) else [right])


def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


def _sum(left: Any, right: Any) -> Any:
    return right if left is None else left + right


_REDUCERS = {"append": _append, "merge": _merge, "sum": _sum}


def state_schema(spec: WorkflowSpec) -> type:
    """A TypedDict of every field the workflow reads or writes; reducers become Annotated channels."""
    from langgraph.channels.topic import Topic

    fields: dict[str, Any] = {name: Any for name in spec.inputs}
    for node in spec.nodes:
        for name in (*node.input_names(), *node.outputs):
            fields.setdefault(name, Any)
    for name, field in spec.state.items():
        reducer = _REDUCERS.get(field.reducer)
        # The channel type seeds the first value: with Any, LangGraph would store the first write raw.
        channel = {"append": list, "merge": dict}.get(field.reducer, Any)
        fields[name] = Annotated[channel, reducer] if reducer else Any
    fields[ROUTE_KEY] = Annotated[dict, _merge]
    fields[VISITS_KEY] = Annotated[dict, _merge]
    fields[TRACE_KEY] = Annotated[list, Topic(dict, accumulate=False)]
    return TypedDict("WorkflowState", fields, total=False)  # type: ignore[operator]


def _gather_inputs(node: Any, state: dict[str, Any], spec: WorkflowSpec) -> dict[str, Any]:
    """The node's inputs from the state. A field is there once written (a written ``None`` counts);
    state defaults are written when the run starts, so only a declared field without one can be unset."""
    values: dict[str, Any] = {}
    for name in node.input_names():
        if name in state:
            values[name] = state[name]
        elif name in spec.state:
            values[name] = None  # declared with no default and not written yet
        else:
            raise InputError(f"node '{node.id}' input '{name}' has no value: the node that produces it "
                             "did not run on this path", node=node.id)
    return values


def state_defaults(spec: WorkflowSpec) -> dict[str, Any]:
    """The initial value of every ``state:`` field with a default, coerced to the field's type.

    They seed the run's first state like inputs do, so every reducer starts from them: ``append`` and
    ``merge`` extend the default, ``sum`` adds to it, ``replace`` overwrites it.
    """
    out: dict[str, Any] = {}
    for name, field in spec.state.items():
        if field.default is None:
            continue
        try:
            out[name] = coerce(field.default, parse_type(field.type))
        except ValueError as exc:
            raise SpecError([Problem(f"state field '{name}' has a default that is not {field.type}: {exc}",
                                     file=spec.source_file, field=f"state.{name}.default",
                                     code="bad_default")]) from None
    return out


def _node_function(spec: WorkflowSpec, node: Any) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    output_types = node.output_types()
    routes = bool(node.branches())

    async def run_node(state: dict[str, Any]) -> dict[str, Any]:
        ctx = current_run.get()
        record = NodeTrace(node=node.id, kind=node.kind, started_at=time.time())
        started = time.perf_counter()
        try:
            values = _gather_inputs(node, state, spec)
            record.inputs = values
            if routes:
                visits = (state.get(VISITS_KEY) or {}).get(node.id, 0) + 1
                target = await node.route(values, ctx, record, visits)
                record.outputs = {"route": target}
                update = {ROUTE_KEY: {node.id: target}, VISITS_KEY: {node.id: visits}}
            else:
                update = await node.execute(values, ctx, record)
                for name, ftype in output_types.items():
                    if name not in update:
                        raise OutputError(f"node '{node.id}' did not produce output '{name}'", node=node.id)
                    try:
                        update[name] = coerce(update[name], ftype)
                    except ValueError as exc:
                        raise OutputError(f"node '{node.id}' output '{name}': {exc}", node=node.id) from None
                record.outputs = dict(update)
        except NodeError as exc:
            record.error = record.error or exc.message
            raise
        except AgentforgeError as exc:
            record.error = f"{type(exc).__name__}: {exc.message}"
            raise NodeError(f"node '{node.id}' failed: {exc.message}", node=node.id, cause=exc.code) from exc
        except (asyncio.CancelledError, KeyboardInterrupt):
            record.error = "interrupted"  # stopped mid-way: not finished, so it runs again on resume
            raise
        finally:
            record.latency_s = time.perf_counter() - started
            ctx.trace.nodes.append(record)
        if not ctx.checkpointed:
            return update
        # ``fallback``: a value JSON cannot hold must not fail a node that finished; trace.json shows it as text.
        return {**update, TRACE_KEY: [record.model_dump(mode="json", fallback=str)]}

    run_node.__name__ = f"node_{node.id}"
    return run_node


def _route_selector(node_id: str) -> Callable[[dict[str, Any]], str]:
    def select(state: dict[str, Any]) -> str:
        return state[ROUTE_KEY][node_id]

    return select


class CompiledWorkflow:
    """A spec built into a LangGraph ``StateGraph``; ``graph()`` compiles it for a checkpointer."""

    def __init__(self, spec: WorkflowSpec) -> None:
        from langgraph.graph import END as LG_END
        from langgraph.graph import START as LG_START
        from langgraph.graph import StateGraph

        self.spec = spec
        builder = StateGraph(state_schema(spec))
        for node in spec.nodes:
            builder.add_node(node.id, _node_function(spec, node))

        def ref(name: str) -> str:
            return LG_END if name == END else LG_START if name == START else name

        for entry in spec.entries():
            builder.add_edge(LG_START, entry)
        has_out: set[str] = set()
        for edge in spec.edges:
            sources = edge.sources()
            for target in edge.targets():
                if len(sources) > 1:
                    builder.add_edge([ref(s) for s in sources], ref(target))  # join: waits for all
                else:
                    builder.add_edge(ref(sources[0]), ref(target))
            has_out.update(sources)
        for node in spec.nodes:
            branches = node.branches()
            if branches:
                targets = {b.target for b in branches}
                builder.add_conditional_edges(node.id, _route_selector(node.id), {t: ref(t) for t in targets})
            elif node.id not in has_out:
                builder.add_edge(node.id, LG_END)
        self.builder = builder
        self.state_defaults = state_defaults(spec)
        bounds = sum((n.loop_bound() or 0) for n in spec.nodes)
        # LangGraph counts supersteps; every loop pass may touch every node once.
        self.recursion_limit = max(25, len(spec.nodes) * (bounds + 2) + 10)
        self._plain: Any = None

    def graph(self, checkpointer: Any = None) -> Any:
        if self._plain is None:
            self._plain = self.builder.compile()
        if checkpointer is None:
            return self._plain
        # Compiling inspects every node function (ms per node); a copy with a checkpointer is ~free.
        return self._plain.copy(update={"checkpointer": checkpointer})

    def initial_state(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The graph's first state: the state defaults, then the run's inputs (an input wins)."""
        return {**self.state_defaults, **inputs}

    def output_values(self, state: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, type_expr in self.spec.outputs.items():
            if name not in state:  # written means produced, even if the value written is None
                raise OutputError(f"workflow output '{name}' was not produced on the path this run took")
            try:
                out[name] = coerce(state[name], parse_type(type_expr))
            except ValueError as exc:
                raise OutputError(f"workflow output '{name}': {exc}") from None
        return out
