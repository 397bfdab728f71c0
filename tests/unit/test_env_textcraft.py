"""TextCraft: recipe trees, get/craft/inventory semantics, the planner."""

from __future__ import annotations

from collections import Counter

import pytest

from agentforge.envs.games.textcraft import (
    BASE_ITEMS,
    GOALS,
    MAX_PLAN,
    PARTS,
    TextCraftEnv,
    plan,
    recipe_line,
    recipes_of,
)


@pytest.fixture(scope="module")
def env() -> TextCraftEnv:
    return TextCraftEnv(num_tasks=200, seed=1)


def test_trees_have_depth_one_to_three_and_short_plans(env: TextCraftEnv) -> None:
    assert set(Counter(t.meta["depth"] for t in env.tasks())) == {1, 2, 3}
    vocabulary = set(BASE_ITEMS) | set(PARTS) | set(GOALS)
    for task in env.tasks():
        recipes = recipes_of(task)
        assert task.answer in GOALS and task.answer in recipes
        assert set(task.meta["shown"]) == set(recipes)
        assert all(n in vocabulary for item, (_, ings) in recipes.items() for n in (item, *(i for i, _ in ings)))
        assert len(plan(str(task.answer), recipes)) <= MAX_PLAN <= env.max_steps


def test_first_observation_lists_recipes_and_goal(env: TextCraftEnv) -> None:
    task = env.tasks()[0]
    obs = env.session().reset(task.id)
    assert obs.text.startswith("Crafting commands:\n")
    assert obs.text.rstrip().endswith(f"Goal: craft {task.answer}.")
    for item, recipe in recipes_of(task).items():
        assert recipe_line(item, recipe) in obs.text
    assert obs.fields == {"target_item": task.answer}


def _task_with_part(env: TextCraftEnv) -> tuple[str, str, tuple[int, tuple[tuple[str, int], ...]]]:
    for task in env.tasks():
        for item, recipe in recipes_of(task).items():
            if item != task.answer and all(name in BASE_ITEMS for name, _ in recipe[1]):
                return task.id, item, recipe
    raise AssertionError("no task with a base-only part")


def test_get_craft_and_inventory(env: TextCraftEnv) -> None:
    task_id, item, (made, ingredients) = _task_with_part(env)
    session = env.session()
    session.reset(task_id)
    result = session.step(f"craft {made} {item}")
    assert "Could not craft" in result.observation.text and "you need" in result.observation.text
    result = session.step(f"get 1 {item}")
    assert "not a base material" in result.observation.text
    assert "Could not find a base material" in session.step("get 2 unobtainium").observation.text
    for name, amount in ingredients:
        assert session.step(f"get {2 * amount} {name.upper()}").observation.text == f"Got {2 * amount} {name}."
    wrong = session.step(f"craft {made} {item} using 1 feather, 1 moss")
    assert "Wrong ingredients" in wrong.observation.text
    assert recipe_line(item, (made, ingredients)) in wrong.observation.text
    # asking for one more than a batch makes two batches and uses twice the ingredients
    crafted = session.step(f"craft {made + 1} {item} using " + ", ".join(f"1 {n}" for n, _ in ingredients))
    assert crafted.observation.text.startswith(f"Crafted {2 * made} {item} using")
    inventory = session.step("inventory").observation.text
    assert inventory.startswith("Inventory: ") and f"[{item}] ({2 * made})" in inventory
    assert all(f"[{name}]" not in inventory for name, _ in ingredients)
    session.close()


def test_amount_limits_are_explained(env: TextCraftEnv) -> None:
    session = env.session()
    session.reset(env.tasks()[0].id)
    result = session.step("get 0 coal")
    assert result.info == {"invalid": True} and "1 to 64" in result.observation.text
    assert "1 to 64" in session.step("get 1000 coal").observation.text


def test_planner_handles_ingredients_shared_between_recipes() -> None:
    recipes = {"lantern": (1, (("iron ingot", 2), ("coal", 2))), "iron ingot": (1, (("iron ore", 1), ("coal", 1)))}
    steps = plan("lantern", recipes)
    inventory: Counter[str] = Counter()
    for step in steps:  # replay: never craft without the ingredients
        words = step.split(" using ")[0].split(" ", 2)
        if words[0] == "get":
            inventory[words[2]] += int(words[1])
            continue
        made, item = int(words[1]), words[2]
        batches = made // recipes[item][0]
        for name, amount in recipes[item][1]:
            inventory[name] -= amount * batches
            assert inventory[name] >= 0, steps
        inventory[item] += made
    assert inventory["lantern"] == 1


def test_plural_item_names_are_forgiven(env: TextCraftEnv) -> None:
    task_id, item, (made, ingredients) = _task_with_part(env)
    session = env.session()
    session.reset(task_id)
    for name, amount in ingredients:
        assert session.step(f"get {amount} {name}s").observation.text == f"Got {amount} {name}."
    crafted = session.step(f"craft {made} {item}s using " + ", ".join(f"{a} {n}s" for n, a in ingredients))
    assert crafted.observation.text.startswith(f"Crafted {made} {item} using")
    session.close()
