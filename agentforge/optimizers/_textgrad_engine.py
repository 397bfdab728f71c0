"""The ``textgrad`` library, imported quietly, and a textgrad engine that speaks through agentforge's gateway.

Importing ``textgrad`` costs ~6.5 s, imports litellm, and makes ``./logs/<timestamp>.jsonl`` in the current
directory (its ``__init__`` opens a ``logging.FileHandler`` under ``$TEXTGRAD_LOG_DIR``, default ``./logs/``).
``load_textgrad`` imports it once, on first use, with that directory pointed at a private temporary one,
then detaches and closes the handler and deletes the directory: nothing is left in the user's cwd and
textgrad's prompt logs go nowhere (agentforge logs its own events through structlog). A user who set
``TEXTGRAD_LOG_DIR`` asked for those logs, so then the handler is left alone.

textgrad is synchronous. It runs in a worker thread; each model call hops back to the event loop that
owns the gateway (``asyncio.run_coroutine_threadsafe``), so the gateway's cache, retries, cost and
concurrency limits apply and no second event loop is started.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

from agentforge.llm.base import LLMRequest, Message
from agentforge.llm.gateway import Gateway, import_litellm
from agentforge.logs import get_logger
from agentforge.optimizers.base import Allowance

log = get_logger(__name__)

_IMPORT_LOCK = threading.Lock()
_LOG_DIR_VAR = "TEXTGRAD_LOG_DIR"


class Halt(Exception):
    """Raised inside textgrad by the engine when no call may be made (allowance spent, or cancelled);
    the optimizer catches it and returns what it has."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_textgrad() -> ModuleType:
    """The ``textgrad`` module, imported once without writing anything to the current directory."""
    with _IMPORT_LOCK:
        module = sys.modules.get("textgrad")
        if module is not None:
            return module
        import_litellm()  # litellm configured for offline use before textgrad imports it
        if os.environ.get(_LOG_DIR_VAR):
            import textgrad

            return textgrad
        with tempfile.TemporaryDirectory(prefix="agentforge-textgrad-") as scratch:
            os.environ[_LOG_DIR_VAR] = scratch
            try:
                import textgrad
            finally:
                os.environ.pop(_LOG_DIR_VAR, None)
            _silence(logging.getLogger("textgrad"))
        return textgrad


def _silence(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.addHandler(logging.NullHandler())
    # Its records hold whole prompts: no application handler (root or its own) should get them.
    logger.propagate = False
    logger.disabled = True


class OrderedSet(dict[Any, None]):
    """The part of ``set`` textgrad uses (``add``, iteration, ``len``, ``in``), in insertion order.

    textgrad keeps predecessors and gradients in plain sets of objects hashed by ``id``, so the order of
    backward calls and of the feedback in an update prompt changes from process to process; with this,
    the same evidence gives the same prompts, which the gateway's cache can then replay.
    """

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__((item, None) for item in items)

    def add(self, item: Any) -> None:
        self[item] = None

    def discard(self, item: Any) -> None:
        self.pop(item, None)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.keys()))


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, keeping its head and its tail (where answers sit)."""
    if len(text) <= limit:
        return text
    marker = " […] "
    keep = max(0, limit - len(marker))
    head = keep * 2 // 3
    return text[:head] + marker + text[len(text) - (keep - head):]


def _seed(base: int, salt: str, system: str, content: str) -> int:
    digest = hashlib.sha256(f"{base}\x00{salt}\x00{system}\x00{content}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


class _EngineState:
    """The engine's bookkeeping, kept apart from textgrad's ``EngineLM`` class hierarchy."""

    def __init__(self) -> None:
        self.phase = "gradient"
        self.salt = "gradient"
        self.calls = 0
        self.replayed = 0
        self.largest_prompt = 0


def make_engine(tg: ModuleType, *, gateway: Gateway, model: str, loop: asyncio.AbstractEventLoop,
                allowance: Allowance, base_seed: int, temperature: float, max_tokens: dict[str, int],
                reply_chars: dict[str, int | None], stop: threading.Event) -> Any:
    """A textgrad ``EngineLM`` whose calls go through ``gateway`` on ``loop``.

    Each call takes one call from ``allowance`` (``Halt`` when none is left or ``stop`` is set). Its seed
    comes from ``base_seed`` and the prompt, so the order textgrad makes calls in does not change any
    answer, and the request is cached: a resumed run replays it. ``phase`` ("gradient" or "update")
    picks the reply's ``max_tokens`` and clip; a prompt repeated in one phase and ``salt`` within one
    run is answered from memory without a call (textgrad asks again for evidence it has already seen
    when a second candidate reuses a record).
    """

    class GatewayEngine(tg.EngineLM):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.model_string = model
            self.state = _EngineState()
            self._memo: dict[tuple[str, str, str], str] = {}

        def generate(self, content: Any, system_prompt: str | None = None, **_: Any) -> str:
            if not isinstance(content, str):
                raise TypeError("the gateway engine sends text only (got a multimodal prompt)")
            state = self.state
            system = system_prompt or self.system_prompt
            key = (state.salt, system, content)
            if key in self._memo:
                state.replayed += 1
                return self._memo[key]
            if stop.is_set():
                raise Halt("cancelled")
            if not allowance.take():
                raise Halt("allowance")
            state.calls += 1
            state.largest_prompt = max(state.largest_prompt, len(system) + len(content))
            request = LLMRequest(
                model=model, messages=(Message(role="system", content=system), Message(role="user", content=content)),
                temperature=temperature, max_tokens=max_tokens[state.phase],
                seed=_seed(base_seed, state.salt, system, content), cache=True)
            response = asyncio.run_coroutine_threadsafe(gateway.acomplete(request), loop).result()
            text = response.texts[0] if response.texts else ""
            limit = reply_chars.get(state.phase)
            if limit is not None:
                text = clip(text, limit)
            self._memo[key] = text
            return text

        def __call__(self, content: Any, **kwargs: Any) -> str:
            return self.generate(content, **kwargs)

    return GatewayEngine()


@functools.cache
def variable_class(tg: ModuleType) -> type:
    """textgrad's ``Variable`` with ordered predecessors and gradients (see ``OrderedSet``); a parameter
    (``full_view``) shows its whole text where textgrad would show only its first and last ten words."""
    class OrderedVariable(tg.Variable):  # type: ignore[misc,name-defined]
        def __init__(self, value: str, *, role_description: str, requires_grad: bool,
                     predecessors: list[Any] | None = None, full_view: bool = False) -> None:
            super().__init__(value, predecessors=predecessors, requires_grad=requires_grad,
                             role_description=role_description)
            self.predecessors = OrderedSet(predecessors or ())
            self.gradients = OrderedSet()
            self.full_view = full_view

        def get_short_value(self, n_words_offset: int = 10) -> str:
            if self.full_view:
                return str(self.value)
            return str(super().get_short_value(n_words_offset))

    return OrderedVariable
