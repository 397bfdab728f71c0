"""Action adapters: how a workflow's output becomes the action string an environment server expects.

AgentGym's clients parse the model's reply in a ReAct style ("Thought: ... Action: ...") and each
environment does it a little differently (see AGENTGYM.md). An adapter is a pure function
``text -> ParsedAction``. It either yields the action to send or rejects the reply with feedback
for the agent, as AgentGym's textcraft client does for a reply with two ``Action:`` lines: a
rejected reply is never sent to the server, and the feedback becomes the step's observation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from agentforge.errors import EnvError


@dataclass(frozen=True)
class ParsedAction:
    """The action to send, or (when ``action`` is None) the feedback explaining why not."""

    action: str | None
    feedback: str = ""

    @property
    def rejected(self) -> bool:
        return self.action is None


ActionAdapter = Callable[[str], ParsedAction]

_ACTION_LINE = re.compile(r"Action:\s*(.*?)(?=\n|$)", re.DOTALL)
_NOT_PLAIN = re.compile(r"[^A-Za-z0-9, ]+")
_SQL_FENCE = "```sql"
_FENCE = "```"
_MOVES = ("up", "down", "left", "right")
TWO_ACTIONS = "Error: Only one 'Action' is allowed per response. Please adjust your response."


def _strip_eos(text: str) -> str:
    text = text.strip()
    return text[: -len("</s>")].rstrip() if text.endswith("</s>") else text


def _after_first_action(text: str) -> str:
    """The text between the first ``Action:`` and the next one (or the end); all of it if none."""
    parts = text.split("Action:")
    return (parts[1] if len(parts) > 1 else parts[0]).strip()


def react_strict(text: str) -> ParsedAction:
    """textcraft and babyai: the text after ``Action:`` on its line; more than one ``Action:`` is
    rejected; characters other than letters, digits, commas and spaces are removed.

    A reply without ``Action:`` is taken whole (AgentGym sends an empty action instead): a workflow
    whose action output is already the bare action should not need the ReAct wrapper.
    """
    text = _strip_eos(text)
    matches = _ACTION_LINE.findall(text)
    if len(matches) > 1:
        return ParsedAction(None, TWO_ACTIONS)
    raw = matches[0] if matches else text
    cleaned = _NOT_PLAIN.sub("", re.sub(r"\s+", " ", raw))
    return ParsedAction(" ".join(cleaned.split()))


def react_first(text: str) -> ParsedAction:
    """sciworld, webshop and the generic case: the text after the first ``Action:``."""
    return ParsedAction(_after_first_action(_strip_eos(text)))


def maze_action(text: str) -> ParsedAction:
    """LMRL-Gym maze: the text after the first ``Action:``; a bare direction becomes ``move <dir>``."""
    action = _after_first_action(_strip_eos(text))
    lowered = action.lower()
    return ParsedAction(f"move {lowered}" if lowered in _MOVES else action)


def wordle_action(text: str) -> ParsedAction:
    """LMRL-Gym wordle: the text after the first ``Action:``; a bare five-letter word is spelled out
    as space-separated letters (``crane`` -> ``c r a n e``), the form the server expects."""
    action = _after_first_action(_strip_eos(text))
    lowered = action.lower()
    if len(lowered) == 5 and lowered.isalpha():
        return ParsedAction(" ".join(lowered))
    return ParsedAction(action)


def sql_block(text: str) -> ParsedAction:
    """sqlgym: the body of the last ```` ```sql ```` block; a reply without one is taken whole."""
    text = _strip_eos(text)
    if _SQL_FENCE in text:
        text = text.split(_SQL_FENCE)[-1].split(_FENCE)[0]
    return ParsedAction(text.strip())


def plain(text: str) -> ParsedAction:
    """agentforge's own server: the stripped text; if it has an ``Action:`` line, the rest of that
    line (or, when the line ends right after ``Action:``, the next non-empty line)."""
    text = text.strip()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        head, sep, rest = line.partition("Action:")
        if sep and not head.strip(" \t*#-"):
            if rest.strip():
                return ParsedAction(rest.strip())
            following = next((ln.strip() for ln in lines[i + 1:] if ln.strip()), "")
            return ParsedAction(following)
    return ParsedAction(text)


ACTION_ADAPTERS: dict[str, ActionAdapter] = {
    "plain": plain,
    "react_strict": react_strict,
    "react_first": react_first,
    "maze": maze_action,
    "wordle": wordle_action,
    "sql_block": sql_block,
}


def get_adapter(adapter: str | ActionAdapter) -> ActionAdapter:
    """An adapter by name (see ``ACTION_ADAPTERS``), or the callable itself."""
    if callable(adapter):
        return adapter
    try:
        return ACTION_ADAPTERS[adapter]
    except KeyError:
        raise EnvError(f"unknown action adapter '{adapter}'; known: {', '.join(ACTION_ADAPTERS)}") from None
