"""Todo: drive a small to-do list API to match a requested end state, then submit.

Each task starts from a seeded list (items with ids, titles, done flags) and asks in plain words for
2 to 4 changes: add items (some already done), mark items done or not done, remove and rename items.
Requests name items by title; the API works by id, so the agent must ``list`` first. Actions:
``list``, ``add <title>``, ``done <id>``, ``undo <id>``, ``remove <id>``, ``rename <id> <new title>``
and ``submit``. ``submit`` ends the episode: reward 1 iff every original item is as requested (kept
under its id with the right title and done flag, or removed) and the new items are exactly the
requested ones; ``info["partial"]`` is the share of those checks that pass. Titles compare
case-insensitively.

Example::

    obs:    Request: add 'walk the dog'; mark 'pay the rent' as done. Then submit. ...
    action: list
    obs:    To-do list (2 items):
            [4] [ ] pay the rent
            [9] [x] buy milk
    action: done 4
    obs:    Marked item 4 'pay the rent' as done.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task, assign_splits
from agentforge.errors import EnvError

TITLES: tuple[str, ...] = (
    "buy milk", "call the dentist", "water the plants", "pay the electricity bill", "book flight tickets",
    "renew passport", "clean the garage", "walk the dog", "pay the rent", "email the landlord",
    "fix the bike tire", "return library books", "buy birthday gift", "schedule car service", "back up laptop",
    "clean the fridge", "order printer ink", "cancel gym membership", "call grandma", "plan weekend trip",
    "mow the lawn", "buy coffee beans", "send invoice", "update resume", "file tax return", "defrost freezer",
    "change bed sheets", "pick up dry cleaning", "book haircut", "write thank-you notes", "clean windows",
    "buy cat food", "replace smoke alarm battery", "pay phone bill", "read chapter five", "practice guitar",
    "bake bread", "repot the cactus", "sort old photos", "donate old clothes", "fix leaking tap",
    "buy light bulbs", "reply to Sam", "prepare slides", "review contract", "vacuum the car",
    "order new glasses", "charge power bank", "organize desk", "iron shirts", "take out recycling",
    "buy stamps", "test smoke detector", "make dentist appointment", "refill prescription", "wash the car",
    "clean the oven", "paint the fence", "hang the mirror", "check tire pressure",
)
MAX_TITLE = 80
_ID = re.compile(r"^#?(\d+)$")
_COMMANDS = "list | add <title> | done <id> | undo <id> | remove <id> | rename <id> <new title> | submit"

_INSTRUCTION = (
    "You manage a to-do list through a small command API. Each item has a numeric id, a title and a done flag. "
    "Commands (one per turn): `list` shows the items with their ids; `add <title>` adds an item; "
    "`done <id>` marks an item done; `undo <id>` marks it not done; `remove <id>` deletes it; "
    "`rename <id> <new title>` changes its title; `submit` ends the task. Make the list match the request "
    "exactly (rename items rather than removing and re-adding them), then `submit`."
)


@dataclass
class Item:
    id: int
    title: str
    done: bool


def norm_title(title: str) -> str:
    return " ".join(title.strip().strip("\"'`").strip().rstrip(".").casefold().split())


def goal_state(initial: list[list[Any]], ops: list[list[Any]]) -> dict[str, Any]:
    """What the list must look like: ``kept`` maps each surviving original id to [title, done]; ``new`` lists the
    [title, done] of the items to add."""
    kept: dict[str, list[Any]] = {str(i): [title, done] for i, title, done in initial}
    new: list[list[Any]] = []
    for op, *args in ops:
        if op == "add":
            new.append([args[0], bool(args[1])])
        elif op == "done":
            kept[str(args[0])][1] = True
        elif op == "undo":
            kept[str(args[0])][1] = False
        elif op == "remove":
            del kept[str(args[0])]
        elif op == "rename":
            kept[str(args[0])][0] = args[1]
    return {"kept": kept, "new": sorted(new)}


def score(items: dict[int, Item], initial_ids: list[int], goal: Mapping[str, Any]) -> tuple[int, int]:
    """(checks passed, checks made) of ``items`` against ``goal``: one per original item and per new item."""
    kept = goal["kept"]
    passed = 0
    for item_id in initial_ids:
        want = kept.get(str(item_id))
        have = items.get(item_id)
        if want is None:
            passed += have is None
        elif have is not None and norm_title(have.title) == norm_title(want[0]) and have.done == bool(want[1]):
            passed += 1
    wanted = [(norm_title(t), bool(d)) for t, d in goal["new"]]
    extra = 0
    for item in (i for i in items.values() if i.id not in initial_ids):
        key = (norm_title(item.title), item.done)
        if key in wanted:
            wanted.remove(key)
            passed += 1
        else:
            extra += 1
    return passed, len(initial_ids) + len(goal["new"]) + extra


def _quote(title: str) -> str:
    return f"'{title}'"


def describe(initial: list[list[Any]], ops: list[list[Any]]) -> str:
    """The request in words, naming items by title."""
    titles = {i: title for i, title, _ in initial}
    parts = []
    for op, *args in ops:
        if op == "add":
            parts.append(f"add {_quote(args[0])}" + (" and mark it as done" if args[1] else ""))
        elif op == "done":
            parts.append(f"mark {_quote(titles[args[0]])} as done")
        elif op == "undo":
            parts.append(f"mark {_quote(titles[args[0]])} as not done")
        elif op == "remove":
            parts.append(f"remove {_quote(titles[args[0]])}")
        elif op == "rename":
            parts.append(f"rename {_quote(titles[args[0]])} to {_quote(args[1])}")
    return "; ".join(parts) + "."


class TodoSession(LocalSession):
    env: TodoEnv

    def _reset(self, task: Task) -> Observation:
        self.items: dict[int, Item] = {int(i): Item(int(i), str(t), bool(d)) for i, t, d in task.meta["initial"]}
        self.initial_ids = sorted(self.items)
        self.next_id = max(self.items) + 1
        self.request = str(task.inputs["request"])
        text = (f"Request: {self.request} Then submit.\nCommands: {_COMMANDS}\n"
                f"Your list has {len(self.items)} items; use `list` to see them with their ids.")
        return self._observation(text)

    def _observation(self, text: str) -> Observation:
        return Observation(text=text, fields={"request": self.request})

    def _step(self, action: str) -> StepResult:
        text = re.sub(r"^\s*action\s*:\s*", "", action.strip(), flags=re.IGNORECASE).strip().strip("`").strip()
        verb, _, rest = text.partition(" ")
        verb, rest = verb.lower(), rest.strip()
        if verb == "submit" and not rest:
            return self._submit()
        if verb == "list" and not rest:
            return self._result(self._listing())
        if verb == "add":
            return self._add(rest)
        if verb in ("done", "undo", "remove", "rename"):
            return self._by_id(verb, rest)
        shown = action.strip()[:60]
        return self._result(f"Invalid action '{shown}'. Commands: {_COMMANDS}", invalid=True)

    def _result(self, text: str, *, invalid: bool = False) -> StepResult:
        return StepResult(observation=self._observation(text), reward=0.0, done=False,
                          info={"invalid": True} if invalid else {})

    def _listing(self) -> str:
        if not self.items:
            return "To-do list: empty."
        lines = [f"[{i.id}] [{'x' if i.done else ' '}] {i.title}" for i in sorted(self.items.values(),
                                                                                key=lambda i: i.id)]
        n = len(lines)
        return f"To-do list ({n} item{'s' if n != 1 else ''}):\n" + "\n".join(lines)

    def _add(self, title: str) -> StepResult:
        title = title.strip().strip("\"'`").strip()
        if not title or len(title) > MAX_TITLE:
            return self._result(f"Invalid action: `add <title>` needs a title of 1 to {MAX_TITLE} characters, "
                                "e.g. `add buy milk`.", invalid=True)
        item = Item(self.next_id, title, False)
        self.items[item.id] = item
        self.next_id += 1
        return self._result(f"Added item {item.id}: '{title}'.")

    def _by_id(self, verb: str, rest: str) -> StepResult:
        head, _, tail = rest.partition(" ")
        match = _ID.match(head)
        title = tail.strip().strip("\"'`").strip()
        usage = f"`{verb} <id>{' <new title>' if verb == 'rename' else ''}`"
        if match is None:
            return self._result(f"Invalid action: use {usage} with a numeric id from `list`.", invalid=True)
        if verb == "rename" and not 1 <= len(title) <= MAX_TITLE:
            return self._result(f"Invalid action: use {usage} with a new title of 1 to {MAX_TITLE} characters, "
                                "e.g. `rename 3 buy oat milk`.", invalid=True)
        if verb != "rename" and tail.strip():
            return self._result(f"Invalid action: use {usage} (only an id).", invalid=True)
        item = self.items.get(int(match.group(1)))
        if item is None:
            return self._result(f"There is no item with id {match.group(1)}. Use `list` to see the ids.")
        if verb == "rename":
            old, item.title = item.title, title
            return self._result(f"Renamed item {item.id} from '{old}' to '{title}'.")
        if verb == "remove":
            del self.items[item.id]
            return self._result(f"Removed item {item.id} '{item.title}'.")
        item.done = verb == "done"
        return self._result(f"Marked item {item.id} '{item.title}' as {'done' if item.done else 'not done'}.")

    def _submit(self) -> StepResult:
        assert self.task is not None
        passed, total = score(self.items, self.initial_ids, self.task.answer)
        ok = passed == total
        text = ("Submitted. The list matches the request." if ok
                else "Submitted. The list does not match the request.")
        return StepResult(observation=self._observation(text), reward=1.0 if ok else 0.0, done=True,
                          info={"matched": ok, "partial": passed / total if total else 1.0})


class TodoEnv(Environment):
    """Seeded to-do lists with requested changes; the state after ``submit`` is the score."""

    name = "todo"
    instruction = _INSTRUCTION
    multi_turn = True
    max_steps = 20

    def __init__(self, num_tasks: int = 300, seed: int = 0,
                 splits: Mapping[str, float | int] | None = None) -> None:
        if num_tasks < 1:
            raise EnvError(f"todo: num_tasks must be at least 1, got {num_tasks}", env=self.name)
        self.seed = seed
        super().__init__(_make_tasks(num_tasks, seed, splits))

    def session(self) -> TodoSession:
        return TodoSession(self)


def _draw(rng: random.Random) -> tuple[list[list[Any]], list[list[Any]]]:
    titles = rng.sample(TITLES, 12)
    k = rng.randint(3, 6)
    ids = sorted(rng.sample(range(1, 40), k))
    initial = [[i, titles.pop(), rng.random() < 0.3] for i in ids]
    spare = titles  # titles not on the list: for adds and renames
    touched: set[int] = set()
    ops: list[list[Any]] = []
    for _ in range(rng.randint(2, 4)):
        op = rng.choice(["add", "add", "done", "undo", "remove", "rename"])
        free = [row for row in initial if row[0] not in touched]
        if op == "add":
            ops.append(["add", spare.pop(), rng.random() < 0.25])
            continue
        candidates = [row for row in free if (op != "done" or not row[2]) and (op != "undo" or row[2])]
        if not candidates:
            ops.append(["add", spare.pop(), False])
            continue
        row = rng.choice(candidates)
        touched.add(row[0])
        ops.append([op, row[0], spare.pop()] if op == "rename" else [op, row[0]])
    return initial, ops


def _make_tasks(num_tasks: int, seed: int, splits: Mapping[str, float | int] | None) -> list[Task]:
    rng = random.Random(f"todo:{seed}")
    seen: set[str] = set()
    drawn: list[tuple[list[list[Any]], list[list[Any]]]] = []
    attempts = 0
    while len(drawn) < num_tasks:
        attempts += 1
        if attempts > 20 * num_tasks + 100:
            raise EnvError(f"todo: could not make {num_tasks} distinct tasks", env="todo")
        initial, ops = _draw(rng)
        key = repr((initial, ops))
        if key in seen:
            continue
        seen.add(key)
        drawn.append((initial, ops))
    ids = [f"todo-{i:04d}" for i in range(num_tasks)]
    split_of = assign_splits(ids, splits, seed)
    return [Task(id=task_id, split=split_of[task_id], inputs={"request": describe(initial, ops)},
                 answer=goal_state(initial, ops), meta={"initial": initial, "ops": ops})
            for task_id, (initial, ops) in zip(ids, drawn, strict=True)]
