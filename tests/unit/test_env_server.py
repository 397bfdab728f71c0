"""The environment server: the AgentGym textcraft dialect, strict 4xx JSON errors, concurrent
sessions, expiry and the session cap, on a real uvicorn bound to loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from agentforge.envs.base import SPLITS, Environment, LocalSession, Observation, StepResult, Task
from agentforge.envs.remote.server import PROTOCOL, ServerThread, create_app, running_server, serve_in_thread
from agentforge.errors import EnvError

GOLD = "the-gold-answer-42"


class CounterSession(LocalSession):
    """reset gives "count 0"; "inc" counts up; done (reward 1) at the task's target."""

    env: CounterEnv

    def _reset(self, task: Task) -> Observation:
        self.count = 0
        return Observation(text="count 0", available_actions=("inc", "noop"), fields={"target": task.inputs["target"]})

    def _step(self, action: str) -> StepResult:
        if action == "explode":
            raise EnvError("counter: the action 'explode' is not allowed here")
        if action == "crash":
            raise RuntimeError("a bug in the environment")
        self.env.steps += 1
        if action == "inc":
            self.count += 1
        assert self.task is not None
        done = self.count >= self.task.inputs["target"]
        return StepResult(observation=Observation(text=f"count {self.count}"), reward=1.0 if done else 0.0,
                          done=done, info={"gold": GOLD})

    def close(self) -> None:
        self.env.closed += 1
        super().close()


class CounterEnv(Environment):
    name = "counter"
    instruction = "Say inc until the count reaches the target."
    multi_turn = True
    max_steps = 10

    def __init__(self, n: int = 6) -> None:
        super().__init__([Task(id=f"c{i}", split=SPLITS[i % 3], inputs={"target": 1 + i % 4}, answer=GOLD)
                          for i in range(n)])
        self.closed = 0
        self.steps = 0

    def session(self) -> CounterSession:
        return CounterSession(self)


@pytest.fixture(scope="module")
def counter_server() -> Iterator[tuple[str, CounterEnv]]:
    """One server for the module's protocol tests (it runs in its own thread and event loop)."""
    env = CounterEnv()
    with serve_in_thread(env) as url:
        yield url, env


@pytest.fixture
async def http(counter_server: tuple[str, CounterEnv]) -> AsyncIterator[httpx.AsyncClient]:
    url, _ = counter_server
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        yield client


async def _new(http: httpx.AsyncClient, data_idx: int | None = 0) -> int:
    created = await http.post("/create", json={})
    assert created.status_code == 200
    sid = created.json()["id"]
    if data_idx is not None:
        assert (await http.post("/reset", json={"id": sid, "data_idx": data_idx})).status_code == 200
    return sid


def _assert_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert fragment.lower() in body["error"].lower(), body["error"]


async def test_loopback_only_and_health(counter_server: tuple[str, CounterEnv], http: httpx.AsyncClient) -> None:
    url, _ = counter_server
    assert url.startswith("http://127.0.0.1:")
    health = await http.get("/")
    assert health.status_code == 200 and "counter" in health.json()


async def test_info_and_tasks(http: httpx.AsyncClient) -> None:
    info = (await http.get("/info")).json()
    assert info["name"] == "counter" and info["multi_turn"] is True and info["max_steps"] == 10
    assert info["num_tasks"] == 6 and info["splits"] == {"train": 2, "val": 2, "test": 2}
    assert info["instruction"].startswith("Say inc") and info["protocol"] == PROTOCOL
    listing = (await http.get("/tasks")).json()
    assert listing["count"] == 6
    assert [t["data_idx"] for t in listing["tasks"]] == list(range(6))
    assert listing["tasks"][1] == {"data_idx": 1, "id": "c1", "split": "val", "inputs": {"target": 2}}
    val = (await http.get("/tasks", params={"split": "val"})).json()
    assert [t["id"] for t in val["tasks"]] == ["c1", "c4"]
    assert GOLD not in (await http.get("/tasks")).text  # answers stay on the server
    _assert_error(await http.get("/tasks", params={"split": "dev"}), 422, "unknown split")
    _assert_error(await http.get("/tasks", params={"page": "2"}), 422, "unexpected query")


async def test_full_episode_in_the_textcraft_shape(http: httpx.AsyncClient) -> None:
    created = (await http.post("/create", json={})).json()
    assert set(created) == {"id", "observation", "done", "reward"} and created["done"] is False
    sid = created["id"]
    reset = (await http.post("/reset", json={"id": sid, "data_idx": 2})).json()
    assert reset == {"id": sid, "task_id": "c2", "observation": "count 0", "reward": 0, "done": False,
                     "available_actions": ["inc", "noop"], "fields": {"target": 3}}
    assert (await http.get("/observation", params={"id": sid})).json() == "count 0"
    for expected in (1, 2):
        step = (await http.post("/step", json={"id": sid, "action": "inc"})).json()
        assert step == {"observation": f"count {expected}", "reward": 0.0, "done": False}
    noop = (await http.post("/step", json={"id": sid, "action": "noop"})).json()
    assert noop["observation"] == "count 2"
    last = await http.post("/step", json={"id": sid, "action": "inc"})
    assert last.json() == {"observation": "count 3", "reward": 1.0, "done": True}
    assert GOLD not in last.text and "info" not in last.json()  # a step's info never leaves the server
    assert (await http.get("/observation", params={"id": sid})).json() == "count 3"
    # reset by task id (extension), then play again in the same instance
    again = (await http.post("/reset", json={"id": sid, "task_id": "c0"})).json()
    assert again["task_id"] == "c0" and again["observation"] == "count 0"
    assert (await http.post("/step", json={"id": sid, "action": "inc"})).json()["done"] is True
    closed = await http.post("/close", json={"id": sid})
    assert closed.status_code == 200 and closed.json() is True


async def test_create_accepts_no_body(http: httpx.AsyncClient) -> None:
    created = await http.post("/create")
    assert created.status_code == 200 and isinstance(created.json()["id"], int)


async def _done_session(http: httpx.AsyncClient) -> int:
    sid = await _new(http, data_idx=0)  # target 1
    assert (await http.post("/step", json={"id": sid, "action": "inc"})).json()["done"] is True
    return sid


ERROR_CASES: list[tuple[str, str, str, Any, int, str]] = [
    # (case, method, path, body (or raw bytes), status, message fragment); "SID" is a reset session,
    # "NEW" a created one without a task, "DONE" one whose episode finished.
    ("reset unknown id", "POST", "/reset", {"id": 999, "data_idx": 0}, 404, "unknown session id 999"),
    ("step unknown id", "POST", "/step", {"id": 999, "action": "inc"}, 404, "unknown session id"),
    ("close unknown id", "POST", "/close", {"id": 999}, 404, "unknown session id"),
    ("observation unknown id", "GET", "/observation?id=999", None, 404, "unknown session id"),
    ("reset missing id", "POST", "/reset", {"data_idx": 0}, 422, "missing field(s): id"),
    ("reset extra field", "POST", "/reset", {"id": "SID", "data_idx": 0, "seed": 1}, 422, "unexpected field(s): seed"),
    ("reset both task fields", "POST", "/reset", {"id": "SID", "data_idx": 0, "task_id": "c0"}, 422, "exactly one"),
    ("reset no task field", "POST", "/reset", {"id": "SID"}, 422, "exactly one"),
    ("reset data_idx too big", "POST", "/reset", {"id": "SID", "data_idx": 6}, 404, "unknown data_idx 6"),
    ("reset data_idx negative", "POST", "/reset", {"id": "SID", "data_idx": -1}, 404, "unknown data_idx -1"),
    ("reset data_idx a string", "POST", "/reset", {"id": "SID", "data_idx": "1"}, 422, "'data_idx' must be an integer"),
    ("reset data_idx a bool", "POST", "/reset", {"id": "SID", "data_idx": True}, 422, "must be an integer"),
    ("reset unknown task_id", "POST", "/reset", {"id": "SID", "task_id": "nope"}, 404, "unknown task_id 'nope'"),
    ("reset task_id not text", "POST", "/reset", {"id": "SID", "task_id": 3}, 422, "'task_id' must be a string"),
    ("id a string", "POST", "/step", {"id": "0", "action": "inc"}, 422, "'id' must be an integer"),
    ("step missing action", "POST", "/step", {"id": "SID"}, 422, "missing field(s): action"),
    ("step extra field", "POST", "/step", {"id": "SID", "action": "inc", "x": 1}, 422, "unexpected field(s): x"),
    ("action a number", "POST", "/step", {"id": "SID", "action": 3}, 422, "'action' must be a string"),
    ("action null", "POST", "/step", {"id": "SID", "action": None}, 422, "'action' must be a string"),
    ("action a list", "POST", "/step", {"id": "SID", "action": ["inc"]}, 422, "'action' must be a string"),
    ("oversize action", "POST", "/step", {"id": "SID", "action": "x" * 4097}, 413, "limit is 4096"),
    ("step before reset", "POST", "/step", {"id": "NEW", "action": "inc"}, 409, "reset first"),
    ("observation before reset", "GET", "/observation?id=NEW", None, 409, "reset first"),
    ("step after done", "POST", "/step", {"id": "DONE", "action": "inc"}, 409, "has finished"),
    ("env refuses the action", "POST", "/step", {"id": "SID", "action": "explode"}, 422, "not allowed"),
    ("body not JSON", "POST", "/step", b"{not json", 400, "not valid JSON"),
    ("body not UTF-8", "POST", "/step", b"\xff\xfe", 400, "not valid JSON"),
    ("body a JSON array", "POST", "/reset", [1, 2], 422, "must be a JSON object"),
    ("body empty", "POST", "/reset", b"", 422, "needs a JSON object"),
    ("create extra field", "POST", "/create", {"minecraft_dir": "x"}, 422, "unexpected field(s): minecraft_dir"),
    ("observation no id", "GET", "/observation", None, 422, "missing query parameter: id"),
    ("observation id not int", "GET", "/observation?id=abc", None, 422, "must be an integer"),
    ("observation extra param", "GET", "/observation?id=0&x=1", None, 422, "unexpected query"),
    ("unknown path", "GET", "/createEnv", None, 404, "not found"),
    ("wrong method", "GET", "/step", None, 405, "method not allowed"),
    ("body too large", "POST", "/step", b"{" + b" " * 40_000 + b"}", 413, "over the limit"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"),
                         [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES])
async def test_application_errors_are_4xx_json(http: httpx.AsyncClient, method: str, path: str, body: Any,
                                               status: int, fragment: str) -> None:
    ids = {"SID": await _new(http, data_idx=3), "NEW": await _new(http, data_idx=None),
           "DONE": await _done_session(http)}
    for marker, sid in ids.items():
        path = path.replace(f"={marker}", f"={sid}")
    if isinstance(body, dict):
        body = {k: ids.get(v, v) if isinstance(v, str) and k == "id" else v for k, v in body.items()}
    if isinstance(body, bytes):
        response = await http.request(method, path, content=body, headers={"content-type": "application/json"})
    elif body is None:
        response = await http.request(method, path)
    else:
        response = await http.request(method, path, json=body)
    _assert_error(response, status, fragment)
    # the server is still healthy and the reset session still plays
    assert (await http.post("/step", json={"id": ids["SID"], "action": "inc"})).status_code == 200


async def test_close_twice_and_use_after_close(http: httpx.AsyncClient) -> None:
    sid = await _new(http)
    assert (await http.post("/close", json={"id": sid})).json() is True
    _assert_error(await http.post("/close", json={"id": sid}), 404, "closed or expired")
    _assert_error(await http.post("/step", json={"id": sid, "action": "inc"}), 404, "closed or expired")


async def test_an_environment_bug_is_a_500_with_json() -> None:
    env = CounterEnv()
    async with running_server(env) as url, httpx.AsyncClient(base_url=url, timeout=5) as http:
        sid = await _new(http)
        _assert_error(await http.post("/step", json={"id": sid, "action": "crash"}), 500, "RuntimeError")
        assert (await http.get("/")).status_code == 200


async def test_many_concurrent_sessions_play_independently(http: httpx.AsyncClient) -> None:
    async def episode(i: int) -> tuple[int, int, float]:
        sid = (await http.post("/create", json={})).json()["id"]
        await http.post("/reset", json={"id": sid, "data_idx": i % 6})
        steps = 0
        while True:
            steps += 1
            step = (await http.post("/step", json={"id": sid, "action": "inc"})).json()
            if step["done"]:
                assert (await http.post("/close", json={"id": sid})).json() is True
                return i, steps, step["reward"]
            assert steps < 10

    results = await asyncio.gather(*(episode(i) for i in range(32)))
    for i, steps, reward in results:
        assert steps == 1 + (i % 6) % 4 and reward == 1.0


async def test_idle_sessions_expire() -> None:
    env = CounterEnv()
    async with running_server(env, session_ttl=0.2) as url, httpx.AsyncClient(base_url=url, timeout=5) as http:
        idle = await _new(http)
        busy = await _new(http, data_idx=3)
        for _ in range(4):  # busy keeps itself alive by stepping
            await asyncio.sleep(0.08)
            assert (await http.post("/step", json={"id": busy, "action": "noop"})).status_code == 200
        _assert_error(await http.post("/step", json={"id": idle, "action": "inc"}), 404, "expired")
        assert env.closed >= 1  # an expired session is closed on the server


async def test_session_cap_then_room_after_close_or_expiry() -> None:
    env = CounterEnv()
    async with running_server(env, max_sessions=2, session_ttl=0.3) as url, \
            httpx.AsyncClient(base_url=url, timeout=5) as http:
        first = await _new(http)
        await _new(http)
        refused = await http.post("/create", json={})
        _assert_error(refused, 429, "too many live sessions")
        await http.post("/close", json={"id": first})
        third = await http.post("/create", json={})
        assert third.status_code == 200
        _assert_error(await http.post("/create", json={}), 429, "cap is 2")
        await asyncio.sleep(0.4)  # both live sessions expire: room again
        assert (await http.post("/create", json={})).status_code == 200


async def test_shutdown_closes_live_sessions() -> None:
    env = CounterEnv()
    async with running_server(env) as url, httpx.AsyncClient(base_url=url, timeout=5) as http:
        for _ in range(3):
            await _new(http)
    assert env.closed == 3


def test_serve_in_thread_for_blocking_clients() -> None:
    env = CounterEnv()
    with serve_in_thread(env, max_action_chars=5) as url, httpx.Client(base_url=url, timeout=5) as http:
        sid = http.post("/create").json()["id"]
        http.post("/reset", json={"id": sid, "task_id": "c0"})
        assert http.post("/step", json={"id": sid, "action": "inc"}).json()["done"] is True
        _assert_error(http.post("/step", json={"id": sid, "action": "toolong"}), 413, "limit is 5")


def test_limits_are_validated() -> None:
    with pytest.raises(EnvError, match="must be positive"):
        create_app(CounterEnv(), session_ttl=0)
    with pytest.raises(EnvError, match="only apply when serving an Environment"):
        ServerThread(create_app(CounterEnv()), session_ttl=5)


def test_server_thread_stops_promptly() -> None:
    server = ServerThread(CounterEnv())
    url = server.start()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/", timeout=1)
