"""TextCraft: gather base materials and craft your way up a recipe tree to a goal item.

In the spirit of AgentGym's TextCraft, with an item vocabulary of its own. Each task is a generated
recipe tree of depth 1 to 3 under a goal item, plus a few distractor recipes. The first observation
lists the crafting commands (recipes) and the goal. Actions:

- ``get N item``: take N of a base material (items without a recipe);
- ``craft N item using N a, N b``: craft in whole batches of the recipe (asking for 1 of an item whose
  recipe makes 4 crafts 4); the ingredients named must be the recipe's, their amounts come from it;
- ``inventory``: show what you hold.

Having the goal item in the inventory scores 1 and ends the episode.

Example::

    obs:    Crafting commands:
            craft 4 pine plank using 1 pine log
            craft 1 birdhouse using 3 pine plank, 2 iron nail
            ...
            Goal: craft birdhouse.
    action: get 1 pine log
    obs:    Got 1 pine log.
    action: craft 4 pine plank using 1 pine log
    obs:    Crafted 4 pine plank using 1 pine log.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task, assign_splits
from agentforge.errors import EnvError

BASE_ITEMS: tuple[str, ...] = (
    "pine log", "birch log", "cedar log", "clay lump", "river sand", "iron ore", "copper ore", "tin ore",
    "coal", "flint", "reed", "wool tuft", "feather", "resin", "salt crystal", "bone", "silk thread", "pebble",
    "hemp fiber", "beeswax", "chalk", "slate", "amber", "moss", "cotton boll", "lime", "quartz", "tallow",
    "bark", "straw",
)
PARTS: tuple[str, ...] = (
    "pine plank", "birch plank", "cedar plank", "clay brick", "glass pane", "iron ingot", "copper ingot",
    "tin ingot", "bronze ingot", "charcoal", "rope", "linen cloth", "wool yarn", "wax candle", "wooden stick",
    "iron nail", "brass gear", "hinge", "coil spring", "copper wire", "glass lens", "blue dye", "hide glue",
    "paper sheet", "leather strip", "roof tile", "copper pipe", "iron chain", "glass bead", "iron ring",
    "rivet", "wooden axle", "cart wheel", "mortar", "felt pad", "quill", "ink pot", "bone button",
    "stone block", "wooden frame",
)
GOALS: tuple[str, ...] = (
    "lantern", "compass", "wall clock", "telescope", "kite", "birdhouse", "music box", "water wheel",
    "fishing rod", "model ship", "writing desk", "bookshelf", "tea kettle", "weather vane", "sundial", "loom",
    "spinning top", "wind chime", "treasure chest", "garden bench", "rocking chair", "harp", "hand drum",
    "abacus", "hourglass", "toolbox", "ladder", "wheelbarrow", "bird feeder", "candle holder", "hand mirror",
    "picture frame", "desk globe", "sled", "canoe", "bellows", "anvil", "lockbox", "mailbox", "rain barrel",
)
MAX_COUNT = 64
MAX_PLAN = 14

Recipe = tuple[int, tuple[tuple[str, int], ...]]  # (amount made per batch, ((ingredient, amount), ...))

_GET = re.compile(r"^get\s+(\d+)\s+(.+)$")
_CRAFT = re.compile(r"^craft\s+(\d+)\s+(.+?)(?:\s+using\s+(.+))?$")
_INGREDIENT = re.compile(r"^(\d+)\s+(.+)$")

_INSTRUCTION = (
    "You are given a few useful crafting recipes to craft items, and a goal item. Base materials (items "
    "without a recipe) can be fetched with `get N item`. Craft with `craft N item using N a, N b` exactly as "
    "the crafting commands show (crafting uses up the ingredients and makes whole batches). Check what you "
    "hold with `inventory`. Reply with one action per turn, e.g. `get 2 pine log`. The task is done when the "
    "goal item is in your inventory."
)
_FORMATS = "Valid actions: `get N item`, `craft N item using N ingredient, N ingredient`, `inventory`."


def normalise_item(text: str) -> str:
    return " ".join(text.replace("_", " ").strip(" .!\"'`[]").lower().split())


def recipe_line(item: str, recipe: Recipe, batches: int = 1) -> str:
    made, ingredients = recipe
    parts = ", ".join(f"{amount * batches} {name}" for name, amount in ingredients)
    return f"craft {made * batches} {item} using {parts}"


def plan(goal: str, recipes: Mapping[str, Recipe]) -> list[str]:
    """Actions that make one ``goal`` from nothing: fetch and craft each ingredient just in time."""
    inventory: dict[str, int] = {}
    actions: list[str] = []

    def obtain(item: str, amount: int) -> None:
        missing = amount - inventory.get(item, 0)
        if missing <= 0:
            return
        if item not in recipes:
            actions.append(f"get {missing} {item}")
            inventory[item] = amount
            return
        made, ingredients = recipes[item]
        batches = math.ceil(missing / made)
        while any(inventory.get(name, 0) < need * batches for name, need in ingredients):
            for name, need in ingredients:
                obtain(name, need * batches)
        for name, need in ingredients:
            inventory[name] -= need * batches
        actions.append(recipe_line(item, recipes[item], batches))
        inventory[item] = inventory.get(item, 0) + made * batches

    obtain(goal, 1)
    return actions


class TextCraftSession(LocalSession):
    env: TextCraftEnv

    def _reset(self, task: Task) -> Observation:
        self.goal = str(task.answer)
        self.recipes = recipes_of(task)
        self.inventory: dict[str, int] = {}
        lines = [recipe_line(item, self.recipes[item]) for item in task.meta["shown"]]
        text = "Crafting commands:\n" + "\n".join(lines) + f"\n\nGoal: craft {self.goal}."
        return self._observation(text)

    def _observation(self, text: str) -> Observation:
        return Observation(text=text, fields={"target_item": self.goal})

    def _step(self, action: str) -> StepResult:
        command = normalise_item(re.sub(r"^\s*action\s*:", "", action, flags=re.IGNORECASE))
        command = re.sub(r"\s+", " ", command)
        if command in ("inventory", "inv", "show inventory"):
            return self._result(self._inventory_text())
        if match := _GET.match(command):
            return self._get(int(match.group(1)), self._known(match.group(2)))
        if match := _CRAFT.match(command):
            return self._craft(int(match.group(1)), self._known(match.group(2)), match.group(3))
        shown = action.strip()[:60]
        return self._result(f"Invalid action '{shown}'. {_FORMATS}", invalid=True)

    def _known(self, text: str) -> str:
        """The item named by ``text``, forgiving a plural (``pine logs``); unknown names come back as given."""
        name = normalise_item(text)
        for candidate in (name, name[:-1], name[:-2]):
            if candidate in self.recipes or candidate in BASE_ITEMS:
                return candidate
        return name

    def _result(self, text: str, *, invalid: bool = False) -> StepResult:
        if self.inventory.get(self.goal, 0) > 0:
            return StepResult(observation=self._observation(f"{text}\nYou have the goal item: {self.goal}!"),
                              reward=1.0, done=True, info={"solved": True})
        return StepResult(observation=self._observation(text), reward=0.0, done=False,
                          info={"invalid": True} if invalid else {})

    def _inventory_text(self) -> str:
        held = [f"[{item}] ({n})" for item, n in sorted(self.inventory.items()) if n > 0]
        return "Inventory: " + " ".join(held) if held else "Inventory: empty."

    def _get(self, amount: int, item: str) -> StepResult:
        if not 1 <= amount <= MAX_COUNT:
            return self._result(f"Could not get {amount} {item}: the amount must be 1 to {MAX_COUNT}.", invalid=True)
        if item in self.recipes:
            return self._result(f"Could not get {item}: it is not a base material; craft it instead.")
        if item not in BASE_ITEMS:
            return self._result(f"Could not find a base material called '{item}'. {_FORMATS}")
        self.inventory[item] = self.inventory.get(item, 0) + amount
        return self._result(f"Got {amount} {item}.")

    def _craft(self, amount: int, item: str, using: str | None) -> StepResult:
        if not 1 <= amount <= MAX_COUNT:
            return self._result(f"Could not craft {amount} {item}: the amount must be 1 to {MAX_COUNT}.",
                                invalid=True)
        recipe = self.recipes.get(item)
        if recipe is None:
            return self._result(f"Could not find a recipe for '{item}'. Use one of the crafting commands.")
        made, ingredients = recipe
        if using is not None and not self._same_ingredients(using, ingredients):
            return self._result(f"Wrong ingredients for {item}. The recipe is: {recipe_line(item, recipe)}.")
        batches = math.ceil(amount / made)
        short = [f"{need * batches} {name} (you have {self.inventory.get(name, 0)})"
                 for name, need in ingredients if self.inventory.get(name, 0) < need * batches]
        if short:
            return self._result(f"Could not craft {made * batches} {item}: you need " + ", ".join(short) + ".")
        for name, need in ingredients:
            self.inventory[name] -= need * batches
        self.inventory[item] = self.inventory.get(item, 0) + made * batches
        used = ", ".join(f"{need * batches} {name}" for name, need in ingredients)
        return self._result(f"Crafted {made * batches} {item} using {used}.")

    def _same_ingredients(self, using: str, ingredients: Sequence[tuple[str, int]]) -> bool:
        names = set()
        for part in using.split(","):
            match = _INGREDIENT.match(part.strip())
            names.add(self._known(match.group(2) if match else part))
        return names == {name for name, _ in ingredients}


def recipes_of(task: Task) -> dict[str, Recipe]:
    """The recipes of a task, as stored in its (JSON-friendly) meta."""
    return {str(item): (int(made), tuple((str(name), int(n)) for name, n in ingredients))
            for item, (made, ingredients) in task.meta["recipes"].items()}


class TextCraftEnv(Environment):
    """Generated recipe trees under goal items; tasks differ in goal, tree, amounts or distractors."""

    name = "textcraft"
    instruction = _INSTRUCTION
    multi_turn = True
    max_steps = 30  # every generated task's plan takes at most MAX_PLAN (14) actions

    def __init__(self, num_tasks: int = 300, seed: int = 0, splits: Mapping[str, float | int] | None = None,
                 *, max_depth: int = 3) -> None:
        if not 1 <= max_depth <= 3:
            raise EnvError(f"textcraft: max_depth must be 1 to 3, got {max_depth}", env=self.name)
        if num_tasks < 1:
            raise EnvError(f"textcraft: num_tasks must be at least 1, got {num_tasks}", env=self.name)
        self.seed = seed
        super().__init__(_make_tasks(num_tasks, seed, max_depth, splits))

    def session(self) -> TextCraftSession:
        return TextCraftSession(self)


class _TreeBuilder:
    """Draws one goal's recipe tree: every item name used at most once within the tree."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.recipes: dict[str, Recipe] = {}
        self.bases = list(BASE_ITEMS)
        self.parts = list(PARTS)
        rng.shuffle(self.bases)
        rng.shuffle(self.parts)

    def build(self, item: str, level: int, top: bool) -> None:
        n = self.rng.randint(1, 3) if top else self.rng.randint(1, 2)
        ingredients: list[tuple[str, int]] = []
        for j in range(n):
            if level > 1 and (j == 0 or self.rng.random() < 0.3):
                name = self.parts.pop()
                self.build(name, level - 1, top=False)
            else:
                name = self.bases.pop()
            ingredients.append((name, self.rng.randint(1, 3)))
        made = 1 if top else self.rng.randint(1, 4)
        self.recipes[item] = (made, tuple(ingredients))

    def distractors(self, goal: str, count: int) -> list[str]:
        """Recipes for parts the goal does not need, made from items of the tree (as TextCraft lists)."""
        pool = sorted({name for _, ingredients in self.recipes.values() for name, _ in ingredients} - {goal})
        names = []
        for _ in range(count):
            name = self.parts.pop()
            picks = self.rng.sample(pool, k=min(2, len(pool)))
            self.recipes[name] = (self.rng.randint(1, 4), tuple((p, self.rng.randint(1, 3)) for p in picks))
            names.append(name)
        return names


def _draw(rng: random.Random, max_depth: int) -> tuple[str, dict[str, Recipe], list[str], int]:
    while True:
        goal = rng.choice(GOALS)
        depth = rng.randint(1, max_depth)
        builder = _TreeBuilder(rng)
        builder.build(goal, depth, top=True)
        tree = dict(builder.recipes)
        if len(plan(goal, tree)) > MAX_PLAN:
            continue
        distractors = builder.distractors(goal, rng.randint(2, 4))
        shown = [*tree, *distractors]
        rng.shuffle(shown)
        return goal, builder.recipes, shown, depth


def _make_tasks(num_tasks: int, seed: int, max_depth: int, splits: Mapping[str, float | int] | None) -> list[Task]:
    rng = random.Random(f"textcraft:{seed}")
    seen: set[str] = set()
    drawn: list[tuple[str, dict[str, Recipe], list[str], int]] = []
    attempts = 0
    while len(drawn) < num_tasks:
        attempts += 1
        if attempts > 20 * num_tasks + 100:
            raise EnvError(f"textcraft: could not make {num_tasks} distinct tasks", env="textcraft")
        goal, recipes, shown, depth = _draw(rng, max_depth)
        key = repr((goal, sorted(recipes.items()), sorted(shown)))
        if key in seen:
            continue
        seen.add(key)
        drawn.append((goal, recipes, shown, depth))
    ids = [f"textcraft-{i:04d}" for i in range(num_tasks)]
    split_of = assign_splits(ids, splits, seed)
    return [Task(id=task_id, split=split_of[task_id], inputs={"target_item": goal}, answer=goal,
                 meta={"depth": depth, "shown": shown,
                       "recipes": {item: [made, [list(i) for i in ingredients]]
                                   for item, (made, ingredients) in recipes.items()}})
            for task_id, (goal, recipes, shown, depth) in zip(ids, drawn, strict=True)]
