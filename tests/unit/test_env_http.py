"""The HTTP environment client: against our own server, against servers that misbehave, and against
fake servers speaking each AgentGym dialect (AGENTGYM.md), all on loopback and started here."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agentforge.envs.base import Environment
from agentforge.envs.remote import actions
from agentforge.envs.remote.client import RemoteEnv, RemoteSession
from agentforge.envs.remote.profiles import PROFILES, Profile, get_profile
from agentforge.envs.remote.server import running_server, serve_in_thread
from agentforge.errors import EnvError, EnvServerError
from tests.unit.sample_workflows import POLICY
from tests.unit.test_env_server import GOLD, CounterEnv

FAST = {"timeout": 2.0, "retries": 2, "backoff": 0.01}


# -- action adapters ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Thought: I need wood.\n\nAction:\nget 1 oak log.", "get 1 oak log"),
    ("Thought: x\nAction: craft 1 blue dye using 1 lapis_lazuli!", "craft 1 blue dye using 1 lapislazuli"),
    ("Action: inventory</s>", "inventory"),
    ("get  2\n stick", "get 2 stick"),  # no Action: the whole reply, whitespace collapsed
])
def test_react_strict_extracts_and_cleans(text: str, expected: str) -> None:
    assert actions.react_strict(text) == actions.ParsedAction(expected)


def test_react_strict_rejects_two_actions() -> None:
    parsed = actions.react_strict("Action: get 1 stick\nThought: also\nAction: inventory")
    assert parsed.rejected and parsed.action is None and "Only one 'Action'" in parsed.feedback


@pytest.mark.parametrize(("adapter", "text", "expected"), [
    ("react_first", "Thought: t\nAction: look around\n", "look around"),
    ("react_first", "Action: a\nAction: b", "a"),
    ("react_first", "search[red shoes]", "search[red shoes]"),
    ("maze", "Thought: go\nAction: up", "move up"),
    ("maze", "Action:\nmove left", "move left"),
    ("wordle", "Thought: try\n\nAction:\nCrane", "c r a n e"),
    ("wordle", "Action: s h i r e", "s h i r e"),
    ("sql_block", "Thought: count\n\nAction: ```sql\nSELECT COUNT(*) FROM t;\n```", "SELECT COUNT(*) FROM t;"),
    ("sql_block", "SELECT 1", "SELECT 1"),
    ("plain", "  inc \n", "inc"),
    ("plain", "Thought: count up\nAction: inc\n", "inc"),
    ("plain", "Thought: count up\nAction:\n\n  inc\n", "inc"),
    ("plain", "The word Action: appears mid-line", "The word Action: appears mid-line"),
])
def test_adapters(adapter: str, text: str, expected: str) -> None:
    assert actions.get_adapter(adapter)(text).action == expected


def test_unknown_adapter_and_profile_names() -> None:
    with pytest.raises(EnvError, match="unknown action adapter 'nope'"):
        actions.get_adapter("nope")
    with pytest.raises(EnvError, match="did you mean 'textcraft'"):
        get_profile("textcraf")
    with pytest.raises(EnvError, match="unknown action adapter"):
        Profile(name="x", action_adapter="nope")


def test_shipped_profiles() -> None:
    assert {"agentforge", "textcraft", "babyai", "maze", "wordle", "sqlgym", "webshop", "sciworld"} <= set(PROFILES)
    assert get_profile("sqlgym").id_field == "env_idx" and get_profile("sqlgym").obs_key == "state"
    assert get_profile("maze").path_prefix == "/maze" and not get_profile("maze").has_close
    custom = get_profile("textcraft").with_(name="mine", has_close=False)
    assert get_profile(custom) is custom and custom.task_field == "data_idx"


# -- task lists without a server -------------------------------------------------------------------


def test_agentgym_task_indices_are_split_on_the_client() -> None:
    env = RemoteEnv("http://127.0.0.1:9", "textcraft")  # no request is made for AgentGym profiles
    tasks = env.tasks()
    assert len(tasks) == 544 and tasks[7].id == "7" and tasks[7].meta == {"data_idx": 7}
    counts = {s: len(env.tasks(s)) for s in ("train", "val", "test")}
    assert counts == {"train": 354, "val": 96, "test": 94}  # near 60/20/20 of 544, hashed per task
    again = RemoteEnv("http://127.0.0.1:9", "textcraft")
    assert [t.split for t in again.tasks()] == [t.split for t in tasks]
    other = RemoteEnv("http://127.0.0.1:9", "textcraft", seed=1)
    assert [t.split for t in other.tasks()] != [t.split for t in tasks]
    chosen = RemoteEnv("http://127.0.0.1:9", "babyai", tasks=[3, "5", 8], splits={"test": 1, "val": 1})
    assert [t.id for t in chosen.tasks()] == ["3", "5", "8"]
    assert sorted(t.split for t in chosen.tasks()) == ["test", "train", "val"]
    assert chosen.url == "http://127.0.0.1:9" and chosen.max_steps == 20 and chosen.instruction
    assert RemoteEnv("http://127.0.0.1:9/", "maze").url == "http://127.0.0.1:9/maze"
    assert RemoteEnv("http://127.0.0.1:9/maze", "maze").url == "http://127.0.0.1:9/maze"


def test_task_list_errors() -> None:
    with pytest.raises(EnvError, match="pass tasks=\\[indices\\] or num_tasks=N"):
        RemoteEnv("http://127.0.0.1:9", "babyai")
    assert len(RemoteEnv("http://127.0.0.1:9", "babyai", num_tasks=40).tasks()) == 40
    with pytest.raises(EnvError, match="non-negative integer indices"):
        RemoteEnv("http://127.0.0.1:9", "wordle", tasks=["abc"])
    with pytest.raises(EnvError, match="duplicate"):
        RemoteEnv("http://127.0.0.1:9", "wordle", tasks=[1, 1])
    with pytest.raises(EnvError, match="invalid environment server URL"):
        RemoteEnv("ftp://example", "textcraft")
    with pytest.raises(EnvError, match="invalid environment server URL"):
        RemoteEnv("not a url", "textcraft")


# -- against our own server --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def counter_url() -> Iterator[tuple[str, CounterEnv]]:
    env = CounterEnv(n=8)
    with serve_in_thread(env) as url:
        yield url, env


async def _play(session: RemoteSession, task_id: str, reply: str = "Thought: up\nAction: inc") -> tuple[int, float]:
    await session.areset(task_id)
    for steps in range(1, 20):
        result = await session.astep(reply)
        if result.done:
            return steps, result.reward
    raise AssertionError("the episode did not end")


async def test_agentforge_profile_reads_the_server(counter_url: tuple[str, CounterEnv]) -> None:
    url, _ = counter_url
    async with await RemoteEnv.aopen(url, **FAST) as env:
        assert env.name == "counter" and env.instruction.startswith("Say inc") and env.max_steps == 10
        assert [t.id for t in env.tasks("val")] == ["c1", "c4", "c7"]
        assert env.task("c2").inputs == {"target": 3} and env.task("c2").answer is None  # gold stays on the server
        assert await env.ahealth() == "agentforge environment server: counter"
    chosen = await RemoteEnv.aopen(url, tasks=["c3", 5], splits={"test": 1}, seed=3, name="mine", max_steps=4)
    assert [t.id for t in chosen.tasks()] == ["c3", "c5"] and chosen.name == "mine" and chosen.max_steps == 4
    assert sorted(t.split for t in chosen.tasks()) == ["test", "train"]
    await chosen.aclose()
    with pytest.raises(EnvError, match="has no task 'zz'"):
        await RemoteEnv.aopen(url, tasks=["zz"])
    lazy = RemoteEnv(url, connect=False)
    with pytest.raises(EnvError, match="not connected"):
        lazy.tasks()
    with pytest.raises(EnvError, match="not connected"):
        lazy.session()


async def test_full_episode_observe_and_close(counter_url: tuple[str, CounterEnv]) -> None:
    url, server_env = counter_url
    env = await RemoteEnv.aopen(url, **FAST)
    session = env.session()
    with pytest.raises(EnvError, match="step before reset"):
        await session.astep("inc")
    obs = await session.areset("c2")
    assert obs.text == "count 0" and obs.available_actions == ("inc", "noop") and obs.fields == {"target": 3}
    first = await session.astep("Thought: one\nAction: inc")
    assert first.observation.text == "count 1" and not first.done and first.info == {"action_sent": "inc"}
    assert await session.aobserve() == "count 1"
    await session.astep("inc")
    last = await session.astep("inc")
    assert last.done and last.reward == 1.0 and GOLD not in str(last)
    steps_on_server = server_env.steps
    with pytest.raises(EnvError, match="has finished; reset first"):
        await session.astep("inc")
    assert server_env.steps == steps_on_server  # the client stopped by itself
    assert await _play(session, "c0") == (1, 1.0)  # the same server instance, another task
    closed = server_env.closed
    await session.aclose()
    await session.aclose()  # idempotent
    assert server_env.closed == closed + 1
    with pytest.raises(EnvError, match="unknown task id 'nope'"):
        await session.areset("nope")
    await env.aclose()


def test_sync_twins_use_no_event_loop(counter_url: tuple[str, CounterEnv]) -> None:
    url, server_env = counter_url
    with RemoteEnv(url, **FAST) as env:
        session = env.session()
        assert session.reset("c1").text == "count 0"
        assert not session.step("inc").done
        assert session.observe() == "count 1"
        assert session.step("inc").done
        closed = server_env.closed
        session.close()
        assert server_env.closed == closed + 1


def test_async_sessions_leave_no_http_client_open(counter_url: tuple[str, CounterEnv],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # Each run is its own event loop, as evaluate() makes; nobody calls env.aclose().
    url, _ = counter_url
    env = RemoteEnv(url, **FAST)

    async def episode(env: RemoteEnv) -> None:
        assert await env.ahealth()  # an environment-level call closes the client it opened
        session = env.session()
        await _play(session, "c1")
        await session.aclose()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for _ in range(2):
            asyncio.run(episode(env))
        del env
        gc.collect()
    assert "Unclosed" not in caplog.text


async def test_32_concurrent_sessions(counter_url: tuple[str, CounterEnv]) -> None:
    url, _ = counter_url
    env = await RemoteEnv.aopen(url, **FAST)
    ids = [t.id for t in env.tasks()]

    async def one(i: int) -> tuple[int, float]:
        session = env.session()
        try:
            return await _play(session, ids[i % len(ids)])
        finally:
            await session.aclose()

    results = await asyncio.gather(*(one(i) for i in range(32)))
    assert [steps for steps, _ in results] == [1 + (i % 8) % 4 for i in range(32)]
    assert all(reward == 1.0 for _, reward in results)
    await env.aclose()


async def test_server_refusals_are_env_errors() -> None:
    async with running_server(CounterEnv(), session_ttl=0.2, max_sessions=1, max_action_chars=10) as url:
        env = await RemoteEnv.aopen(url, **FAST)
        first = env.session()
        await first.areset("c3")
        with pytest.raises(EnvError, match="HTTP 413: the action has 11 characters") as oversize:
            await first.astep("x" * 11)
        assert not isinstance(oversize.value, EnvServerError) and oversize.value.fields["status"] == 413
        with pytest.raises(EnvError, match="HTTP 429: too many live sessions") as capped:
            await env.session().areset("c0")
        assert not isinstance(capped.value, EnvServerError)
        await asyncio.sleep(0.3)
        with pytest.raises(EnvError, match="HTTP 404: session 0 is closed or expired") as expired:
            await first.astep("inc")
        assert not isinstance(expired.value, EnvServerError)
        await first.aclose()  # the server already dropped it: nothing to release, no error
        await env.aclose()


# -- servers that misbehave --------------------------------------------------------------------------


@dataclass
class Misbehaving:
    """A textcraft-shaped server whose endpoints can be told to misbehave."""

    mode: dict[str, str] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    sleep: float = 1.0

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            op = request.url.path.strip("/")
            self.hits[op] = self.hits.get(op, 0) + 1
            mode = self.mode.get(op, "ok")
            if mode == "sleep":
                await asyncio.sleep(self.sleep)
            if mode == "500":
                return PlainTextResponse("Internal Server Error", status_code=500)
            if mode.startswith("503x") and self.hits[op] <= int(mode[4:]):  # 503 the first N times
                return PlainTextResponse("Service Unavailable", status_code=503)
            if mode == "502":
                return PlainTextResponse("Bad Gateway", status_code=502)
            if mode == "malformed":
                return Response(b'{"observation": "half', media_type="application/json")
            if mode == "shape":
                return JSONResponse({"obs": "x", "reward": 0, "done": False})
            if mode == "types":
                return JSONResponse({"observation": 3, "reward": "1", "done": "yes"})
            if mode == "error200":
                return JSONResponse({"error": "The task with environment 0 has finished."})
            if mode == "422":
                return JSONResponse({"detail": [{"loc": ["body", "data_idx"], "msg": "Field required",
                                                 "type": "missing"}]}, status_code=422)
            answers: dict[str, Any] = {
                "create": {"id": 0, "observation": "", "done": False, "reward": 0},
                "reset": {"id": 0, "observation": "start", "done": False, "reward": 0},
                "step": {"observation": "moved", "reward": 0, "done": False},
                "close": True,
            }
            return JSONResponse(answers[op])

        return Starlette(routes=[Route(f"/{op}", endpoint, methods=["POST"])
                                 for op in ("create", "reset", "step", "close")])


PLAIN = get_profile("textcraft").with_(name="plain", action_adapter="plain", error_style="json_4xx")


@contextlib.asynccontextmanager
async def misbehaving(**mode: str) -> AsyncIterator[tuple[Misbehaving, RemoteEnv]]:
    fake = Misbehaving(mode=dict(mode))
    async with running_server(fake.app(), graceful=0.2) as url:
        env = RemoteEnv(url, PLAIN, tasks=[0], timeout=0.3, retries=2, backoff=0.01)
        try:
            yield fake, env
        finally:
            await env.aclose()


async def test_step_past_the_timeout_is_not_retried() -> None:
    async with misbehaving(step="sleep") as (fake, env):
        session = env.session()
        await session.areset("0")
        started = time.monotonic()
        with pytest.raises(EnvServerError, match=r"step \(POST http://127\.0\.0\.1:\d+/step\): timed out after 0\.3 s"
                           ) as caught:
            await session.astep("go")
        assert time.monotonic() - started < 0.9
        assert "not retried: the request may have reached the server" in str(caught.value)
        assert fake.hits["step"] == 1 and caught.value.fields["op"] == "step"


async def test_idempotent_reset_is_retried_then_fails_clearly() -> None:
    async with misbehaving(reset="sleep") as (fake, env):
        with pytest.raises(EnvServerError, match=r"reset .*timed out after 0\.3 s .*\(after 2 retries\)"):
            await env.session().areset("0")
        assert fake.hits["reset"] == 3 and fake.hits["create"] == 1


async def test_503_is_retried_for_reset_but_not_for_step() -> None:
    async with misbehaving(reset="503x2", step="502") as (fake, env):
        session = env.session()
        assert (await session.areset("0")).text == "start"
        assert fake.hits["reset"] == 3
        with pytest.raises(EnvServerError, match="server error HTTP 502: Bad Gateway"):
            await session.astep("go")
        assert fake.hits["step"] == 1


@pytest.mark.parametrize(("mode", "error", "message"), [
    ("500", EnvServerError, "server error HTTP 500: Internal Server Error"),
    ("malformed", EnvServerError, r"malformed JSON \(HTTP 200, 21 bytes\)"),
    ("shape", EnvServerError, 'unexpected answer shape: expected an object with "observation": str'),
    ("types", EnvServerError, "unexpected answer shape"),
    ("error200", EnvError, "the server refused: The task with environment 0 has finished."),
    ("422", EnvError, "HTTP 422: body.data_idx: Field required"),
])
async def test_bad_step_answers(mode: str, error: type[EnvError], message: str) -> None:
    async with misbehaving(step=mode) as (_, env):
        session = env.session()
        await session.areset("0")
        with pytest.raises(error, match=message) as caught:
            await session.astep("go")
        assert type(caught.value) is error
        assert env.url in str(caught.value)


def test_sync_twin_times_out_too() -> None:
    fake = Misbehaving(mode={"step": "sleep"})
    with serve_in_thread(fake.app(), graceful=0.2) as url:
        env = RemoteEnv(url, PLAIN, tasks=[0], timeout=0.3, retries=1, backoff=0.01)
        session = env.session()
        session.reset("0")
        with pytest.raises(EnvServerError, match=r"timed out after 0\.3 s"):
            session.step("go")
        env.close()


async def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = RemoteEnv(f"http://127.0.0.1:{port}", PLAIN, tasks=[0], timeout=1, retries=2, backoff=0.01)
    with pytest.raises(EnvServerError, match=r"create \(POST .*/create\): cannot connect .*\(after 2 retries\)"):
        await env.session().areset("0")
    await env.aclose()
    with pytest.raises(EnvServerError, match="cannot connect"):
        RemoteEnv(f"http://127.0.0.1:{port}", timeout=1, retries=0)  # the agentforge profile reads /info


@dataclass
class RawAnswer:
    data: bytes
    hang_up: bool = False  # close the connection after sending


@contextlib.asynccontextmanager
async def raw_server(handle: Callable[[str], RawAnswer | None]) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A bare asyncio TCP server: ``handle(path)`` gives the bytes to send (None: hang up without a
    word). ``hits`` counts requests per path and, under ``"connections"``, connections."""
    hits: dict[str, int] = {"connections": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split()[1]
                length = next((int(ln.split(":")[1]) for ln in lines if ln.lower().startswith("content-length")), 0)
                await reader.readexactly(length)
                hits[path] = hits.get(path, 0) + 1
                answer = handle(path)
                if answer is None:
                    break
                writer.write(answer.data)
                await writer.drain()
                if answer.hang_up:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        server.close()
        await server.wait_closed()


def _http(body: bytes, length: int | None = None, headers: bytes = b"", hang_up: bool = False) -> RawAnswer:
    size = len(body) if length is None else length
    return RawAnswer(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(size).encode()
                     + b"\r\n" + headers + b"\r\n" + body, hang_up=hang_up or size != len(body))


async def test_dropped_connections() -> None:
    def handle(path: str) -> RawAnswer | None:
        if path == "/create":
            return _http(b'{"id": 0}')
        if path == "/reset":
            return _http(b'{"observation": "start"}')
        if path == "/step":
            return _http(b'{"observ', length=200)  # promises 200 bytes, sends 8, hangs up
        return None  # /close: hang up without a word

    async with raw_server(handle) as (url, hits):
        env = RemoteEnv(url, PLAIN, tasks=[0], timeout=2, retries=2, backoff=0.01)
        session = env.session()
        assert (await session.areset("0")).text == "start"
        with pytest.raises(EnvServerError, match="dropped the connection mid-response") as caught:
            await session.astep("go")
        assert "not retried" in str(caught.value) and hits["/step"] == 1
        with pytest.raises(EnvServerError, match=r"close .*dropped the connection.*\(after 2 retries\)"):
            await session.aclose()
        assert hits["/close"] == 3
        await env.aclose()


STEP = b'{"observation": "moved", "reward": 0, "done": false}'


async def test_transport_keeps_connections_alive() -> None:
    def handle(path: str) -> RawAnswer:
        return _http(b'{"id": 0}' if path == "/create" else b'{"observation": "start"}' if path == "/reset" else STEP)

    async with raw_server(handle) as (url, hits):
        env = RemoteEnv(url, PLAIN, tasks=[0], **FAST)
        session = env.session()
        await session.areset("0")
        for _ in range(10):
            assert (await session.astep("go")).observation.text == "moved"
        assert hits["connections"] == 1 and hits["/step"] == 10
        await env.aclose()


async def test_transport_reads_chunked_and_close_delimited_bodies_and_honours_connection_close() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"6\r\n{\"obse\r\n12\r\nrvation\": \"start\"}\r\n0\r\n\r\n")

    steps = 0

    def handle(path: str) -> RawAnswer:
        nonlocal steps
        if path == "/create":
            return _http(b'{"id": 0}', headers=b"Connection: close\r\n", hang_up=True)
        if path == "/reset":
            return RawAnswer(chunked)
        steps += 1
        if steps % 2:  # a body that ends where the connection does (no length, no chunks)
            return RawAnswer(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + STEP, hang_up=True)
        return _http(STEP, hang_up=True)  # closes without saying so: the idle connection must not be reused

    async with raw_server(handle) as (url, hits):
        env = RemoteEnv(url, PLAIN, tasks=[0], **FAST)
        session = env.session()
        assert (await session.areset("0")).text == "start"
        assert hits["connections"] == 2  # create said Connection: close
        for expected in (2, 3, 4):  # the first step reuses the reset connection
            await session.astep("go")
            await asyncio.sleep(0.02)  # the server's hang-up reaches the client before the next request
            assert hits["connections"] == expected
        await env.aclose()


# -- fake AgentGym servers, one per dialect ----------------------------------------------------------


@dataclass
class Dialect:
    """How one AgentGym server speaks (from the AGENTGYM.md table), reproduced independently of the
    client's profiles so the two check each other."""

    name: str
    reply: str  # what the workflow answers
    action: str  # what the server must receive
    prefix: str = ""
    id_field: str = "id"
    task_field: str = "data_idx"
    create: Callable[[int], Any] = lambda i: {"id": i}
    create_needs_body: bool = False
    reset: Callable[[int, str], Any] = lambda i, obs: {"observation": obs}
    step: Callable[[str, bool], Any] = lambda obs, done: {"observation": obs, "reward": float(done), "done": done}
    observation: Callable[[str], Any] = lambda obs: obs
    has_close: bool = True
    errors_as_500: bool = False
    locks_after_done: bool = True


DIALECTS = [
    Dialect("textcraft", "Thought: I need wood.\n\nAction:\nget 1 oak log.", "get 1 oak log",
            create=lambda i: {"id": i, "observation": "Goal: craft", "done": False, "reward": 0},
            create_needs_body=True,
            reset=lambda i, obs: {"id": i, "observation": obs, "done": False, "reward": 0},
            locks_after_done=False),
    Dialect("babyai", "Thought: ahead.\nAction: move forward", "move forward",
            reset=lambda i, obs: {"observation": obs, "reward": 0, "score": 0, "done": False, "deleted": False},
            step=lambda obs, done: {"observation": obs, "reward": 0.55 if done else 0, "score": float(done),
                                    "done": done},
            observation=lambda obs: {"observation": obs, "done": False}),
    Dialect("maze", "Thought: up!\nAction: up", "move up", prefix="/maze", task_field="game", has_close=False),
    Dialect("wordle", "Thought: try\n\nAction:\ncrane", "c r a n e", prefix="/wordle", task_field="seed",
            reset=lambda i, obs: {"id": i, "observation": obs}, has_close=False),
    Dialect("sqlgym", "Thought: count\n\nAction: ```sql\nSELECT COUNT(*) FROM t;\n```", "SELECT COUNT(*) FROM t;",
            id_field="env_idx", task_field="item_id", create=lambda i: i, reset=lambda i, obs: [obs, None],
            step=lambda obs, done: {"state": obs, "reward": float(done), "done": done,
                                    "info": {"gold": "SELECT COUNT(*) FROM t;"}},
            has_close=False, errors_as_500=True, locks_after_done=False),
    Dialect("webshop", "Thought: look\n\nAction: \nsearch[red shoes]", "search[red shoes]",
            id_field="env_idx", task_field="session_id", create=lambda i: i,
            reset=lambda i, obs: ["<raw page>", None],
            step=lambda obs, done: {"state": obs, "reward": float(done), "done": done, "info": None},
            has_close=False, errors_as_500=True, locks_after_done=False),
    Dialect("sciworld", "Thought: look\nAction: look around", "look around",
            reset=lambda i, obs: {"task_name": "boil", "var_num": 0, "task_description": "Your task is to boil water.",
                                  "observation": obs, "reward": 0, "score": 0, "deleted": False, "done": False},
            step=lambda obs, done: {"observation": obs, "reward": 3, "score": 100 if done else 10, "done": done}),
]


class FakeAgentGym:
    """A small game behind one dialect: task k ends after k % 3 + 1 right actions (reward 1)."""

    def __init__(self, dialect: Dialect, num_tasks: int = 5) -> None:
        self.d = dialect
        self.num_tasks = num_tasks
        self.games: dict[int, dict[str, Any]] = {}
        self.received: list[str] = []
        self.closed: list[int] = []

    def _error(self, message: str) -> Response:
        if self.d.errors_as_500:
            return PlainTextResponse("Internal Server Error", status_code=500)
        return JSONResponse({"error": message})  # AgentGym's 200 with an error body

    @staticmethod
    def _fastapi_422(field_name: str) -> Response:
        return JSONResponse({"detail": [{"loc": ["body", field_name], "msg": "Field required", "type": "missing"}]},
                            status_code=422)

    async def _body(self, request: Request, fields: tuple[str, ...]) -> dict[str, Any] | Response:
        raw = await request.body()
        if not raw:
            return self._fastapi_422(fields[0] if fields else "body")
        body = await request.json()
        for name in fields:
            if name not in body:
                return self._fastapi_422(name)
        return body

    def app(self) -> Starlette:
        d = self.d

        async def create(request: Request) -> Response:
            if d.create_needs_body and not await request.body():
                return self._fastapi_422("body")
            i = len(self.games)
            self.games[i] = {"task": None, "n": 0, "done": False}
            return JSONResponse(d.create(i))

        async def reset(request: Request) -> Response:
            body = await self._body(request, (d.id_field, d.task_field))
            if isinstance(body, Response):
                return body
            i, k = body[d.id_field], body[d.task_field]
            if i not in self.games:
                return self._error(f"The id {i} is not valid.")
            if not 0 <= k < self.num_tasks:
                return self._error(f"list index out of range: {k}")
            self.games[i] = {"task": k, "n": 0, "done": False, "obs": f"game {k}: 0 of {k % 3 + 1}"}
            return JSONResponse(d.reset(i, self.games[i]["obs"]))

        async def step(request: Request) -> Response:
            body = await self._body(request, (d.id_field, "action"))
            if isinstance(body, Response):
                return body
            game = self.games.get(body[d.id_field])
            if game is None or game["task"] is None:
                return self._error("The id is not valid.")
            if game["done"] and d.locks_after_done:
                return self._error(f"The task with environment {body[d.id_field]} has finished.")
            self.received.append(body["action"])
            if body["action"] == d.action:
                game["n"] += 1
            target = game["task"] % 3 + 1
            done = game["n"] == target  # textcraft-like: reports done once, then not again
            game["done"] = game["done"] or done
            game["obs"] = f"game {game['task']}: {game['n']} of {target}"
            return JSONResponse(d.step(game["obs"], done))

        async def observation(request: Request) -> Response:
            i = int(request.query_params[d.id_field])
            if i not in self.games or self.games[i]["task"] is None:
                return self._error("The id is not valid.")
            return JSONResponse(d.observation(self.games[i]["obs"]))

        async def close(request: Request) -> Response:
            body = await self._body(request, (d.id_field,))
            if isinstance(body, Response):
                return body
            self.closed.append(body[d.id_field])
            return JSONResponse(True)

        async def health(request: Request) -> Response:
            return JSONResponse(f"This is environment {d.name}.")

        routes = [Route(f"{d.prefix}/", health), Route(f"{d.prefix}/observation", observation)]
        routes += [Route(f"{d.prefix}/{name}", handler, methods=["POST"])
                   for name, handler in (("create", create), ("reset", reset), ("step", step))]
        if d.has_close:
            routes.append(Route(f"{d.prefix}/close", close, methods=["POST"]))
        return Starlette(routes=routes)


@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.name for d in DIALECTS])
async def test_profile_plays_its_agentgym_dialect(dialect: Dialect) -> None:
    fake = FakeAgentGym(dialect)
    async with running_server(fake.app()) as url:
        env = RemoteEnv(url, dialect.name, tasks=[0, 1, 2], splits={"test": 1}, **FAST)
        assert env.url == url + dialect.prefix
        assert await env.ahealth() == f"This is environment {dialect.name}."
        for k in range(3):
            session = env.session()
            obs = await session.areset(str(k))
            expected = f"game {k}: 0 of {k % 3 + 1}"
            if dialect.name == "sciworld":
                expected = "Your task is to boil water.\n" + expected
            assert obs.text == expected
            steps, result = 0, None
            while result is None or not result.done:
                result = await session.astep(dialect.reply)
                steps += 1
                assert steps <= 3
            assert steps == k % 3 + 1 and result.reward == pytest.approx(1.0)
            assert result.observation.text == f"game {k}: {steps} of {steps}"
            received = len(fake.received)
            with pytest.raises(EnvError, match="has finished; reset first"):
                await session.astep(dialect.reply)
            assert len(fake.received) == received  # stopped at the first done by the client itself
            await session.aclose()
        assert fake.received == [dialect.action] * 6
        assert fake.closed == ([0, 1, 2] if dialect.has_close else [])
        await env.aclose()


async def test_textcraft_rejects_two_actions_without_sending() -> None:
    fake = FakeAgentGym(DIALECTS[0])
    async with running_server(fake.app()) as url:
        env = RemoteEnv(url, "textcraft", tasks=[2], **FAST)
        session = env.session()
        await session.areset("2")
        rejected = await session.astep("Action: get 1 oak log\nAction: get 1 oak log")
        assert "Only one 'Action'" in rejected.observation.text and not rejected.done and rejected.reward == 0
        assert rejected.info == {"rejected_action": True} and fake.received == []
        assert (await session.astep("Action: get 1 oak log")).observation.text == "game 2: 1 of 3"
        assert await session.aobserve() == "game 2: 1 of 3"
        await env.aclose()


async def test_textcraft_server_keeps_accepting_after_done_but_the_client_stops() -> None:
    fake = FakeAgentGym(DIALECTS[0])
    async with running_server(fake.app()) as url:
        env = RemoteEnv(url, "textcraft", tasks=[0], **FAST)
        session = env.session()
        await session.areset("0")
        assert (await session.astep("Action: get 1 oak log")).done
        # what an unguarded client would see: the server plays on and says "not done" again
        import httpx

        async with httpx.AsyncClient(base_url=url) as raw:
            again = (await raw.post("/step", json={"id": 0, "action": "get 1 oak log"})).json()
        assert again["done"] is False
        with pytest.raises(EnvError, match="has finished"):
            await session.astep("Action: get 1 oak log")
        await env.aclose()


async def test_application_errors_per_dialect() -> None:
    by_name = {d.name: d for d in DIALECTS}
    async with running_server(FakeAgentGym(by_name["sqlgym"]).app()) as url:
        env = RemoteEnv(url, "sqlgym", tasks=[99], **FAST)
        with pytest.raises(EnvError, match="HTTP 500 \\(sqlgym reports application errors this way\\)") as caught:
            await env.session().areset("99")
        assert type(caught.value) is EnvError  # an application error, not a server fault
        ok = RemoteEnv(url, "sqlgym", tasks=[1], **FAST)
        session = ok.session()
        assert (await session.areset("1")).text == "game 1: 0 of 2"
        result = await session.astep("```sql\nSELECT COUNT(*) FROM t;\n```")
        assert result.info["server_info"] == {"gold": "SELECT COUNT(*) FROM t;"}
        assert "SELECT" not in result.observation.text  # the gold SQL never reaches the agent
        await env.aclose()
        await ok.aclose()
    async with running_server(FakeAgentGym(by_name["babyai"]).app()) as url:
        env = RemoteEnv(url, "babyai", tasks=[99], **FAST)
        with pytest.raises(EnvError, match="the server refused: list index out of range: 99") as refused:
            await env.session().areset("99")
        assert type(refused.value) is EnvError
        await env.aclose()
    async with running_server(FakeAgentGym(by_name["textcraft"]).app()) as url:
        no_body = RemoteEnv(url, get_profile("textcraft").with_(create_body=False), tasks=[0], **FAST)
        with pytest.raises(EnvError, match=r"HTTP 422: body\.body: Field required"):
            await no_body.session().areset("0")
        await no_body.aclose()


def test_sync_twins_against_an_agentgym_dialect() -> None:
    fake = FakeAgentGym(DIALECTS[2])  # maze, under /maze, no /close
    with serve_in_thread(fake.app()) as url:
        env = RemoteEnv(url + "/maze", "maze", tasks=[1], **FAST)
        session = env.session()
        assert session.reset("1").text == "game 1: 0 of 2"
        assert not session.step("Action: up").done
        assert session.step("up").done
        assert session.observe() == "game 1: 2 of 2"
        session.close()
        env.close()
        assert fake.received == ["move up", "move up"]


# -- built-in environments through our server and client -------------------------------------------


def _builtin_multi_turn() -> list[str]:
    try:
        from agentforge.envs.builtin import BUILTIN_ENVS, builtin_class
        from agentforge.envs.games.oracles import ORACLES
    except ImportError:
        return []
    names = []
    for name in BUILTIN_ENVS:
        try:
            cls = builtin_class(name)
        except (ImportError, EnvError):
            continue
        if getattr(cls, "multi_turn", False) and name in ORACLES:
            names.append(name)
    return names


@pytest.mark.skipif(not _builtin_multi_turn(), reason="the built-in environments and oracles are not there yet")
@pytest.mark.parametrize("name", _builtin_multi_turn())
async def test_builtin_env_through_server_and_client(name: str) -> None:
    """Each built-in multi-turn environment, served and driven remotely by its oracle, plays exactly
    as it does locally (same observations, same reward 1)."""
    from agentforge.envs.builtin import builtin_class
    from agentforge.envs.games.oracles import oracle_action, play

    local: Environment = builtin_class(name)(num_tasks=12)
    async with running_server(local) as url:
        remote = await RemoteEnv.aopen(url, **FAST)
        assert remote.name == local.name and remote.max_steps == local.max_steps
        assert [(t.id, t.split) for t in remote.tasks()] == [(t.id, t.split) for t in local.tasks()]
        for task in local.tasks()[:4]:
            expected = play(local, task.id)
            session = remote.session()
            obs = await session.areset(task.id)
            assert obs.text == expected.first.text
            transcript: list[tuple[str, str]] = []
            for _ in range(local.max_steps):
                action = oracle_action(name, task, obs, transcript)  # the oracle reads the local task's answer
                result = await session.astep(action)
                transcript.append((action, result.observation.text))
                obs = result.observation
                if result.done:
                    break
            assert transcript == expected.transcript
            assert result.done and result.reward == expected.reward == 1.0, (name, task.id)
            await session.aclose()
        await remote.aclose()


# -- the evaluator, unchanged, on a remote environment ----------------------------------------------



async def test_evaluator_scores_a_remote_env_like_the_local_one(scripted: Any) -> None:
    import textwrap

    from agentforge.evaluation.evaluator import aevaluate
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import spec_from_text

    model, script = scripted
    script.default = "inc"
    policy = Workflow(spec_from_text(textwrap.dedent(POLICY)))
    local = CounterEnv(n=8)
    async with running_server(local) as url:
        remote = await RemoteEnv.aopen(url, **FAST)
        there = await aevaluate(policy, remote, split=None, concurrency=8, model=model)
        await remote.aclose()
    here = await aevaluate(policy, local, split=None, concurrency=8, model=model)
    assert [(r.task_id, r.score, r.steps, r.error) for r in there.results] == \
        [(r.task_id, r.score, r.steps, r.error) for r in here.results]
    assert all(r.score == 1.0 and r.error is None for r in there.results)


async def test_a_remote_servers_step_info_never_reaches_evidence(scripted: Any) -> None:
    """sqlgym's step info carries the gold SQL: the client keeps it as a secret field, out of every report."""
    from agentforge.evaluation.evaluator import aevaluate
    from agentforge.runtime.workflow import Workflow
    from agentforge.workflow.loader import spec_from_text

    by_name = {d.name: d for d in DIALECTS}
    model, script = scripted
    script.default = "```sql\nSELECT 1;\n```"
    async with running_server(FakeAgentGym(by_name["sqlgym"]).app()) as url:
        env = RemoteEnv(url, "sqlgym", tasks=[1, 2], splits={"val": 1.0}, **FAST)
        report = await aevaluate(Workflow(spec_from_text(POLICY)), env, split="val", model=model)
        await env.aclose()
    assert report.results and all(r.steps >= 1 for r in report.results)
    assert "SELECT COUNT(*) FROM t;" not in report.model_dump_json()
    assert all("server_info" not in r.info for r in report.results)
