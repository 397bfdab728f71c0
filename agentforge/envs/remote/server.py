"""Serve any local :class:`Environment` over the AgentGym HTTP protocol.

The server speaks AgentGym's textcraft dialect (see AGENTGYM.md), so AgentGym-style clients and
:class:`agentforge.envs.remote.client.RemoteEnv` (profile ``agentforge``) can drive it:

=========================  ===========================================================================
``GET /``                  health: a JSON string
``POST /create``           body ``{}`` or none -> ``{"id", "observation": "", "reward": 0, "done": false}``
``POST /reset``            ``{"id", "data_idx": k}`` or ``{"id", "task_id": "..."}`` ->
                           ``{"id", "task_id", "observation", "reward": 0, "done": false}``
``POST /step``             ``{"id", "action": "..."}`` -> ``{"observation", "reward", "done"}``
``GET /observation?id=n``  the current observation, a JSON string
``POST /close``            ``{"id"}`` -> ``true``
``GET /tasks?split=val``   extension: ``{"count", "tasks": [{"data_idx", "id", "split", "inputs"}]}``
``GET /info``              extension: name, instruction, multi_turn, max_steps, task count, limits
=========================  ===========================================================================

Reset and step answers add ``available_actions`` and ``fields`` when the observation has them. A
step's ``info`` is never sent: it may hold gold answers. ``data_idx`` indexes ``env.tasks()`` in
its stable order (no wrap-around); ``task_id`` is an agentforge extension.

It is stricter than AgentGym's servers: every application error (unknown or expired id, missing,
extra or mistyped fields, an oversize action, a step before reset or after ``done``, an unknown
task) is a 4xx answer with a JSON ``{"error": "..."}`` body, never a 200. Each id owns its own
:class:`Session`; ids idle for ``session_ttl`` seconds expire (404), and at most ``max_sessions``
live at once (429). A fault inside the environment's own code is a 500 with a JSON body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from agentforge.envs.base import SPLITS, Environment, Observation, Session, Task
from agentforge.errors import EnvError, EnvServerError
from agentforge.logs import get_logger

try:  # orjson is about 5x faster at this; fall back to the standard library when it is missing
    import orjson

    def _dumps(data: Any) -> bytes:
        return orjson.dumps(data)

except ImportError:  # pragma: no cover - depends on the installation

    def _dumps(data: Any) -> bytes:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


log = get_logger(__name__)

PROTOCOL = "agentgym-textcraft+agentforge/1"

T = TypeVar("T")


class _ApiError(Exception):
    """An application error, answered as ``status`` with a JSON ``{"error": message}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _dumps(content)


def _error(status: int, message: str) -> _Json:
    return _Json({"error": message}, status_code=status)


@dataclass(eq=False)
class _Slot:
    """One live server instance: a session and what the protocol needs to know about it."""

    session: Session
    last_used: float
    task: Task | None = None
    done: bool = False
    observation: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Sessions:
    """Live sessions by integer id, with idle expiry and a cap."""

    def __init__(self, env: Environment, ttl: float, cap: int) -> None:
        self.env = env
        self.ttl = ttl
        self.cap = cap
        self.slots: dict[int, _Slot] = {}
        self.next_id = 0
        self._last_sweep = time.monotonic()
        self._sweep_every = max(0.01, min(1.0, ttl / 4))

    async def create(self) -> int:
        await self.sweep(force=True)
        if len(self.slots) >= self.cap:
            raise _ApiError(429, f"too many live sessions (the cap is {self.cap}); close finished ones "
                                 f"with POST /close or wait for idle ones to expire ({self.ttl:g} s)")
        sid = self.next_id
        self.next_id += 1
        self.slots[sid] = _Slot(session=self.env.session(), last_used=time.monotonic())
        return sid

    async def get(self, sid: int) -> _Slot:
        now = time.monotonic()
        if now - self._last_sweep >= self._sweep_every:
            await self.sweep()
        slot = self.slots.get(sid)
        if slot is None:
            if 0 <= sid < self.next_id:
                raise _ApiError(404, f"session {sid} is closed or expired (sessions expire after "
                                     f"{self.ttl:g} s idle); POST /create a new one")
            raise _ApiError(404, f"unknown session id {sid}; POST /create first")
        if now - slot.last_used > self.ttl:
            await self._drop(sid)
            raise _ApiError(404, f"session {sid} expired after {self.ttl:g} s idle; POST /create a new one")
        slot.last_used = now
        return slot

    async def sweep(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_sweep < self._sweep_every:
            return
        self._last_sweep = now
        expired = [sid for sid, slot in self.slots.items()
                   if now - slot.last_used > self.ttl and not slot.lock.locked()]
        for sid in expired:
            await self._drop(sid)
        if expired:
            log.info("env_server.expired", env=self.env.name, sessions=len(expired), live=len(self.slots))

    async def close(self, sid: int) -> None:
        await self.get(sid)
        await self._drop(sid)

    async def close_all(self) -> None:
        for sid in list(self.slots):
            await self._drop(sid)

    async def _drop(self, sid: int) -> None:
        slot = self.slots.pop(sid, None)
        if slot is None:
            return
        try:
            await slot.session.aclose()
        except EnvError as exc:  # the id is gone either way; a failed cleanup is worth a log line
            log.warning("env_server.close_failed", env=self.env.name, session=sid, error=str(exc))


# -- request parsing -------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _ApiError(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _ApiError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_object(request: Request, limit: int, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await _read_body(request, limit)
    if not raw.strip():
        if allow_empty:
            return {}
        raise _ApiError(422, "the request needs a JSON object body")
    try:
        body = json.loads(raw)
    except RecursionError:  # a deeply nested body, small enough to pass the size limit
        raise _ApiError(400, "the request body nests too deeply") from None
    except ValueError as exc:  # malformed JSON, bad UTF-8, an integer past Python's digit limit
        raise _ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _ApiError(422, f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def _check_fields(body: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if k not in body]
    if missing:
        raise _ApiError(422, f"missing field(s): {', '.join(missing)}")
    extra = sorted(set(body) - set(required) - set(optional))
    if extra:
        allowed = ", ".join((*required, *optional)) or "none"
        raise _ApiError(422, f"unexpected field(s): {', '.join(extra)}; allowed: {allowed}")


def _int_field(body: Mapping[str, Any], key: str) -> int:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _ApiError(422, f"'{key}' must be an integer, got {json.dumps(value)[:40]}")
    return value


def _observation_fields(obs: Observation) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if obs.available_actions is not None:
        extra["available_actions"] = list(obs.available_actions)
    if obs.fields:
        extra["fields"] = obs.fields
    return extra


# -- the app ---------------------------------------------------------------------------------------


def create_app(env: Environment, *, session_ttl: float = 600, max_sessions: int = 1024,
               max_action_chars: int = 4096) -> Starlette:
    """An ASGI app serving ``env`` (see the module docstring for the protocol)."""
    if session_ttl <= 0 or max_sessions < 1 or max_action_chars < 1:
        raise EnvError("session_ttl, max_sessions and max_action_chars must be positive")
    sessions = _Sessions(env, session_ttl, max_sessions)
    tasks = env.tasks()
    index = {task.id: i for i, task in enumerate(tasks)}
    # A step body is the action plus a little JSON; JSON escapes can take up to 6 bytes a character.
    body_limit = 6 * max_action_chars + 1024
    split_counts = {name: sum(1 for t in tasks if t.split == name) for name in SPLITS}

    async def _call_env(call: Awaitable[T], op: str) -> T:
        """Run the environment's own code; its failures become answers, never a dropped connection."""
        try:
            return await call
        except EnvServerError as exc:
            raise _ApiError(502, f"{env.name}: {op} failed upstream: {exc}") from exc
        except EnvError as exc:
            raise _ApiError(422, str(exc)) from exc
        except Exception as exc:  # a bug in the environment: answered as a JSON 500 and logged with its traceback
            log.exception("env_server.env_fault", env=env.name, op=op)
            raise _ApiError(500, f"internal error in environment {env.name} during {op}: "
                                 f"{type(exc).__name__}: {exc}"[:2000]) from exc

    def resolve(body: Mapping[str, Any]) -> Task:
        if ("data_idx" in body) == ("task_id" in body):
            raise _ApiError(422, "reset needs exactly one of 'data_idx' (an index into GET /tasks) or 'task_id'")
        if "data_idx" in body:
            k = _int_field(body, "data_idx")
            if not 0 <= k < len(tasks):
                span = f"0..{len(tasks) - 1}" if tasks else "none"
                raise _ApiError(404, f"unknown data_idx {k}; {env.name} has {len(tasks)} tasks ({span})")
            return tasks[k]
        task_id = body["task_id"]
        if not isinstance(task_id, str):
            raise _ApiError(422, f"'task_id' must be a string, got {json.dumps(task_id)[:40]}")
        if task_id not in index:
            raise _ApiError(404, f"unknown task_id '{task_id[:200]}'; GET /tasks lists them")
        return tasks[index[task_id]]

    async def health(request: Request) -> Response:
        return _Json(f"agentforge environment server: {env.name}")

    async def info(request: Request) -> Response:
        return _Json({
            "name": env.name, "instruction": env.instruction, "multi_turn": env.multi_turn,
            "max_steps": env.max_steps, "num_tasks": len(tasks), "splits": split_counts, "protocol": PROTOCOL,
            "session_ttl": session_ttl, "max_sessions": max_sessions, "max_action_chars": max_action_chars,
        })

    async def list_tasks(request: Request) -> Response:
        unknown = set(request.query_params) - {"split"}
        if unknown:
            raise _ApiError(422, f"unexpected query parameter(s): {', '.join(sorted(unknown))}; allowed: split")
        split = request.query_params.get("split")
        if split is not None and split not in SPLITS:
            raise _ApiError(422, f"unknown split '{split[:40]}'; use one of {', '.join(SPLITS)}")
        listed = [{"data_idx": i, "id": t.id, "split": t.split, "inputs": t.inputs}
                  for i, t in enumerate(tasks) if split is None or t.split == split]
        return _Json({"count": len(listed), "tasks": listed})

    async def create(request: Request) -> Response:
        body = await _json_object(request, body_limit, allow_empty=True)
        _check_fields(body, ())
        sid = await sessions.create()
        return _Json({"id": sid, "observation": "", "reward": 0, "done": False})

    async def reset(request: Request) -> Response:
        body = await _json_object(request, body_limit)
        _check_fields(body, ("id",), ("data_idx", "task_id"))
        sid = _int_field(body, "id")
        task = resolve(body)
        slot = await sessions.get(sid)
        async with slot.lock:
            obs = await _call_env(slot.session.areset(task.id), "reset")
            slot.task, slot.done, slot.observation = task, False, obs.text
            slot.last_used = time.monotonic()
        return _Json({"id": sid, "task_id": task.id, "observation": obs.text, "reward": 0, "done": False,
                      **_observation_fields(obs)})

    async def step(request: Request) -> Response:
        body = await _json_object(request, body_limit)
        _check_fields(body, ("id", "action"))
        sid = _int_field(body, "id")
        action = body["action"]
        if not isinstance(action, str):
            raise _ApiError(422, f"'action' must be a string, got {type(action).__name__}")
        if len(action) > max_action_chars:
            raise _ApiError(413, f"the action has {len(action)} characters; the limit is {max_action_chars}")
        slot = await sessions.get(sid)
        async with slot.lock:
            if slot.task is None:
                raise _ApiError(409, f"session {sid} has no task loaded; POST /reset first")
            if slot.done:
                raise _ApiError(409, f"the episode of task '{slot.task.id}' in session {sid} has finished; "
                                     "POST /reset to start another")
            result = await _call_env(slot.session.astep(action), "step")
            slot.done, slot.observation = bool(result.done), result.observation.text
            slot.last_used = time.monotonic()
        # result.info is deliberately not sent: it may carry the gold answer.
        return _Json({"observation": result.observation.text, "reward": float(result.reward),
                      "done": bool(result.done), **_observation_fields(result.observation)})

    async def observation(request: Request) -> Response:
        unknown = set(request.query_params) - {"id"}
        if unknown:
            raise _ApiError(422, f"unexpected query parameter(s): {', '.join(sorted(unknown))}; allowed: id")
        raw = request.query_params.get("id")
        if raw is None:
            raise _ApiError(422, "missing query parameter: id")
        try:
            sid = int(raw)
        except ValueError:
            raise _ApiError(422, f"'id' must be an integer, got '{raw[:40]}'") from None
        slot = await sessions.get(sid)
        if slot.observation is None:
            raise _ApiError(409, f"session {sid} has no task loaded; POST /reset first")
        return _Json(slot.observation)

    async def close(request: Request) -> Response:
        body = await _json_object(request, body_limit)
        _check_fields(body, ("id",))
        await sessions.close(_int_field(body, "id"))
        return _Json(True)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _ApiError)
        return _error(exc.status, exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _Json({"error": f"{exc.detail}: {request.method} {request.url.path}"}, status_code=exc.status_code,
                     headers=exc.headers)

    async def on_fault(request: Request, exc: Exception) -> Response:
        # A bug in the server itself: Starlette's outermost middleware calls this, then re-raises so
        # uvicorn logs the traceback (and closes the connection).
        return _error(500, f"internal server error: {type(exc).__name__}: {exc}"[:2000])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sessions.close_all()

    routes = [
        Route("/", health, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/tasks", list_tasks, methods=["GET"]),
        Route("/create", create, methods=["POST"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/step", step, methods=["POST"]),
        Route("/observation", observation, methods=["GET"]),
        Route("/close", close, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        _ApiError: on_api_error, HTTPException: on_http_error, Exception: on_fault})
    app.state.sessions = sessions
    return app


# -- running it ------------------------------------------------------------------------------------


def serve(env: Environment, host: str = "127.0.0.1", port: int = 8000, *, session_ttl: float = 600,
          max_sessions: int = 1024, max_action_chars: int = 4096, log_level: str = "info",
          access_log: bool = False, **uvicorn_options: Any) -> None:
    """Serve ``env`` with uvicorn until interrupted (this is what ``agentforge env serve`` runs)."""
    import uvicorn

    app = create_app(env, session_ttl=session_ttl, max_sessions=max_sessions, max_action_chars=max_action_chars)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, **uvicorn_options)


class ServerThread:
    """uvicorn serving an app (or an environment) on a free loopback port in a background thread.

    For tests and benchmarks: the server has its own event loop, so both async and blocking clients
    in the calling thread can reach it. ``start()`` returns the base URL once the server accepts
    connections; ``stop()`` shuts it down (idle connections are closed, running requests get
    ``graceful`` seconds) and joins the thread.
    """

    def __init__(self, app: ASGIApp | Environment, *, host: str = "127.0.0.1", port: int = 0,
                 graceful: float = 1.0, **options: Any) -> None:
        import uvicorn

        app_options = {k: options.pop(k) for k in ("session_ttl", "max_sessions", "max_action_chars") if k in options}
        if isinstance(app, Environment):
            app = create_app(app, **app_options)
        elif app_options:
            raise EnvError(f"{', '.join(app_options)} only apply when serving an Environment")
        options.setdefault("log_level", "warning")
        options.setdefault("access_log", False)
        options.setdefault("log_config", None)  # never reconfigure the host application's logging
        self.config = uvicorn.Config(app, timeout_graceful_shutdown=graceful, **options)
        self.server = uvicorn.Server(self.config)
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it
        # Nagle's algorithm and delayed ACKs add 40 ms to every response.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise EnvError(f"cannot listen on {host}:{port}: {exc}") from exc
        bound_host, bound_port = self._sock.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._thread = threading.Thread(target=self._run, name=f"agentforge-env-server:{bound_port}", daemon=True)
        self._failure: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self._sock])
        except (OSError, RuntimeError) as exc:  # surfaced by start(); a thread must not die silently
            self._failure = exc

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise EnvError(f"the environment server on {self.url} failed to start: {self._failure}")
            if time.monotonic() > deadline:
                self.stop()
                raise EnvError(f"the environment server on {self.url} did not start within {timeout:g} s")
            time.sleep(0.005)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp | Environment, **options: Any) -> Iterator[str]:
    """``with serve_in_thread(env) as url:`` a server on a free loopback port (see :class:`ServerThread`)."""
    server = ServerThread(app, **options)
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def running_server(app: ASGIApp | Environment, **options: Any) -> AsyncIterator[str]:
    """``async with running_server(env) as url:`` the async twin of :func:`serve_in_thread`."""
    server = ServerThread(app, **options)
    try:
        yield await asyncio.to_thread(server.start)
    finally:
        await asyncio.to_thread(server.stop)


__all__ = ["PROTOCOL", "ServerThread", "create_app", "running_server", "serve", "serve_in_thread"]
