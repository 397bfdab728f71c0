"""The dspy side of the ``mipro`` optimizer: everything here imports dspy, so ``mipro`` imports this lazily.

- ``Bridge``: dspy runs synchronously in worker threads; every model call and every trial run it makes
  is sent back to the event loop ``apropose`` awaits on, so the gateway (its cache, its limits, the local
  model's scheduler) is the one it always is. ``Unwind`` is how a thread stops dspy: a ``BaseException``,
  so none of dspy's or optuna's ``except Exception`` clauses swallow it.
- ``GatewayEngine``: a dspy LM engine (dspy 3.4's ``complete(Request) -> Response`` contract) that sends
  each call through the gateway, cached and seeded, one allowance call each, with the reply's JSON
  schema passed on for constrained decoding.
- ``CountingAdapter``: dspy's JSON adapter, except that a reply it cannot parse is counted as malformed
  and salvaged instead of raised (dspy would otherwise end MIPRO's instruction proposal on it).
- ``WorkflowProgram``: the workflow as a dspy program, one ``dspy.Predict`` per optimised agent node;
  see ``agentforge.optimizers.mipro`` for why its ``forward`` runs the real workflow.
- ``muted``: dspy prints progress bars and lines; inside a run they go to the debug log instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import dspy
from dspy.adapters.json_adapter import JSONAdapter
from dspy.lm15 import Message as DMessage
from dspy.lm15 import Response, TextPart, Usage, response_to_events
from dspy.utils.exceptions import AdapterParseError

from agentforge.llm.base import LLMRequest, Message
from agentforge.llm.gateway import Gateway
from agentforge.logs import get_logger
from agentforge.workflow.types import FieldType

log = get_logger(__name__)
T = TypeVar("T")


# -- threads to the event loop -------------------------------------------------------------------
class Unwind(BaseException):
    """Stops a dspy run from inside: the allowance is spent, or ``Bridge.failure`` holds a real error."""


class Spent(Exception):
    """Raised on the event loop when the allowance has no call left; a dspy thread turns it into ``Unwind``."""


class Bridge:
    """Runs coroutines on ``loop`` from dspy's threads and remembers why a run had to stop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.halted = False
        self.spent = False
        self.failure: BaseException | None = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it; raise ``Unwind`` once the run must stop."""
        if self.halted:
            coro.close()
            raise Unwind
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result()
        except Spent:
            self.spent = self.halted = True
            raise Unwind from None
        except Exception as exc:  # systemic (the evaluator never raises for a task): re-raised by apropose
            if self.failure is None:
                self.failure = exc
            self.halted = True
            raise Unwind from None

    def soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop, in order with everything else sent there (bookkeeping on the allowance)."""
        self.loop.call_soon_threadsafe(fn)

    def halt(self) -> None:
        self.halted = True


# -- the LM ------------------------------------------------------------------------------------
LM_LABEL = "agentforge-gateway"  # what dspy calls the model (see make_lm)


class GatewayEngine:
    """dspy's engine contract over agentforge's gateway: ``complete(Request) -> Response``, synchronous.

    Each call claims one call of ``take`` (False: spent, the run unwinds) and goes to the gateway cached,
    with a seed derived from ``seed``, the prompt and how often that prompt was asked before, so that a
    repeated or resumed run replays every call from the cache whatever order threads ask in.
    """

    supports_response_schema = True
    supports_function_calling = False
    supports_reasoning = False
    supported_params = frozenset({"temperature", "max_tokens", "top_p", "stop", "seed", "response_format"})

    def __init__(self, bridge: Bridge, gateway: Gateway, model: str, *, take: Callable[[], bool], seed: int,
                 temperature: float, max_tokens: int) -> None:
        self.bridge = bridge
        self.gateway = gateway
        self.model = model
        self.take = take
        self.seed = seed
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.calls = 0
        self._asked: dict[str, int] = {}
        self._lock = threading.Lock()

    def complete(self, request: Any) -> Any:
        llm_request = self.translate(request)
        response = self.bridge.call(self._ask(llm_request))
        return Response(id=None, model=LM_LABEL, message=DMessage.assistant([TextPart(response.text)]),
                        finish_reason="stop",
                        usage=Usage(input_tokens=response.usage.prompt_tokens,
                                    output_tokens=response.usage.completion_tokens))

    async def _ask(self, request: LLMRequest) -> Any:
        if not self.take():
            raise Spent
        self.calls += 1
        return await self.gateway.acomplete(request)

    def translate(self, request: Any) -> LLMRequest:
        """The gateway request for a dspy request: messages, sampling, the reply's JSON schema, a seed."""
        messages: list[Message] = []
        system = request.system if isinstance(request.system, str) else "".join(
            getattr(p, "text", "") or "" for p in request.system or ())
        if system:
            messages.append(Message(role="system", content=system))
        for message in request.messages:
            role = message.role if message.role in ("user", "assistant") else "user"
            messages.append(Message(role=role, content=message.text or ""))
        config = request.config
        temperature = config.temperature if config.temperature is not None else self.temperature
        key = hashlib.sha256(json.dumps([m.model_dump() for m in messages], sort_keys=True).encode()).hexdigest()
        with self._lock:  # the n-th asking of one prompt gets the n-th seed, in any thread order
            nth = self._asked.get(key, 0)
            self._asked[key] = nth + 1
        seed = int.from_bytes(hashlib.sha256(f"{self.seed}:{key}:{nth}".encode()).digest()[:4], "big") >> 1
        return LLMRequest(model=self.model, messages=tuple(messages), temperature=temperature,
                          max_tokens=min(config.max_tokens or self.max_tokens, self.max_tokens),
                          top_p=config.top_p, stop=tuple(config.stop) or None, seed=seed,
                          response_schema=_schema_of(config.response_format), cache=True)

    def stream(self, request: Any) -> Iterator[Any]:
        return iter(response_to_events(self.complete(request)))

    def close(self) -> None:
        return None


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":  # lm15's canonical form, or OpenAI's nested one
        schema = response_format.get("schema", (response_format.get("json_schema") or {}).get("schema"))
        return dict(schema) if isinstance(schema, dict) else None
    if response_format.get("type") == "json_object":
        return {"type": "object"}
    return None


def make_lm(engine: GatewayEngine) -> Any:
    """A ``dspy.LM`` over ``engine``: dspy's own cache and retries off (the gateway has both).

    dspy sees a fixed label, not the model's name: it would apply its own rules to a name it recognises
    (an OpenAI reasoning model's name makes it refuse any max_tokens under 16000)."""
    return dspy.LM(model=LM_LABEL, engine=engine, cache=False, num_retries=0)


class CountingAdapter(JSONAdapter):
    """dspy's JSON adapter (the reply's schema reaches the gateway for constrained decoding), except that a
    reply it cannot parse is counted with ``on_malformed`` and salvaged: fields it did parse are kept, a
    lone missing text field takes the reply's text, any other missing field is empty."""

    def __init__(self, on_malformed: Callable[[], None]) -> None:
        super().__init__(use_native_function_calling=False)
        self._on_malformed = on_malformed

    def __call__(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any, demos: list[dict[str, Any]],
                 inputs: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            self._on_malformed()
            log.info("mipro.malformed_reply", signature=getattr(signature, "__name__", "?"),
                     reply=str(exc.lm_response)[:200])
            return [salvage(signature, str(exc.lm_response or ""), exc.parsed_result)]


def salvage(signature: Any, text: str, parsed: Any) -> dict[str, Any]:
    values = dict(parsed) if isinstance(parsed, dict) else {}
    missing = [name for name in signature.output_fields if name not in values]
    loose = _loose_text(text)
    for name in missing:
        annotation = signature.output_fields[name].annotation
        values[name] = loose if annotation is str and len(missing) == 1 else ("" if annotation is str else None)
    return values


def _loose_text(text: str) -> str:
    """The reply as plain text: a JSON object's only string value (a JSON string as is, other JSON: nothing),
    else the text without field markers."""
    try:
        data = json.loads(text)
    except ValueError:
        pass
    else:
        if isinstance(data, dict):
            strings = [v for v in data.values() if isinstance(v, str)]
            return strings[0].strip() if len(strings) == 1 else ""
        return data.strip() if isinstance(data, str) else ""
    lines = [line for line in text.splitlines() if not line.strip().startswith("[[ ##")]
    return "\n".join(lines).strip()


# -- the program -------------------------------------------------------------------------------
_PY_TYPES: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict,
                             "any": Any}


def python_type(ftype: FieldType) -> Any:
    """The Python annotation a dspy field gets for an agentforge field type."""
    if ftype.base == "list" and ftype.name.startswith("list["):
        item = _PY_TYPES.get(ftype.name[5:-1], Any)
        return list[item]  # type: ignore[valid-type]
    if ftype.base == "object":
        kind = ftype.schema.get("type")
        return {"string": str, "integer": int, "number": float, "boolean": bool, "array": list,
                "object": dict}.get(kind, Any) if isinstance(kind, str) else Any
    return _PY_TYPES.get(ftype.base, Any)


def make_signature(name: str, inputs: Sequence[tuple[str, FieldType]], outputs: Sequence[tuple[str, FieldType]],
                   instruction: str) -> Any:
    """A ``dspy.Signature`` with the node's typed input and output fields and its instruction."""
    fields: dict[str, Any] = {}
    for field, ftype in inputs:
        fields[field] = (python_type(ftype), dspy.InputField())
    for field, ftype in outputs:
        fields[field] = (python_type(ftype), dspy.OutputField())
    from dspy.signatures.signature import make_signature as dspy_signature

    return dspy_signature(fields, instruction or None, signature_name=f"{name}_signature")


class WorkflowProgram(dspy.Module):
    """One ``dspy.Predict`` per optimised node (``nodes``, by node id); ``forward`` hands the predictors to
    ``run``, which runs the real workflow with their instructions and demos and returns the task's score
    and each node's (inputs, outputs) records; those records go onto dspy's trace, as if each predictor
    had made that call, so that dspy's demo bootstrapping sees real traces."""

    def __init__(self, nodes: dict[str, Any], run: Callable[[dict[str, Any], str], tuple[float, dict[str, list[
            tuple[dict[str, Any], dict[str, Any]]]]]]) -> None:
        super().__init__()
        self.nodes = nodes
        self.run = _Shared(run)

    def forward(self, task_id: str, **_: Any) -> Any:
        score, records = self.run.fn(self.nodes, task_id)
        trace = dspy.settings.trace
        if trace is not None:
            for node_id, runs in records.items():
                for inputs, outputs in runs:
                    trace.append((self.nodes[node_id], dict(inputs), dspy.Prediction(**outputs)))
        return dspy.Prediction(score=score)


class _Shared:
    """Holds a callable that deep copies of a program share (dspy deep-copies programs for each trial)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


# -- quiet output --------------------------------------------------------------------------------
_MUTED: ContextVar[bool] = ContextVar("agentforge_dspy_muted", default=False)
_MUTE_LOCK = threading.Lock()
_mute_depth = 0


class _Filtered:
    """A stand-in for stdout/stderr that drops what a muted thread writes (to the debug log)."""

    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def write(self, text: str) -> int:
        if _MUTED.get():
            line = text.strip()
            if line and "\r" not in text:
                log.debug("mipro.dspy_output", stream=self._name, text=line[:300])
            return len(text)
        return int(self._inner.write(text))

    def flush(self) -> None:
        if not _MUTED.get():
            self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def muted() -> Iterator[None]:
    """While inside, what this thread (and only this thread) writes to stdout or stderr is not shown."""
    global _mute_depth
    with _MUTE_LOCK:
        if _mute_depth == 0:
            sys.stdout = _Filtered(sys.stdout, "stdout")  # type: ignore[assignment]
            sys.stderr = _Filtered(sys.stderr, "stderr")  # type: ignore[assignment]
        _mute_depth += 1
    token = _MUTED.set(True)
    try:
        yield
    finally:
        _MUTED.reset(token)
        with _MUTE_LOCK:
            _mute_depth -= 1
            if _mute_depth == 0:
                for name in ("stdout", "stderr"):
                    current = getattr(sys, name)
                    if isinstance(current, _Filtered):  # someone else replaced it meanwhile: leave theirs
                        setattr(sys, name, current._inner)


def require_optuna() -> None:
    """MIPROv2's Bayesian search needs optuna, which dspy leaves optional: say so before any call is spent."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        from agentforge.errors import ConfigError

        raise ConfigError("the mipro optimizer needs the 'optuna' package (DSPy's MIPROv2 searches with it): "
                          "pip install optuna")


def disable_dspy_cache() -> None:
    """Keep dspy from building its default disk cache (``~/.dspy_cache``): the gateway's is the one cache.

    dspy builds that cache lazily on first use; configuring it first, with both tiers off, means it never
    exists. A cache some caller configured already is left alone (our LM never reads it: ``cache=False``).
    """
    if "cache" not in vars(dspy):
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
