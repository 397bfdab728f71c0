"""A deterministic scripted model: a test double for fast unit tests, selected as ``scripted/<name>``.

Replies are keyed by regular expressions searched in the request's prompt text. A reply may be a
string, a list of strings (used in turn, the last repeating), a callable taking the request, or
an exception instance to raise. It is never the README demo or an integration test's model.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentforge.errors import LLMError, ModelNotFound
from agentforge.llm.base import LLMRequest, RawCompletion, Usage

Reply = str | Sequence[str] | Callable[[LLMRequest], str] | BaseException


@dataclass
class _Rule:
    pattern: re.Pattern[str]
    reply: Reply
    uses: int = 0


@dataclass
class ScriptedModel:
    """Replies by prompt pattern; ``default`` answers when nothing matches."""

    rules: list[_Rule] = field(default_factory=list)
    default: Reply | None = None
    latency_s: float = 0.0
    calls: list[LLMRequest] = field(default_factory=list)

    def on(self, pattern: str, reply: Reply) -> ScriptedModel:
        self.rules.append(_Rule(re.compile(pattern, re.S), reply))
        return self

    def reply_for(self, request: LLMRequest) -> str:
        text = request.prompt_text()
        for rule in self.rules:
            if rule.pattern.search(text):
                return self._resolve(rule.reply, request, rule)
        if self.default is not None:
            return self._resolve(self.default, request, None)
        raise LLMError(f"scripted model has no reply for prompt: {text[-300:]!r}")

    @staticmethod
    def _resolve(reply: Reply, request: LLMRequest, rule: _Rule | None) -> str:
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            return reply
        if callable(reply):
            return reply(request)
        index = rule.uses if rule is not None else 0
        if rule is not None:
            rule.uses += 1
        return reply[min(index, len(reply) - 1)]

    async def acomplete(self, request: LLMRequest) -> RawCompletion:
        self.calls.append(request)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        texts = tuple(self.reply_for(request) for _ in range(request.n))
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        return RawCompletion(
            texts=texts, usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=sum(len(t.split()) for t in texts))
        )


def _echo(request: LLMRequest) -> str:
    return request.messages[-1].content


_SCRIPTS: dict[str, ScriptedModel] = {}


def register_script(name: str, model: ScriptedModel) -> ScriptedModel:
    """Make ``scripted/<name>`` answer with ``model`` in this process."""
    _SCRIPTS[name] = model
    return model


def unregister_script(name: str) -> None:
    _SCRIPTS.pop(name, None)


def get_script(name: str) -> ScriptedModel:
    if name == "echo" and name not in _SCRIPTS:
        return ScriptedModel(default=_echo)
    try:
        return _SCRIPTS[name]
    except KeyError:
        known = ", ".join(sorted({"echo", *_SCRIPTS}))
        raise ModelNotFound(f"no scripted model named '{name}' is registered (known: {known})") from None
