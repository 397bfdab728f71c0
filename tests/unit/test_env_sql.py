"""SQL: read-only, bounded queries; gold answers; answer matching."""

from __future__ import annotations

import sqlite3
import time

import pytest

from agentforge.envs.base import Task
from agentforge.envs.games.oracles import play
from agentforge.envs.games.sql import FAMILIES, TEMPLATES, SqlEnv, SqlSession, answer_matches, database, parse_action


@pytest.fixture(scope="module")
def env() -> SqlEnv:
    return SqlEnv(num_tasks=120, seed=0)


def _session_on(env: SqlEnv, family: str = "shop") -> tuple[SqlSession, Task]:
    task = next(t for t in env.tasks() if t.meta["family"] == family)
    session = env.session()
    session.reset(task.id)
    return session, task


def test_families_templates_and_gold_sql_stay_hidden(env: SqlEnv) -> None:
    assert {t.meta["family"] for t in env.tasks()} == set(FAMILIES)
    assert len({t.meta["template"] for t in env.tasks()}) >= 20
    assert {t.family for t in TEMPLATES} == set(FAMILIES)
    for task in env.tasks()[:40]:
        episode = play(env, task.id)
        texts = [episode.first.text, *(o for _, o in episode.transcript), *map(str, episode.first.fields.values())]
        assert all(task.meta["gold_sql"] not in text for text in texts)
        assert "gold" not in str(episode.last.info if episode.last else {})
        assert episode.first.fields["question"] == task.inputs["question"]


def test_gold_answers_match_their_sql(env: SqlEnv) -> None:
    for task in env.tasks():
        db = database(task.meta["family"], task.meta["db_seed"])
        conn = sqlite3.connect(":memory:")
        conn.deserialize(db.image)
        rows = conn.execute(task.meta["gold_sql"]).fetchall()
        conn.close()
        if task.meta["kind"] == "list":
            assert sorted(r[0] for r in rows) == task.answer
        else:
            assert rows[0][0] == task.answer


@pytest.mark.parametrize("statement", [
    "DROP TABLE orders", "INSERT INTO customers VALUES (999, 'Eve', 'Oslo', 2020)", "UPDATE products SET price = 0",
    "DELETE FROM orders", "CREATE TABLE t (x)", "CREATE TEMP TABLE t (x)", "ATTACH DATABASE 'x.db' AS x",
    "PRAGMA query_only = OFF", "PRAGMA writable_schema = ON", "VACUUM", "BEGIN",
    "REPLACE INTO orders VALUES (1, 1, 1, 1, 1)",
])
def test_writes_are_refused_and_change_nothing(env: SqlEnv, statement: str) -> None:
    session, _ = _session_on(env)
    before = session.step("query: SELECT COUNT(*), SUM(price) FROM products, orders").observation.text
    result = session.step(f"query: {statement}")
    assert result.observation.text.startswith("Query refused: the database is read-only")
    assert result.reward == 0.0 and not result.done
    assert session.step("query: SELECT COUNT(*), SUM(price) FROM products, orders").observation.text == before
    session.close()


def test_two_statements_are_refused(env: SqlEnv) -> None:
    session, _ = _session_on(env)
    text = session.step("query: SELECT 1; DROP TABLE orders").observation.text
    assert text.startswith("SQL error:") and "one statement" in text
    assert "(1 row)" in session.step("query: SELECT COUNT(*) FROM orders").observation.text
    session.close()


@pytest.mark.parametrize("sql", [
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT COUNT(*) FROM r",
    "SELECT COUNT(*) FROM orders a, orders b, orders c, orders d",
])
def test_long_queries_are_stopped(env: SqlEnv, sql: str) -> None:
    session, _ = _session_on(env)
    started = time.perf_counter()
    result = session.step(f"query: {sql}")
    assert time.perf_counter() - started < env.query_timeout + 2.0
    assert result.observation.text.startswith("Query stopped") and not result.done
    session.close()


def test_timeout_applies_even_with_a_large_step_budget() -> None:
    env = SqlEnv(num_tasks=5, query_timeout=0.2, max_ops=10**12)
    session = env.session()
    session.reset(env.tasks()[0].id)
    started = time.perf_counter()
    endless = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT COUNT(*) FROM r"
    result = session.step(f"query: {endless}")
    assert 0.15 < time.perf_counter() - started < 3.0
    assert result.observation.text.startswith("Query stopped")
    session.close()


def test_results_are_truncated(env: SqlEnv) -> None:
    session, _ = _session_on(env)
    text = session.step("query: SELECT * FROM orders").observation.text
    assert text.count("\n") == env.max_rows + 1 and text.endswith("(first 20 rows shown; there are more)")
    assert "string or blob too big" in session.step("query: SELECT randomblob(100000000)").observation.text
    assert session.step("query: SELECT * FROM orders WHERE 0").observation.text.endswith("(no rows)")
    assert "table_info" not in session.step("query: PRAGMA table_info(orders)").observation.text
    assert "SQL error" in session.step("query: SELEC 1").observation.text
    session.close()


def test_sessions_are_independent(env: SqlEnv) -> None:
    one, task = _session_on(env)
    two = env.session()
    two.reset(task.id)
    assert one.conn is not two.conn
    one.close()
    assert "(1 row)" in two.step("query: SELECT COUNT(*) FROM orders").observation.text
    two.close()


@pytest.mark.parametrize(("action", "parsed"), [
    ("query: SELECT 1", ("query", "SELECT 1")), ("SQL: SELECT 1", ("query", "SELECT 1")),
    ("Action: query: SELECT 1", ("query", "SELECT 1")), ("```sql\nSELECT 1\n```", ("query", "SELECT 1")),
    ("query: ```sql\nSELECT 1\n```", ("query", "SELECT 1")), ("answer: 42", ("answer", "42")),
    ("ANSWER:  Oslo ", ("answer", "Oslo")), ("SELECT 1", None), ("42", None),
])
def test_parse_action(action: str, parsed: tuple[str, str] | None) -> None:
    assert parse_action(action) == parsed


@pytest.mark.parametrize(("given", "gold", "ok"), [
    ("12", 12, True), ("12.0", 12, True), ("12.5", 12, False), ("1,234", 1234, True), ("$1,234.50", 1234.5, True),
    ("1234.504", 1234.5, True), ("1234.52", 1234.5, False), ("twelve", 12, False), ("", 12, False),
    ("oslo", "Oslo", True), ("'Oslo'.", "Oslo", True), ("Oslo, Porto", "Oslo", False),
    ("Porto, Oslo", ["Oslo", "Porto"], True), ("Oslo and Porto", ["Oslo", "Porto"], True),
    ("[Oslo, Porto, Oslo]", ["Oslo", "Porto"], False), ("Oslo", ["Oslo", "Porto"], False),
    ("oslo\nporto", ["Oslo", "Porto"], True),
])
def test_answer_matching(given: str, gold: object, ok: bool) -> None:
    assert answer_matches(given, gold) is ok


def test_answer_ends_the_episode(env: SqlEnv) -> None:
    task = env.tasks()[0]
    session = env.session()
    session.reset(task.id)
    wrong = session.step("answer: definitely not it")
    assert (wrong.reward, wrong.done, wrong.info) == (0.0, True, {"correct": False, "queries": 0})
    session.close()
