"""Per-environment dialects of the AgentGym HTTP protocol.

AgentGym's environment servers share one shape (create, reset, step, observation, close) but differ
per environment in field names, response shapes, error style and more (AGENTGYM.md lists each
difference). A :class:`Profile` records one dialect, so :class:`agentforge.envs.remote.client.RemoteEnv` can
drive an unmodified AgentGym server; ``agentforge`` is the dialect of our own server
(:mod:`agentforge.envs.remote.server`): textcraft's shape with strict 4xx JSON errors and a few extensions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from agentforge.envs.remote.actions import ACTION_ADAPTERS
from agentforge.errors import EnvError

ErrorStyle = Literal["json_4xx", "error_200", "http_500"]


@dataclass(frozen=True)
class Profile:
    """One environment server's dialect. Every field has the textcraft value as its default."""

    name: str
    id_field: str = "id"
    """The instance id's field in request bodies and the ``/observation`` query (``id`` or ``env_idx``)."""
    task_field: str = "data_idx"
    """The reset body's task field: ``data_idx``, ``game``, ``seed``, ``item_id``, ``session_id``, ``task_id``."""
    task_value: Literal["index", "id"] = "index"
    """Send the task's integer index (AgentGym) or its string id (agentforge's ``task_id`` extension)."""
    create_body: bool = True
    """POST ``/create`` with a ``{}`` JSON body (textcraft answers 422 without one) or with no body."""
    create_shape: Literal["object", "int"] = "object"
    """``/create`` answers ``{"id": n, ...}`` or a bare integer (sqlgym, webshop)."""
    reset_shape: Literal["object", "array"] = "object"
    """``/reset`` answers an object with the observation or a ``[text, null]`` array (sqlgym, webshop)."""
    reset_prefix_key: str | None = None
    """An extra reset field put before the observation (sciworld's ``task_description``)."""
    observe_after_reset: bool = False
    """Take the first observation from ``GET /observation`` after reset (webshop's client does)."""
    obs_key: str = "observation"
    """The observation's key in step answers (``observation``, or ``state`` on sqlgym and webshop)."""
    observation_shape: Literal["string", "object"] = "string"
    """``GET /observation`` answers a bare JSON string or an object holding the observation (babyai)."""
    reward_key: str = "reward"
    """Where the step's reward is read: ``reward``, or ``score`` (babyai, sciworld: AgentGym scores these)."""
    reward_scale: float = 1.0
    """Multiplies the reward (sciworld's score runs to 100)."""
    has_close: bool = True
    """Whether ``POST /close`` exists."""
    error_style: ErrorStyle = "error_200"
    """How application errors come back: 4xx JSON, 200 ``{"error"}`` or HTTP 500 plain text. With
    ``http_500`` an HTTP 500 is read as an application error (:class:`EnvError`, not retried); in the
    other styles it is a server fault (:class:`EnvServerError`). A 200 carrying ``error`` is always an
    error, whatever the style."""
    locks_after_done: bool = False
    """Whether the server refuses steps after ``done``. Informational: the client stops at the first
    ``done`` itself, since textcraft and sqlgym keep accepting steps."""
    path_prefix: str = ""
    """Appended to the base URL unless already there (LMRL-Gym serves ``/maze`` and ``/wordle``)."""
    action_adapter: str = "react_first"
    """The name of the adapter (``agentforge.envs.remote.actions.ACTION_ADAPTERS``) that extracts the action."""
    num_tasks: int | None = None
    """How many task indices the server has, when known; else pass ``tasks=`` or ``num_tasks=``."""
    max_steps: int = 20
    multi_turn: bool = True
    instruction: str = ""
    fetch_info: bool = False
    """The server describes itself (``GET /info``, ``GET /tasks``): agentforge's own server."""

    def __post_init__(self) -> None:
        if self.action_adapter not in ACTION_ADAPTERS:
            raise EnvError(f"profile '{self.name}': unknown action adapter '{self.action_adapter}'; "
                           f"known: {', '.join(ACTION_ADAPTERS)}")
        if self.path_prefix and not self.path_prefix.startswith("/"):
            raise EnvError(f"profile '{self.name}': path_prefix must start with '/', got '{self.path_prefix}'")

    def with_(self, **changes: Any) -> Profile:
        """A copy with some fields changed (for a server that deviates from a shipped profile)."""
        return replace(self, **changes)


_REACT = "Answer in this format:\nThought:\n<your thoughts>\n\nAction:\n<your next action>"

TEXTCRAFT = Profile(
    name="textcraft",
    action_adapter="react_strict",
    num_tasks=544,
    max_steps=20,
    instruction=(
        "Craft the goal item in a text version of Minecraft using the crafting commands given in the "
        "observation. Actions: 'get N item' (from the environment), 'craft N item using N a, N b' and "
        "'inventory'. Always give quantities, and use only the crafting commands provided.\n" + _REACT),
)
BABYAI = Profile(
    name="babyai",
    create_body=False,
    observation_shape="object",
    reward_key="score",
    locks_after_done=True,
    action_adapter="react_strict",
    max_steps=20,
    instruction=(
        "Reach the goal in a grid world. Each observation lists what you see and the actions available "
        "now, such as 'turn left', 'turn right', 'move forward', 'go to <obj> <id>', 'pickup <obj> <id>', "
        "'go through <door> <id>', 'toggle and go through <door> <id>' and 'toggle'.\n" + _REACT),
)
MAZE = Profile(
    name="maze",
    task_field="game",
    create_body=False,
    has_close=False,
    locks_after_done=True,
    path_prefix="/maze",
    action_adapter="maze",
    num_tasks=25,
    max_steps=15,
    instruction=(
        "Reach the goal of a maze in as few moves as possible. Each observation gives the goal's position, "
        "yours and the walls around you; moving right increases y by 1, moving down increases x by 1. "
        "Actions: 'move up', 'move down', 'move left', 'move right'.\n" + _REACT),
)
WORDLE = Profile(
    name="wordle",
    task_field="seed",
    create_body=False,
    has_close=False,
    locks_after_done=True,
    path_prefix="/wordle",
    action_adapter="wordle",
    max_steps=8,
    instruction=(
        "Guess a hidden five-letter word in at most six attempts. Write a guess as space-separated letters "
        "('s h i r e'). Feedback gives one letter per position: 'g' right letter in the right place, 'y' in "
        "the word elsewhere, 'b' not in the word.\n" + _REACT),
)
SQLGYM = Profile(
    name="sqlgym",
    id_field="env_idx",
    task_field="item_id",
    create_body=False,
    create_shape="int",
    reset_shape="array",
    obs_key="state",
    has_close=False,
    error_style="http_500",
    action_adapter="sql_block",
    num_tasks=10962,
    max_steps=1,
    multi_turn=False,
    instruction=(
        "Answer the question about the described SQLite database with one SQL statement. Explain your "
        "reasoning, then give the statement on one line in a ```sql fenced block."),
)
WEBSHOP = Profile(
    name="webshop",
    id_field="env_idx",
    task_field="session_id",
    create_body=False,
    create_shape="int",
    reset_shape="array",
    observe_after_reset=True,
    obs_key="state",
    has_close=False,
    error_style="http_500",
    action_adapter="react_first",
    max_steps=10,
    instruction=(
        "Shop on a web store as instructed. Actions: 'search[keywords]' when a search bar is shown and "
        "'click[value]' where value is one of the clickable values on the page.\n" + _REACT),
)
SCIWORLD = Profile(
    name="sciworld",
    create_body=False,
    reset_prefix_key="task_description",
    reward_key="score",
    reward_scale=0.01,
    locks_after_done=True,
    action_adapter="react_first",
    max_steps=30,
    instruction=(
        "Complete a science task in a text world. Actions include 'look around', 'look at OBJ', "
        "'open/close OBJ', 'pick up OBJ', 'move OBJ to OBJ', 'use OBJ [on OBJ]', 'go to LOC', "
        "'focus on OBJ', 'wait' and 'inventory'.\n" + _REACT),
)
AGENTFORGE = Profile(
    name="agentforge",
    task_field="task_id",
    task_value="id",
    error_style="json_4xx",
    locks_after_done=True,
    action_adapter="plain",
    fetch_info=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (
    AGENTFORGE, TEXTCRAFT, BABYAI, MAZE, WORDLE, SQLGYM, WEBSHOP, SCIWORLD)}


def get_profile(profile: str | Profile) -> Profile:
    """A shipped profile by name, or the profile itself."""
    if isinstance(profile, Profile):
        return profile
    found = PROFILES.get(profile)
    if found is None:
        from difflib import get_close_matches

        close = get_close_matches(profile, list(PROFILES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(PROFILES)}"
        raise EnvError(f"unknown environment server profile '{profile}'{hint}")
    return found
