"""The ``textgrad`` optimizer: TextGrad's textual backpropagation over a workflow's agent nodes.

For each candidate it builds one textgrad computation graph from the parent's traces on the train
minibatch (no node is run again):

- each non-protected agent node's instruction, and its prompt template if it has one, is a parameter
  (a ``Variable`` with ``requires_grad``) shared by every run of that node;
- each run of a node in a trace is a response ``Variable`` computed from the node's parameters and its
  inputs: a task input (a constant) or the response of the node that wrote that state field;
- the loss is the task's outcome in the metric's words, attached to the run the failure blames: the
  node the task's error names, else the node whose output became the final answer. textgrad's chain
  rule then sends feedback backwards, one gradient call per trainable predecessor of every response
  that got feedback, so credit reaches upstream nodes; a node that makes no model call (code, tool,
  router) hands its feedback to its inputs without a call. A multi-turn episode gives one graph per
  step, each with the episode's final outcome.

textgrad's TGD step then rewrites every parameter that received feedback; a new text that is empty,
over ``max_chars``, unchanged, (an instruction) shorter than ``min_words``, echoing a shown task's input,
or (a template) losing a placeholder is rejected, and the rest become ``SetComponent`` edits on a new
version of the parent.

The context is bounded whatever the evidence's size: at most ``max_records`` trace steps per candidate
(failures first, a different rng sample for each candidate), every text clipped to ``clip_chars``, and
the feedback in one update prompt kept under ``max_prompt_chars``. Records are chosen so that their
planned calls fit the allowance; the engine enforces it call by call as well. What happened is kept in
``last_run`` (a ``TextGradRun``).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentforge.errors import InputError, SpecError
from agentforge.evaluation.report import TaskResult
from agentforge.llm.gateway import Gateway
from agentforge.logs import get_logger
from agentforge.optimizers._textgrad_engine import (
    Halt,
    OrderedSet,
    clip,
    load_textgrad,
    make_engine,
    variable_class,
)
from agentforge.optimizers.base import SUCCESS, Allowance, Evidence
from agentforge.runtime.trace import NodeTrace, Trace
from agentforge.workflow.edits import Change, SetComponent
from agentforge.workflow.nodes import AgentNode
from agentforge.workflow.prompt import TemplateError, default_prompt, render, show_value, template_variables
from agentforge.workflow.spec import Candidate, WorkflowSpec

log = get_logger(__name__)

NO_COPY = ("State general rules that help on any task of this kind. Do not copy a specific question, answer, "
           "name or number from the examples into the text.")
KEEP_PLACEHOLDERS = "Keep every {placeholder} of the template exactly as written."
_TEMPLATE_OVERHEAD = 400  # characters textgrad wraps around each piece of feedback in an update prompt
_WORD = re.compile(r"\w+")


class TextGradConfig(BaseModel):
    """The ``textgrad`` optimizer's settings (its preset is ``optimizers/textgrad.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidates: int = Field(default=2, ge=1, le=8, description="Candidates to propose, each from its own sample.")
    max_records: int = Field(default=6, ge=1, le=64, description="Trace steps (records) per candidate at most.")
    clip_chars: int = Field(default=600, ge=100, le=20_000,
                            description="Every text shown to the model (inputs, outputs, feedback) is cut to this.")
    max_chars: int = Field(default=2000, ge=20, description="The longest new instruction or template accepted.")
    min_words: int = Field(default=3, ge=1, description="A new text with fewer words is refused (a bare answer).")
    echo_ngram: int = Field(default=6, ge=3, description="A new text sharing this many consecutive words with a "
                                                         "record's task input is refused (it echoes the task).")
    max_prompt_chars: int = Field(default=9000, ge=1000,
                                  description="The feedback context of one update prompt at most.")
    optimize_prompts: bool = Field(default=True, description="Rewrite prompt templates as well as instructions.")
    include_successes: bool = Field(default=True, description="Fill spare record slots with solved tasks.")
    temperature: float = Field(default=0.7, ge=0, le=2)
    gradient_max_tokens: int = Field(default=300, ge=16)
    update_max_tokens: int = Field(default=700, ge=16)
    constraints: tuple[str, ...] = Field(default=(NO_COPY,), description="Told to TGD on every update.")


@dataclass
class TextGradRun:
    """What one ``apropose`` did: calls, records, feedback, and why texts or candidates were dropped."""

    calls: int = 0
    replayed: int = 0  # prompts asked again in this run, answered without a call
    records: list[list[str]] = field(default_factory=list)  # per candidate: "task_id#step" of each record
    gradients: int = 0
    malformed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    spec_errors: int = 0
    candidates: int = 0
    largest_prompt: int = 0
    stopped: str | None = None  # "allowance" or "cancelled" when calls ran out before the work was done
    reason: str | None = None  # why no candidate, when there is none


@dataclass(frozen=True)
class _Param:
    name: str  # the component, e.g. "solve.instruction"
    node: str
    field: Literal["instruction", "prompt"]
    value: str


@dataclass(frozen=True)
class _Unit:
    """One record: one step (one workflow run) of one task."""

    result: TaskResult
    step: int

    @property
    def key(self) -> str:
        return f"{self.result.task_id}#{self.step}"

    @property
    def trace(self) -> Trace:
        return self.result.traces[self.step]


def failed(result: TaskResult) -> bool:
    return result.score < SUCCESS or result.failure is not None


@dataclass
class _Meta:
    kind: Literal["agent", "pass"]
    size: int  # characters of the conversation textgrad shows with this response's feedback


@dataclass
class _Plan:
    calls: int = 0
    reached: OrderedSet = field(default_factory=OrderedSet)  # parameters that will get feedback
    context: Counter[int] = field(default_factory=Counter)  # id(parameter) -> planned feedback characters


class _Graph:
    """The textgrad graph of one candidate: shared parameters, and the records added to it."""

    def __init__(self, tg: ModuleType, engine: Any, parent: WorkflowSpec, params: Sequence[_Param],
                 config: TextGradConfig) -> None:
        self.tg = tg
        self.var = variable_class(tg)
        self.llm_call = tg.autograd.LLMCall(engine)  # its backward is textgrad's chain rule
        self.parent = parent
        self.config = config
        self.nodes = {n.id: n for n in parent.nodes}
        self.params: dict[str, Any] = {p.name: self.var(p.value, role_description=_param_role(p, self.nodes[p.node]),
                                                        requires_grad=True, full_view=True) for p in params}
        self._param_ids = {id(v) for v in self.params.values()}
        self.meta: dict[int, _Meta] = {}
        self.losses: list[Any] = []

    # -- one record ------------------------------------------------------------------------------
    def record(self, unit: _Unit) -> tuple[Any, Any] | None:
        """(loss, blamed response) for ``unit``, or None if the trace shows no node."""
        state: dict[str, Any] = {}
        runs: list[tuple[NodeTrace, Any, list[tuple[str, Any]]]] = []
        for nt in unit.trace.nodes:
            inputs = [(key, state[key] if key in state else self._constant(key, value))
                      for key, value in nt.inputs.items()]
            node = self.nodes.get(nt.node)
            response = (self._agent(node, nt, inputs) if isinstance(node, AgentNode)
                        else self._passthrough(nt, node.kind if node is not None else "unknown", inputs))
            for key in nt.outputs:
                state[key] = response
            runs.append((nt, response, inputs))
        if not runs:
            return None
        target = self._blame(unit, runs)
        self._name_roles(runs, target)
        text = self._outcome(unit)
        loss = self.var(text, role_description="evaluation of the workflow's final answer on one task",
                        requires_grad=True, predecessors=[target])
        loss.set_grad_fn(partial(_attach, self.var, target, text))
        return loss, target

    def _constant(self, key: str, value: Any) -> Any:
        return self.var(clip(show_value(value), self.config.clip_chars), role_description=f"input '{key}' of the task",
                        requires_grad=False)

    def _agent(self, node: AgentNode, nt: NodeTrace, inputs: list[tuple[str, Any]]) -> Any:
        limit = self.config.clip_chars
        instruction = self.params.get(f"{node.id}.instruction") or self.var(
            node.instruction, role_description=f"instruction of the '{node.id}' step", requires_grad=False)
        predecessors = [instruction]
        template = self.params.get(f"{node.id}.prompt")
        if template is not None:
            predecessors.append(template)
        predecessors += [v for _, v in inputs]
        system, user = _conversation(node, nt)
        system, user = clip(system, limit), clip(user, limit)
        value = clip(_show_run(nt), limit)
        trainable = any(p.requires_grad for p in predecessors)
        response = self.var(value, role_description=f"output of the '{node.id}' step", requires_grad=trainable,
                            predecessors=predecessors)
        if trainable:
            response.set_grad_fn(self.tg.autograd.function.BackwardContext(
                backward_fn=self.llm_call.backward, response=response, prompt=user, system_prompt=system))
        self.meta[id(response)] = _Meta("agent", len(system) + len(user) + len(value))
        return response

    def _passthrough(self, nt: NodeTrace, kind: str, inputs: list[tuple[str, Any]]) -> Any:
        value = clip(_show_run(nt), self.config.clip_chars)
        predecessors = list(dict.fromkeys(v for _, v in inputs))
        trainable = any(p.requires_grad for p in predecessors)
        response = self.var(value, role_description=f"result of the {kind} step '{nt.node}'", requires_grad=trainable,
                            predecessors=predecessors)
        if trainable:
            response.set_grad_fn(partial(_pass_back, self.var, response, nt.node, kind, inputs))
        self.meta[id(response)] = _Meta("pass", 0)
        return response

    def _blame(self, unit: _Unit, runs: list[tuple[NodeTrace, Any, list[tuple[str, Any]]]]) -> Any:
        """The run the outcome blames: the node a failure names (in the episode's last step), else the
        last node that wrote a workflow output, else the last node that ran."""
        failure = unit.result.failure
        if failure is not None and failure.node and unit.step == len(unit.result.traces) - 1:
            for nt, response, _ in reversed(runs):
                if nt.node == failure.node:
                    return response
        final = set(unit.trace.outputs) or set(self.parent.outputs)
        for nt, response, _ in reversed(runs):
            if final & set(nt.outputs):
                return response
        return runs[-1][1]

    @staticmethod
    def _name_roles(runs: list[tuple[NodeTrace, Any, list[tuple[str, Any]]]], target: Any) -> None:
        users: dict[int, list[str]] = {}
        for nt, _, inputs in runs:
            for key, var in inputs:
                users.setdefault(id(var), []).append(f"'{nt.node}' (as '{key}')")
        for _, response, _ in runs:
            role = response.get_role_description()
            if id(response) in users:
                role += ", passed on to " + ", ".join(dict.fromkeys(users[id(response)]))
            if response is target:
                role += ", judged as the workflow's final answer"
            response.set_role_description(role)

    def _outcome(self, unit: _Unit) -> str:
        result = unit.result
        said = result.feedback or (result.failure.text if result.failure is not None else None)
        parts = []
        if len(result.traces) > 1:
            parts.append(f"This was step {unit.step + 1} of {len(result.traces)} of a multi-turn episode; "
                         "the episode as a whole ended as follows.")
        parts.append(f"The task was {'failed' if failed(result) else 'solved'} (score {result.score:.2f} of 1).")
        if said:
            parts.append(f"The evaluation said: {said}")
        if result.failure is not None and result.failure.node:
            parts.append(f"The error arose in the '{result.failure.node}' step.")
        return clip(" ".join(parts), self.config.clip_chars)

    # -- planning -------------------------------------------------------------------------------
    def cost(self, target: Any) -> _Plan:
        """The gradient calls a loss on ``target`` will need, the parameters its feedback reaches and the
        feedback characters each of them will hold (an upper bound: empty feedback stops early)."""
        plan = _Plan()
        stack, seen = [target], set()
        while stack:
            var = stack.pop()
            if id(var) in seen:
                continue
            seen.add(id(var))
            if id(var) in self._param_ids:
                plan.reached.add(var)
                continue
            if not var.requires_grad:
                continue
            trainable = [p for p in var.predecessors if p.requires_grad]
            meta = self.meta[id(var)]
            if meta.kind == "agent":
                plan.calls += len(trainable)
                for p in trainable:
                    if id(p) in self._param_ids:
                        plan.context[id(p)] += meta.size + self.config.clip_chars + _TEMPLATE_OVERHEAD
            stack.extend(trainable)
        return plan

    # -- backward -------------------------------------------------------------------------------
    def backward(self, engine: Any) -> None:
        """textgrad's backward pass over every loss at once, in a fixed topological order."""
        order: list[Any] = []
        visited: set[int] = set()
        for loss in self.losses:
            stack: list[tuple[Any, bool]] = [(loss, False)]
            while stack:
                var, expanded = stack.pop()
                if expanded:
                    order.append(var)
                    continue
                if id(var) in visited:
                    continue
                visited.add(id(var))
                stack.append((var, True))
                stack.extend((p, False) for p in reversed(list(var.predecessors)))
        losses = {id(v) for v in self.losses}
        for var in reversed(order):
            if not var.requires_grad or var.get_grad_fn() is None:
                continue
            if id(var) in losses or var.get_gradient_text().strip():
                var.grad_fn(backward_engine=engine)

    def trim(self, param: Any) -> None:
        """Drop empty feedback, then the latest feedback until the update prompt's context fits."""
        context_text = self.tg.optimizer.optimizer.get_gradient_and_context_text
        for g in list(param.gradients):
            if not str(g.value).strip():
                param.gradients.discard(g)
        while len(param.gradients) > 1 and len(context_text(param)) > self.config.max_prompt_chars:
            param.gradients.discard(list(param.gradients)[-1])


def _attach(var: type, target: Any, text: str, backward_engine: Any) -> None:
    """The loss's backward: the outcome's words are the feedback on the blamed response."""
    target.gradients.add(var(text, role_description=f"feedback to {target.get_role_description()}",
                             requires_grad=False))


def _pass_back(var: type, response: Any, node: str, kind: str, inputs: list[tuple[str, Any]],
               backward_engine: Any) -> None:
    """Backward through a step that makes no model call: its feedback goes to its inputs as it is."""
    feedback = response.get_gradient_text()
    for key, source in inputs:
        if source.requires_grad:
            text = (f"This text went into the {kind} step '{node}' as '{key}'. That step produced: "
                    f"{response.get_value()}\nThe feedback on what it produced: {feedback}")
            source.gradients.add(var(text, role_description=f"feedback to {source.get_role_description()}",
                                     requires_grad=False))


def _param_role(param: _Param, node: Any) -> str:
    about = f" ({clip(node.description, 160)})" if node.description else ""
    if param.field == "instruction":
        return (f"instruction (system prompt) of the '{param.node}' step{about} of a workflow; "
                "it is reused for every task")
    names = ", ".join("{" + n + "}" for n in _placeholders(param.value))
    return (f"prompt template of the '{param.node}' step{about} of a workflow, filled in for every task; "
            f"its placeholders {names} must be kept")


def _placeholders(template: str) -> list[str]:
    try:
        return template_variables(template)
    except TemplateError:
        return []


def _conversation(node: AgentNode, nt: NodeTrace) -> tuple[str, str]:
    """The system and user text of the node's (first) model call, as the trace recorded it."""
    if nt.llm_calls:
        messages = nt.llm_calls[0].messages
        system = next((m["content"] for m in messages if m.get("role") == "system"), node.instruction)
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        return system, user
    try:
        user = render(node.prompt if node.prompt is not None else default_prompt(node.input_names()), nt.inputs)
    except (KeyError, TemplateError):
        user = json.dumps(nt.inputs, ensure_ascii=False, default=str)
    return node.instruction, user


def _show_run(nt: NodeTrace) -> str:
    if len(nt.outputs) == 1:
        shown = show_value(next(iter(nt.outputs.values())))
    else:
        shown = json.dumps(nt.outputs, ensure_ascii=False, default=str) if nt.outputs else ""
    if nt.error:
        return f"(this step failed: {nt.error}) {shown}".strip()
    return shown


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = [w.casefold() for w in _WORD.findall(text)]
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _round_robin(groups: list[list[_Unit]]) -> list[_Unit]:
    out: list[_Unit] = []
    depth = max((len(g) for g in groups), default=0)
    for i in range(depth):
        out.extend(g[i] for g in groups if i < len(g))
    return out


class TextGradOptimizer:
    """Rewrites agent instructions and prompt templates by TextGrad's textual gradient descent."""

    name: ClassVar[str] = "textgrad"
    calls_per_proposal: ClassVar[int] = 12  # a backward pass and an update for a few records

    def __init__(self, *, gateway: Gateway, model: str, rng: random.Random, **config: Any) -> None:
        try:
            self.config = TextGradConfig(**config)
        except ValidationError as exc:
            raise InputError(f"textgrad optimizer: {exc}") from None
        self.gateway = gateway
        self.model = model
        self.rng = rng
        self.last_run = TextGradRun()

    # -- the contract ---------------------------------------------------------------------------
    async def apropose(self, parent: WorkflowSpec, evidence: Evidence, allowance: Allowance) -> list[Candidate]:
        run = self.last_run = TextGradRun()
        params = self._parameters(parent)
        samples = self._samples(evidence)
        base_seed = self.rng.randrange(2**31)
        if not params:
            run.reason = "no agent node the optimizer may edit"
        elif not samples[0]:
            run.reason = "the evidence holds no trace"
        elif allowance.left < 2:
            run.reason = "the allowance cannot pay for one gradient and one update"
        if run.reason:
            log.info("textgrad.nothing_to_do", reason=run.reason)
            return []
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self._propose, parent, params, samples, base_seed, allowance, loop, stop,
                                           run)
        except asyncio.CancelledError:
            stop.set()  # the worker makes no further call
            raise

    # -- evidence --------------------------------------------------------------------------------
    def _parameters(self, parent: WorkflowSpec) -> list[_Param]:
        params: list[_Param] = []
        for node in parent.nodes:
            if not isinstance(node, AgentNode) or node.protected:
                continue
            params.append(_Param(f"{node.id}.instruction", node.id, "instruction", node.instruction))
            if self.config.optimize_prompts and node.prompt is not None:
                params.append(_Param(f"{node.id}.prompt", node.id, "prompt", node.prompt))
        return params

    def _samples(self, evidence: Evidence) -> list[list[_Unit]]:
        """One ordered list of records per candidate: failed tasks first (the last steps of failed episodes
        first, episodes taken in turn), in a different rng order each time."""
        bad: list[list[_Unit]] = []
        good: list[list[_Unit]] = []
        for result in evidence.results:
            steps = [_Unit(result, i) for i in reversed(range(len(result.traces)))]
            if steps:
                (bad if failed(result) else good).append(steps)
        samples = []
        for _ in range(self.config.candidates):
            first = list(bad)
            then = list(good) if self.config.include_successes else []
            self.rng.shuffle(first)
            self.rng.shuffle(then)
            samples.append(_round_robin(first) + _round_robin(then))
        return samples

    # -- the work, in a worker thread -----------------------------------------------------------
    def _propose(self, parent: WorkflowSpec, params: list[_Param], samples: list[list[_Unit]], base_seed: int,
                 allowance: Allowance, loop: asyncio.AbstractEventLoop, stop: threading.Event,
                 run: TextGradRun) -> list[Candidate]:
        tg = load_textgrad()
        cfg = self.config
        engine = make_engine(tg, gateway=self.gateway, model=self.model, loop=loop, allowance=allowance,
                             base_seed=base_seed, temperature=cfg.temperature,
                             max_tokens={"gradient": cfg.gradient_max_tokens, "update": cfg.update_max_tokens},
                             reply_chars={"gradient": cfg.clip_chars, "update": None}, stop=stop)
        done: set[str] = set()
        seen = {parent.hash}
        out: list[Candidate] = []
        try:
            for k, sample in enumerate(samples):
                candidate = self._candidate(tg, engine, parent, params, sample, k, allowance, done, run)
                if candidate is None:
                    continue
                if candidate.spec.hash in seen:
                    run.rejected["duplicate"] += 1
                    continue
                seen.add(candidate.spec.hash)
                out.append(candidate)
        except Halt as halt:
            run.stopped = halt.reason
        finally:
            run.calls, run.replayed, run.largest_prompt = (engine.state.calls, engine.state.replayed,
                                                           engine.state.largest_prompt)
        run.candidates = len(out)
        if not out and run.reason is None:
            run.reason = self._why_none(run)
        log.info("textgrad.proposed", candidates=len(out), calls=run.calls, replayed=run.replayed,
                 gradients=run.gradients, malformed=run.malformed, rejected=dict(run.rejected),
                 spec_errors=run.spec_errors, stopped=run.stopped, reason=run.reason)
        return out

    @staticmethod
    def _why_none(run: TextGradRun) -> str:
        if run.stopped:
            return f"calls ran out ({run.stopped}) before an update"
        if not any(run.records):
            return "no record fits the allowance"
        if run.gradients == 0:
            return "the model gave no feedback"
        return "every new text was rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(run.rejected.items()))

    def _candidate(self, tg: ModuleType, engine: Any, parent: WorkflowSpec, params: list[_Param],
                   sample: list[_Unit], k: int, allowance: Allowance, done: set[str],
                   run: TextGradRun) -> Candidate | None:
        cfg = self.config
        graph = _Graph(tg, engine, parent, params, cfg)
        plan = _Plan()
        chosen: list[_Unit] = []
        for unit in sample:
            if len(chosen) >= cfg.max_records:
                break
            built = graph.record(unit)
            if built is None:
                continue
            loss, target = built
            cost = graph.cost(target)
            if not cost.reached:
                continue  # its feedback reaches no parameter (e.g. only protected nodes ran)
            calls = 0 if unit.key in done else cost.calls  # asked before in this run: answered from memory
            reached = OrderedSet([*plan.reached, *cost.reached])
            if plan.calls + calls + len(reached) > allowance.left:
                continue
            if any(plan.context[p] and plan.context[p] + n > cfg.max_prompt_chars for p, n in cost.context.items()):
                continue
            graph.losses.append(loss)
            plan.calls += calls
            plan.reached = reached
            plan.context.update(cost.context)
            chosen.append(unit)
        run.records.append([u.key for u in chosen])
        if not chosen:
            return None
        echoes = set().union(*(_ngrams(show_value(v), cfg.echo_ngram) for u in chosen
                               for v in u.result.inputs.values()))
        engine.state.phase = engine.state.salt = "gradient"
        graph.backward(engine)
        done.update(u.key for u in chosen)
        engine.state.phase, engine.state.salt = "update", f"update:{k}"
        texts: dict[str, str] = {}
        feedback: dict[str, str] = {}
        halted: Halt | None = None
        for param in params:
            var = graph.params[param.name]
            graph.trim(var)
            if not var.gradients:
                continue
            run.gradients += len(var.gradients)
            feedback[param.name] = var.get_gradient_text()
            try:
                tg.TGD(parameters=[var], engine=engine, constraints=self._constraints(param)).step()
            except IndexError:  # the reply had no <IMPROVED_VARIABLE> tags
                self._reject(param, "untagged", run, allowance)
                continue
            except Halt as halt:
                halted = halt
                break
            new = str(var.get_value()).strip()
            reason = self._check(param, new, echoes)
            if reason:
                self._reject(param, reason, run, allowance)
            else:
                texts[param.name] = new
        candidate = self._apply(parent, texts, feedback, run) if texts else None
        if halted is not None:
            if candidate is not None:
                run.stopped = halted.reason
                return candidate
            raise halted
        return candidate

    def _constraints(self, param: _Param) -> list[str]:
        extra = [KEEP_PLACEHOLDERS] if param.field == "prompt" else []
        return [*self.config.constraints, *extra, f"The text must be at most {self.config.max_chars} characters."]

    def _check(self, param: _Param, new: str, echoes: set[tuple[str, ...]]) -> str | None:
        if not new:
            return "empty"
        if len(new) > self.config.max_chars:
            return "too_long"
        if new == param.value.strip():
            return "unchanged"
        if param.field == "instruction" and len(_WORD.findall(new)) < self.config.min_words:
            return "too_short"
        if _ngrams(new, self.config.echo_ngram) & echoes:
            return "echo"
        if param.field == "prompt":
            try:
                names = template_variables(new)
            except TemplateError:
                return "bad_template"
            if set(_placeholders(param.value)) - set(names):
                return "lost_placeholders"
        return None

    @staticmethod
    def _reject(param: _Param, reason: str, run: TextGradRun, allowance: Allowance) -> None:
        run.rejected[reason] += 1
        if reason in ("untagged", "empty"):  # the reply did not hold a usable text: malformed
            run.malformed += 1
            allowance.malformed += 1
        log.info("textgrad.rejected_text", component=param.name, reason=reason)

    def _apply(self, parent: WorkflowSpec, texts: dict[str, str], feedback: dict[str, str],
               run: TextGradRun) -> Candidate | None:
        """A candidate with every new text that applies; a text the spec refuses is dropped (counted)."""
        good: list[SetComponent] = []
        for name, text in texts.items():
            edit = SetComponent(name=name, value=text)
            try:
                parent.apply([edit])
            except SpecError as exc:
                run.spec_errors += 1
                log.info("textgrad.spec_error", component=name, error=str(exc)[:300])
                continue
            good.append(edit)
        while good:
            names = [e.name for e in good]
            change = Change(author="textgrad", summary=f"textgrad rewrote {', '.join(names)}",
                            rationale="\n".join(f"{n}: {clip(feedback[n], 400)}" for n in names))
            try:
                return Candidate.of(parent.apply(good, change))
            except SpecError as exc:  # each applies alone, together they do not: keep fewer
                run.spec_errors += 1
                log.info("textgrad.spec_error", components=names, error=str(exc)[:300])
                good = good[:-1]
        return None
