"""Todo: the command API, the goal state and partial credit."""

from __future__ import annotations

import pytest

from agentforge.envs.games.oracles import todo_plan
from agentforge.envs.games.todo import TodoEnv


@pytest.fixture(scope="module")
def env() -> TodoEnv:
    return TodoEnv(num_tasks=100, seed=2)


def test_requests_name_items_by_title_and_need_a_change(env: TodoEnv) -> None:
    for task in env.tasks():
        initial = {str(i): [t, d] for i, t, d in task.meta["initial"]}
        assert task.answer != {"kept": initial, "new": []}
        assert 2 <= len(task.meta["ops"]) <= 4
        assert all(str(i) not in task.inputs["request"] for i, _, _ in task.meta["initial"] if i > 9)


def test_commands(env: TodoEnv) -> None:
    task = env.tasks()[0]
    session = env.session()
    obs = session.reset(task.id)
    assert obs.text.startswith(f"Request: {task.inputs['request']}")
    listing = session.step("list").observation.text
    for item_id, title, done in task.meta["initial"]:
        assert f"[{item_id}] [{'x' if done else ' '}] {title}" in listing
    first = task.meta["initial"][0][0]
    new_id = max(i for i, _, _ in task.meta["initial"]) + 1
    assert session.step("add 'buy oat milk'").observation.text == f"Added item {new_id}: 'buy oat milk'."
    assert "as done" in session.step(f"done #{new_id}").observation.text
    assert "as not done" in session.step(f"undo {new_id}").observation.text
    assert "Renamed item" in session.step(f"rename {first} call the plumber").observation.text
    assert f"Removed item {new_id}" in session.step(f"remove {new_id}").observation.text
    assert "no item with id 999" in session.step("done 999").observation.text
    for bad in ("done", "done abc", "rename 3", "add", "remove 3 4", "submit now"):
        result = session.step(bad)
        assert result.info == {"invalid": True} and not result.done, bad
    session.close()


def test_submit_scores_the_state_with_partial_credit(env: TodoEnv) -> None:
    task = env.tasks()[3]
    steps = todo_plan(task)
    session = env.session()
    session.reset(task.id)
    for action in steps[:-2]:  # everything but the last change
        session.step(action)
    result = session.step("submit")
    assert result.done and result.reward == 0.0 and 0.0 < result.info["partial"] < 1.0


def test_titles_compare_case_insensitively_but_ids_matter(env: TodoEnv) -> None:
    task = next(t for t in env.tasks() if any(op[0] == "rename" for op in t.meta["ops"]))
    steps = todo_plan(task)
    session = env.session()
    session.reset(task.id)
    for action in steps:
        result = session.step("add " + action[4:].upper() if action.startswith("add ") else action)
    assert result.reward == 1.0
    # the right titles, but the renamed item removed and re-added under a new id: no match
    _, item_id, title = next(a for a in steps if a.startswith("rename ")).split(" ", 2)
    new_id = max(i for i, _, _ in task.meta["initial"]) + 1 + sum(a.startswith("add ") for a in steps)
    redo = [f"remove {item_id}", f"add {title}"] + ([f"done {new_id}"] if task.answer["kept"][item_id][1] else [])
    session.reset(task.id)
    for action in [*steps[:-1], *redo]:
        assert not session.step(action).done
    listing = session.step("list").observation.text
    assert f"[{new_id}] [{'x' if task.answer['kept'][item_id][1] else ' '}] {title}" in listing
    result = session.step("submit")
    assert result.reward == 0.0 and 0.0 < result.info["partial"] < 1.0
    session.close()
