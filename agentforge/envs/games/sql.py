"""SQL: answer a question by querying a small, generated SQLite database.

Three database families (``company``, ``shop``, ``school``) with seeded rows; ``dbs_per_family``
databases of each. Questions come from templates; their gold answers come from running the gold
SQL (kept in ``task.meta``, never shown). Actions:

- ``query: <SQL>``: one statement, run read-only; the observation shows up to ``max_rows`` rows;
- ``answer: <value>``: the final answer; it ends the episode and scores 1 if it matches the gold
  answer (numbers within rounding, text case-insensitively, lists in any order).

Each session opens its own in-memory copy of the database, with ``PRAGMA query_only``, an
authorizer that allows reads only (no writes, no ATTACH, no PRAGMA other than schema look-ups), a
length limit, and a progress handler that stops a query after ``query_timeout`` seconds or
``max_ops`` virtual-machine steps.

Example::

    obs:    You can query a SQLite database ... CREATE TABLE departments (...) ...
            Question: How many employees work in the Sales department?
    action: query: SELECT COUNT(*) FROM employees e JOIN departments d ON d.id = e.department_id WHERE d.name = 'Sales'
    obs:    COUNT(*)
            9
            (1 row)
    action: answer: 9
    obs:    Your answer is correct.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task, assign_splits
from agentforge.errors import EnvError

FAMILIES = ("company", "shop", "school")
MAX_SQL_CHARS = 2000
MAX_CELL_CHARS = 60
MAX_TEXT_BYTES = 1_000_000
_OPS_PER_TICK = 1000

_INSTRUCTION = (
    "You answer a question about a SQLite database by querying it. Reply with one action per turn: "
    "`query: <one SELECT statement>` runs it read-only and shows the result rows; "
    "`answer: <value>` gives your final answer and ends the episode. Answer with the value only "
    "(a number, a name, or for lists the names separated by commas)."
)
_FORMATS = ("Valid actions: `query: <one SELECT statement>` (e.g. `query: SELECT COUNT(*) FROM <table>`) "
            "or `answer: <value>` to finish.")

# --------------------------------------------------------------------------------------------------
# Vocabulary (invented) and the three database families

FIRST = ("Ada", "Bruno", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Keiko", "Liam",
         "Maya", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes", "Yara", "Zane")
LAST = ("Abbott", "Brandt", "Castillo", "Dubois", "Eriksen", "Fontaine", "Garcia", "Hale", "Ivanova", "Jensen",
        "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Patel", "Rossi", "Sato", "Tanaka", "Urquhart")
CITIES = ("Lisbon", "Oslo", "Kyoto", "Denver", "Nairobi", "Porto", "Quebec", "Tallinn")
DEPARTMENTS = ("Engineering", "Sales", "Marketing", "Finance", "Support", "Research", "Legal", "Operations",
               "Design", "Logistics")
TITLES = ("Engineer", "Analyst", "Manager", "Designer", "Technician", "Specialist")
PROJECTS = ("Apollo", "Borealis", "Cascade", "Dynamo", "Ember", "Falcon", "Glacier", "Harbor", "Ion", "Juniper",
            "Kestrel", "Lumen", "Monsoon", "Nimbus", "Orchid", "Pioneer", "Quartz", "Redwood", "Summit", "Tundra")
STATUSES = ("active", "completed", "paused")
PRODUCTS = (
    ("Atlas of Rivers", "Books"), ("Garden Cookbook", "Books"), ("Mystery Novel", "Books"),
    ("Poetry Collection", "Books"), ("Star Guide", "Books"), ("Puzzle Cube", "Toys"), ("Paper Kite", "Toys"),
    ("Toy Train", "Toys"), ("Building Blocks", "Toys"), ("Rag Doll", "Toys"), ("Chef Knife", "Kitchen"),
    ("Frying Pan", "Kitchen"), ("Tea Kettle", "Kitchen"), ("Cutting Board", "Kitchen"), ("Salad Bowl", "Kitchen"),
    ("Watering Can", "Garden"), ("Pruning Shears", "Garden"), ("Seed Pack", "Garden"), ("Garden Hose", "Garden"),
    ("Flower Pot", "Garden"), ("Headphones", "Electronics"), ("Desk Lamp", "Electronics"),
    ("USB Charger", "Electronics"), ("Alarm Clock", "Electronics"), ("Speaker", "Electronics"),
    ("Yoga Mat", "Sports"), ("Tennis Racket", "Sports"), ("Football", "Sports"), ("Jump Rope", "Sports"),
    ("Water Bottle", "Sports"),
)
COURSES = (
    ("Calculus", "Mathematics"), ("Linear Algebra", "Mathematics"), ("Statistics", "Mathematics"),
    ("Mechanics", "Physics"), ("Optics", "Physics"), ("Thermodynamics", "Physics"), ("Genetics", "Biology"),
    ("Ecology", "Biology"), ("Botany", "Biology"), ("Ancient Rome", "History"), ("Medieval Europe", "History"),
    ("Modern Asia", "History"), ("Poetry Workshop", "Literature"), ("The Novel", "Literature"),
    ("Drama", "Literature"), ("Databases", "Computing"), ("Algorithms", "Computing"), ("Networks", "Computing"),
)

SCHEMAS: dict[str, tuple[str, ...]] = {
    "company": (
        "CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL, "
        "budget INTEGER NOT NULL)",
        "CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL, department_id INTEGER NOT NULL "
        "REFERENCES departments(id), title TEXT NOT NULL, salary INTEGER NOT NULL, hire_year INTEGER NOT NULL)",
        "CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL, department_id INTEGER NOT NULL "
        "REFERENCES departments(id), budget INTEGER NOT NULL, status TEXT NOT NULL)",
    ),
    "shop": (
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL, "
        "joined_year INTEGER NOT NULL)",
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, "
        "price REAL NOT NULL)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), "
        "product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL, "
        "order_year INTEGER NOT NULL)",
    ),
    "school": (
        "CREATE TABLE students (id INTEGER PRIMARY KEY, name TEXT NOT NULL, home_city TEXT NOT NULL, "
        "year_level INTEGER NOT NULL)",
        "CREATE TABLE courses (id INTEGER PRIMARY KEY, title TEXT NOT NULL, department TEXT NOT NULL, "
        "credits INTEGER NOT NULL)",
        "CREATE TABLE enrollments (id INTEGER PRIMARY KEY, student_id INTEGER NOT NULL REFERENCES students(id), "
        "course_id INTEGER NOT NULL REFERENCES courses(id), grade INTEGER NOT NULL)",
    ),
}

Rows = dict[str, list[tuple[Any, ...]]]


def _people(rng: random.Random, n: int) -> list[str]:
    return rng.sample([f"{first} {last}" for first in FIRST for last in LAST], n)


def _company_rows(rng: random.Random) -> Rows:
    depts = rng.sample(DEPARTMENTS, 5)
    departments = [(i + 1, name, rng.choice(CITIES), rng.randrange(100, 1000) * 1000) for i, name in enumerate(depts)]
    employees = [(i + 1, name, rng.randint(1, 5), rng.choice(TITLES), rng.randrange(80, 300) * 500,
                  rng.randint(2012, 2024)) for i, name in enumerate(_people(rng, 48))]
    projects = [(i + 1, name, rng.randint(1, 5), rng.randrange(20, 500) * 1000, rng.choice(STATUSES))
                for i, name in enumerate(rng.sample(PROJECTS, 16))]
    return {"departments": departments, "employees": employees, "projects": projects}


def _shop_rows(rng: random.Random) -> Rows:
    customers = [(i + 1, name, rng.choice(CITIES[:6]), rng.randint(2018, 2023))
                 for i, name in enumerate(_people(rng, 30))]
    products = [(i + 1, name, category, rng.randint(250, 30000) / 100)
                for i, (name, category) in enumerate(rng.sample(PRODUCTS, 20))]
    orders = [(i + 1, rng.randint(1, 30), rng.randint(1, 20), rng.randint(1, 5), rng.randint(2020, 2024))
              for i in range(120)]
    return {"customers": customers, "products": products, "orders": orders}


def _school_rows(rng: random.Random) -> Rows:
    students = [(i + 1, name, rng.choice(CITIES[:5]), rng.randint(1, 4)) for i, name in enumerate(_people(rng, 36))]
    courses = [(i + 1, title, dept, rng.randint(2, 6)) for i, (title, dept) in enumerate(rng.sample(COURSES, 12))]
    enrollments: list[tuple[Any, ...]] = []
    for student_id in range(1, 37):
        for course_id in sorted(rng.sample(range(1, 13), rng.randint(2, 5))):
            enrollments.append((len(enrollments) + 1, student_id, course_id, rng.randint(40, 100)))
    return {"students": students, "courses": courses, "enrollments": enrollments}


_ROWS: dict[str, Callable[[random.Random], Rows]] = {
    "company": _company_rows, "shop": _shop_rows, "school": _school_rows,
}

# --------------------------------------------------------------------------------------------------
# Databases


@dataclass(frozen=True)
class Database:
    family: str
    db_seed: int
    image: bytes
    schema: str
    values: Mapping[str, tuple[Any, ...]]

    def connect(self) -> sqlite3.Connection:
        """A private, read-only, in-memory copy of this database."""
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.deserialize(self.image)
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_TEXT_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS * 2)
        conn.set_authorizer(_authorize)
        return conn


_VALUE_QUERIES: dict[str, dict[str, str]] = {
    "company": {
        "department": "SELECT name FROM departments", "title": "SELECT DISTINCT title FROM employees",
        "year": "SELECT DISTINCT hire_year FROM employees", "city": "SELECT DISTINCT city FROM departments",
        "status": "SELECT DISTINCT status FROM projects",
    },
    "shop": {
        "category": "SELECT DISTINCT category FROM products", "city": "SELECT DISTINCT city FROM customers",
        "year": "SELECT DISTINCT order_year FROM orders", "product": "SELECT name FROM products",
    },
    "school": {
        "course": "SELECT title FROM courses", "department": "SELECT DISTINCT department FROM courses",
        "student": "SELECT name FROM students", "city": "SELECT DISTINCT home_city FROM students",
        "level": "SELECT DISTINCT year_level FROM students",
    },
}


@lru_cache(maxsize=64)
def database(family: str, db_seed: int) -> Database:
    """The database of ``family`` drawn from ``db_seed`` (built once per process, then copied)."""
    if family not in _ROWS:
        raise EnvError(f"sql: unknown database family '{family}'; known: {', '.join(FAMILIES)}", env="sql")
    rows = _ROWS[family](random.Random(f"sql-db:{family}:{db_seed}"))
    conn = sqlite3.connect(":memory:")
    try:
        for statement in SCHEMAS[family]:
            conn.execute(statement)
        for table, table_rows in rows.items():
            marks = ", ".join("?" * len(table_rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
        conn.commit()
        values = {name: tuple(sorted(r[0] for r in conn.execute(sql)))
                  for name, sql in _VALUE_QUERIES[family].items()}
        image = conn.serialize()
    finally:
        conn.close()
    schema = ";\n".join(SCHEMAS[family]) + ";"
    return Database(family=family, db_seed=db_seed, image=image, schema=schema, values=values)


_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                           "foreign_key_list"})
_ALLOWED = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                      sqlite3.SQLITE_RECURSIVE})


def _authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 is not None and arg1.lower() in _READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


class QueryStopped(Exception):
    """A query ran past its time or step budget (internal; becomes an observation)."""


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    more: bool


def run_query(conn: sqlite3.Connection, sql: str, *, max_rows: int, timeout: float, max_ops: int) -> QueryResult:
    """Run one statement under a time and step budget; raise ``sqlite3.Error`` or :class:`QueryStopped`."""
    deadline = time.monotonic() + timeout
    ticks = 0
    limit = max(1, max_ops // _OPS_PER_TICK)
    stopped = False

    def progress() -> int:
        nonlocal ticks, stopped
        ticks += 1
        stopped = ticks > limit or time.monotonic() > deadline
        return int(stopped)

    conn.set_progress_handler(progress, _OPS_PER_TICK)
    try:
        cursor = conn.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)
        columns = tuple(d[0] for d in cursor.description or ())
        cursor.close()
    except sqlite3.OperationalError as exc:
        if stopped:
            raise QueryStopped(str(exc)) from exc
        raise
    finally:
        conn.set_progress_handler(None, 0)
    return QueryResult(columns=columns, rows=tuple(rows[:max_rows]), more=len(rows) > max_rows)


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 3] + "..."


def render(result: QueryResult) -> str:
    if not result.columns:
        return "The statement returned no result set."
    if not result.rows:
        return " | ".join(result.columns) + "\n(no rows)"
    lines = [" | ".join(result.columns), *(" | ".join(_cell(v) for v in row) for row in result.rows)]
    n = len(result.rows)
    tail = f"(first {n} rows shown; there are more)" if result.more else f"({n} row{'s' if n != 1 else ''})"
    return "\n".join(lines) + "\n" + tail


# --------------------------------------------------------------------------------------------------
# Question templates


def _q(value: Any) -> str:
    """A SQL literal."""
    return str(value) if isinstance(value, int | float) else "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Template:
    """A question family: ``kind`` is ``scalar`` (one value), ``argmax`` (the first column of the top row,
    whose second column must beat the runner-up's) or ``list`` (the first column of every row)."""

    key: str
    family: str
    kind: str
    question: str
    sql: str
    slots: tuple[str, ...]


_EMP_DEPT = "employees e JOIN departments d ON d.id = e.department_id"
_ORDER_ALL = "orders o JOIN customers c ON c.id = o.customer_id JOIN products p ON p.id = o.product_id"
_ENROLL = "enrollments x JOIN students s ON s.id = x.student_id JOIN courses c ON c.id = x.course_id"
ROUND = "Round to 2 decimal places."

TEMPLATES: tuple[Template, ...] = (
    Template("c-count-dept", "company", "scalar", "How many employees work in the {department} department?",
             f"SELECT COUNT(*) FROM {_EMP_DEPT} WHERE d.name = {{department}}", ("department",)),
    Template("c-avg-salary", "company", "scalar",
             f"What is the average salary of employees in the {{department}} department? {ROUND}",
             f"SELECT ROUND(AVG(e.salary), 2) FROM {_EMP_DEPT} WHERE d.name = {{department}}", ("department",)),
    Template("c-top-paid", "company", "argmax", "Who is the highest-paid employee in the {department} department?",
             f"SELECT e.name, e.salary FROM {_EMP_DEPT} WHERE d.name = {{department}} "
             "ORDER BY e.salary DESC LIMIT 2", ("department",)),
    Template("c-hired-after", "company", "scalar", "How many employees were hired after {year} (not in {year})?",
             "SELECT COUNT(*) FROM employees WHERE hire_year > {year}", ("year",)),
    Template("c-biggest-dept", "company", "argmax", "Which department has the most employees?",
             f"SELECT d.name, COUNT(*) AS n FROM {_EMP_DEPT} GROUP BY d.id ORDER BY n DESC LIMIT 2", ()),
    Template("c-title-payroll", "company", "scalar",
             "What is the total salary of all employees whose title is {title}?",
             "SELECT SUM(salary) FROM employees WHERE title = {title}", ("title",)),
    Template("c-hired-list", "company", "list",
             "List the names of the employees of the {department} department hired in {year}.",
             f"SELECT e.name FROM {_EMP_DEPT} WHERE d.name = {{department}} AND e.hire_year = {{year}} "
             "ORDER BY e.name", ("department", "year")),
    Template("c-project-budget", "company", "scalar",
             "What is the total budget of the {status} projects of the {department} department?",
             "SELECT SUM(p.budget) FROM projects p JOIN departments d ON d.id = p.department_id "
             "WHERE d.name = {department} AND p.status = {status}", ("status", "department")),
    Template("c-title-city", "company", "scalar",
             "How many employees with the title {title} work in departments located in {city}?",
             f"SELECT COUNT(*) FROM {_EMP_DEPT} WHERE e.title = {{title}} AND d.city = {{city}}", ("title", "city")),
    Template("c-richest-projects", "company", "argmax",
             "Which department has the largest total budget across its projects?",
             "SELECT d.name, SUM(p.budget) AS total FROM projects p JOIN departments d ON d.id = p.department_id "
             "GROUP BY d.id ORDER BY total DESC LIMIT 2", ()),
    Template("s-orders-year", "shop", "scalar", "How many orders were placed in {year}?",
             "SELECT COUNT(*) FROM orders WHERE order_year = {year}", ("year",)),
    Template("s-quantity-category", "shop", "scalar",
             "What is the total quantity ordered of products in the {category} category?",
             "SELECT SUM(o.quantity) FROM orders o JOIN products p ON p.id = o.product_id "
             "WHERE p.category = {category}", ("category",)),
    Template("s-priciest", "shop", "argmax", "What is the most expensive product in the {category} category?",
             "SELECT name, price FROM products WHERE category = {category} ORDER BY price DESC LIMIT 2",
             ("category",)),
    Template("s-customers-city", "shop", "scalar", "How many customers live in {city}?",
             "SELECT COUNT(*) FROM customers WHERE city = {city}", ("city",)),
    Template("s-revenue-city", "shop", "scalar",
             f"What is the total revenue (price times quantity) of orders by customers from {{city}}? {ROUND}",
             f"SELECT ROUND(SUM(p.price * o.quantity), 2) FROM {_ORDER_ALL} WHERE c.city = {{city}}", ("city",)),
    Template("s-top-customer", "shop", "argmax", "Which customer placed the most orders?",
             "SELECT c.name, COUNT(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id "
             "GROUP BY c.id ORDER BY n DESC LIMIT 2", ()),
    Template("s-avg-price", "shop", "scalar",
             f"What is the average price of products in the {{category}} category? {ROUND}",
             "SELECT ROUND(AVG(price), 2) FROM products WHERE category = {category}", ("category",)),
    Template("s-buyers", "shop", "scalar", "How many different customers ordered the product '{product}'?",
             "SELECT COUNT(DISTINCT o.customer_id) FROM orders o JOIN products p ON p.id = o.product_id "
             "WHERE p.name = {product}", ("product",)),
    Template("s-category-list", "shop", "list", "List the names of the products in the {category} category.",
             "SELECT name FROM products WHERE category = {category} ORDER BY name", ("category",)),
    Template("s-top-city-year", "shop", "argmax",
             "Customers from which city spent the most money (price times quantity) on orders placed in {year}?",
             f"SELECT c.city, SUM(p.price * o.quantity) AS spent FROM {_ORDER_ALL} WHERE o.order_year = {{year}} "
             "GROUP BY c.city ORDER BY spent DESC LIMIT 2", ("year",)),
    Template("e-enrolled", "school", "scalar", "How many students are enrolled in {course}?",
             "SELECT COUNT(*) FROM enrollments x JOIN courses c ON c.id = x.course_id WHERE c.title = {course}",
             ("course",)),
    Template("e-avg-grade", "school", "scalar", f"What is the average grade in {{course}}? {ROUND}",
             "SELECT ROUND(AVG(x.grade), 2) FROM enrollments x JOIN courses c ON c.id = x.course_id "
             "WHERE c.title = {course}", ("course",)),
    Template("e-top-student", "school", "argmax", "Which student got the highest grade in {course}?",
             f"SELECT s.name, x.grade FROM {_ENROLL} WHERE c.title = {{course}} ORDER BY x.grade DESC LIMIT 2",
             ("course",)),
    Template("e-dept-courses", "school", "scalar", "How many courses does the {department} department offer?",
             "SELECT COUNT(*) FROM courses WHERE department = {department}", ("department",)),
    Template("e-struggling", "school", "scalar",
             "How many students in year level {level} have at least one grade below 60?",
             "SELECT COUNT(DISTINCT s.id) FROM enrollments x JOIN students s ON s.id = x.student_id "
             "WHERE s.year_level = {level} AND x.grade < 60", ("level",)),
    Template("e-credits", "school", "scalar", "What is the total number of credits of the courses {student} takes?",
             f"SELECT SUM(c.credits) FROM {_ENROLL} WHERE s.name = {{student}}", ("student",)),
    Template("e-course-list", "school", "list", "List the titles of the courses {student} is enrolled in.",
             f"SELECT c.title FROM {_ENROLL} WHERE s.name = {{student}} ORDER BY c.title", ("student",)),
    Template("e-best-course", "school", "argmax", "Which course has the highest average grade?",
             "SELECT c.title, AVG(x.grade) AS g FROM enrollments x JOIN courses c ON c.id = x.course_id "
             "GROUP BY c.id ORDER BY g DESC LIMIT 2", ()),
    Template("e-city-level", "school", "scalar", "How many students from {city} are in year level {level}?",
             "SELECT COUNT(*) FROM students WHERE home_city = {city} AND year_level = {level}", ("city", "level")),
)


def gold_answer(kind: str, rows: Sequence[tuple[Any, ...]]) -> Any:
    """The answer a template's result rows give, or None when they make a poor question (empty, zero, a tie)."""
    if kind == "scalar":
        value = rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 else None
        return None if value in (None, 0) else value
    if kind == "argmax":
        if not rows or (len(rows) > 1 and rows[0][1] == rows[1][1]):
            return None
        return rows[0][0]
    names = [str(r[0]) for r in rows]
    return sorted(names) if 1 <= len(names) <= 6 and len(set(names)) == len(names) else None


def format_answer(answer: Any) -> str:
    """How the gold answer is written in an ``answer:`` action."""
    if isinstance(answer, list):
        return ", ".join(answer)
    return str(answer)


# --------------------------------------------------------------------------------------------------
# Matching answers

_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def _norm(text: str) -> str:
    return " ".join(text.strip().strip(" \t\"'`()[]{}.,;:!").casefold().split())


def _number(text: str) -> float | None:
    cleaned = _norm(text).replace(",", "").replace("$", "").replace("%", "").strip()
    return float(cleaned) if _NUMBER.match(cleaned) else None


def answer_matches(given: str, gold: Any) -> bool:
    """Whether an agent's answer matches the gold one: numbers within rounding, text case-insensitively,
    lists as sets in any order."""
    if isinstance(gold, list):
        parts = [p for p in (_norm(x) for x in re.split(r"[,;\n]|\band\b", given.strip().strip("[]()"))) if p]
        return sorted(set(parts)) == sorted({_norm(str(g)) for g in gold}) and len(parts) == len(set(parts))
    if isinstance(gold, bool) or not isinstance(gold, int | float):
        return _norm(given) == _norm(str(gold))
    value = _number(given)
    if value is None:
        return False
    tolerance = 1e-9 if isinstance(gold, int) else 0.005 + 1e-9
    return abs(value - float(gold)) <= tolerance


# --------------------------------------------------------------------------------------------------
# Sessions and the environment

_QUERY = re.compile(r"^(?:query|sql)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
_ANSWER = re.compile(r"^answer\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"```(?:sql)?\s*(.*?)```", re.IGNORECASE | re.DOTALL)


def parse_action(action: str) -> tuple[str, str] | None:
    """``("query", sql)``, ``("answer", value)`` or None. A bare ```sql fenced block is a query."""
    text = re.sub(r"^\s*action\s*:\s*", "", action.strip(), flags=re.IGNORECASE).strip()
    if match := _ANSWER.match(text):
        return "answer", match.group(1).strip()
    if match := _QUERY.match(text):
        body = match.group(1).strip()
        fenced = _FENCE.search(body)
        return "query", (fenced.group(1) if fenced else body).strip().strip("`").strip()
    if fenced := _FENCE.search(text):
        return "query", fenced.group(1).strip()
    return None


class SqlSession(LocalSession):
    env: SqlEnv

    def __init__(self, env: SqlEnv) -> None:
        super().__init__(env)
        self.conn: sqlite3.Connection | None = None

    def _reset(self, task: Task) -> Observation:
        self._close_db()
        db = database(str(task.meta["family"]), int(task.meta["db_seed"]))
        self.conn = db.connect()
        self.queries = 0
        self.fields = {"question": task.inputs["question"], "schema": db.schema}
        text = (f"You can query a SQLite database to answer a question.\nDatabase schema:\n{db.schema}\n\n"
                f"Question: {task.inputs['question']}\n\n{_FORMATS}")
        return Observation(text=text, fields=self.fields)

    def _observation(self, text: str) -> Observation:
        return Observation(text=text, fields=self.fields)

    def _step(self, action: str) -> StepResult:
        parsed = parse_action(action)
        if parsed is None or not parsed[1]:
            shown = action.strip()[:60]
            return self._result(f"Invalid action '{shown}'. {_FORMATS}", invalid=True)
        verb, body = parsed
        if verb == "answer":
            assert self.task is not None
            correct = answer_matches(body, self.task.answer)
            text = "Your answer is correct." if correct else "Your answer is wrong."
            info = {"correct": correct, "queries": self.queries}
            feedback = (f"answer {body!r} is {'correct' if correct else 'wrong'} after {self.queries} "
                        f"quer{'y' if self.queries == 1 else 'ies'}")
            return StepResult(observation=self._observation(text), reward=1.0 if correct else 0.0, done=True,
                              info=info, feedback=feedback)
        return self._result(self._query(body))

    def _query(self, sql: str) -> str:
        if len(sql) > MAX_SQL_CHARS:
            return f"Query refused: it is longer than {MAX_SQL_CHARS} characters."
        assert self.conn is not None
        self.queries += 1
        env = self.env
        try:
            result = run_query(self.conn, sql, max_rows=env.max_rows, timeout=env.query_timeout,
                               max_ops=env.max_ops)
        except QueryStopped:
            return (f"Query stopped: it ran past the limit ({env.query_timeout:g} s or {env.max_ops} steps). "
                    "Write a simpler query.")
        except sqlite3.Error as exc:
            message = str(exc)
            if any(word in message for word in ("not authorized", "authorization denied", "readonly")):
                return ("Query refused: the database is read-only; only SELECT statements "
                        "(and PRAGMA table_info(<table>)) may run.")
            return f"SQL error: {message}"
        return render(result)

    def _result(self, text: str, *, invalid: bool = False) -> StepResult:
        return StepResult(observation=self._observation(text), reward=0.0, done=False,
                          info={"invalid": True} if invalid else {})

    def _close_db(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self._close_db()
        super().close()


class SqlEnv(Environment):
    """Questions over generated SQLite databases (``dbs_per_family`` databases of each family)."""

    name = "sql"
    instruction = _INSTRUCTION
    multi_turn = True
    max_steps = 12
    # Gold data: the task's answer and its ``meta["gold_sql"]``; never in evidence, even if info carries it.
    secret_fields = frozenset({"answer", "gold_sql"})

    def __init__(self, num_tasks: int = 300, seed: int = 0, splits: Mapping[str, float | int] | None = None,
                 *, dbs_per_family: int = 4, families: Sequence[str] = FAMILIES, max_rows: int = 20,
                 query_timeout: float = 1.0, max_ops: int = 5_000_000) -> None:
        unknown = sorted(set(families) - set(FAMILIES))
        if unknown or not families:
            raise EnvError(f"sql: unknown families {unknown}; known: {', '.join(FAMILIES)}", env=self.name)
        if num_tasks < 1 or dbs_per_family < 1 or max_rows < 1 or query_timeout <= 0 or max_ops < 1:
            raise EnvError("sql: num_tasks, dbs_per_family, max_rows, query_timeout and max_ops must be positive",
                           env=self.name)
        self.seed = seed
        self.max_rows = max_rows
        self.query_timeout = float(query_timeout)
        self.max_ops = max_ops
        super().__init__(_make_tasks(num_tasks, seed, tuple(families), dbs_per_family, splits))

    def session(self) -> SqlSession:
        return SqlSession(self)


def _db_seed(seed: int, family: str, variant: int) -> int:
    return random.Random(f"sql:{seed}:{family}:{variant}").getrandbits(31)


def _draw(rng: random.Random, db: Database, template: Template) -> tuple[str, str, Any] | None:
    params = {slot: rng.choice(db.values[slot]) for slot in template.slots}
    question = template.question.format(**params)
    sql = template.sql.format(**{k: _q(v) for k, v in params.items()})
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(db.image)
        rows = conn.execute(sql).fetchall()
    finally:
        conn.close()
    answer = gold_answer(template.kind, rows)
    return None if answer is None else (question, sql, answer)


def _make_tasks(num_tasks: int, seed: int, families: tuple[str, ...], dbs_per_family: int,
                splits: Mapping[str, float | int] | None) -> list[Task]:
    rng = random.Random(f"sql:{seed}")
    dbs = [database(f, _db_seed(seed, f, v)) for f in families for v in range(dbs_per_family)]
    by_family = {f: [t for t in TEMPLATES if t.family == f] for f in families}
    seen: set[tuple[str, int, str]] = set()
    made: list[tuple[Database, Template, str, str, Any]] = []
    attempts = 0
    while len(made) < num_tasks:
        attempts += 1
        if attempts > 50 * num_tasks + 200:
            raise EnvError(f"sql: could only make {len(made)} distinct questions of {num_tasks}; "
                           "raise dbs_per_family", env="sql")
        db = rng.choice(dbs)
        template = rng.choice(by_family[db.family])
        drawn = _draw(rng, db, template)
        if drawn is None or (db.family, db.db_seed, drawn[0]) in seen:
            continue
        seen.add((db.family, db.db_seed, drawn[0]))
        made.append((db, template, *drawn))
    ids = [f"sql-{i:04d}" for i in range(num_tasks)]
    split_of = assign_splits(ids, splits, seed)
    return [Task(id=task_id, split=split_of[task_id], inputs={"question": question}, answer=answer,
                 meta={"family": db.family, "db_seed": db.db_seed, "template": template.key, "kind": template.kind,
                       "gold_sql": sql})
            for task_id, (db, template, question, sql, answer) in zip(ids, made, strict=True)]
