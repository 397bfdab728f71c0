"""The HTTP client for AgentGym environment servers: :class:`RemoteEnv` and :class:`RemoteSession`.

``RemoteEnv(url, profile)`` is an :class:`Environment` whose sessions play episodes on a server:
an unmodified AgentGym server (profiles ``textcraft``, ``babyai``, ``maze``, ``wordle``, ``sqlgym``,
``webshop``, ``sciworld``; see :mod:`agentforge.envs.remote.profiles`) or agentforge's own
(:mod:`agentforge.envs.remote.server`, profile ``agentforge``), which also describes its instruction,
tasks and splits. AgentGym servers expose no splits, so their task indices are split on the client
with :func:`assign_splits`.

Errors, mapped once here: a server that cannot be reached, times out, drops the connection, answers
5xx, malformed JSON or an unexpected shape raises :class:`EnvServerError` (with the URL and the
operation); a 4xx or a 200 whose body holds ``error`` raises :class:`EnvError` with the server's
message. Every request has a timeout, so nothing waits forever.

Retries (a :class:`~agentforge.retry.RetryPolicy`: ``retry=``, or its short form ``retries`` times with
exponential ``backoff``) are for transient failures only, and only where repeating is safe:

* a request that never left (connection refused, connect or pool timeout) is retried for every
  operation;
* after a request may have reached the server (read timeout, dropped connection, 502/503/504),
  only idempotent operations are retried: ``reset`` (it reloads the same task), ``observation``,
  ``close``, ``info`` and ``tasks``;
* ``create`` and ``step`` are not, because repeating them is not harmless: a second ``create``
  leaks a server instance, and a second ``step`` would play the action twice (the game moves on,
  the reward may change). The protocol has no request ids the server could de-duplicate on, so a
  step that may have arrived fails loudly with :class:`EnvServerError` instead of being guessed at.

Async methods run on ``aiohttp`` (against a trivial environment its client costs a tenth of the CPU per
request of httpx's stock async transport and less than the h11 transport agentforge used to carry; see
benchmarks/bench_env_server.py). Each session owns its client, so its connection stays open from step to
step and closes with the session; environment-level calls (``aconnect``, ``ahealth``) open one for the
call. The sync twins (``reset``, ``step``, ``close``, ``connect``) use one shared ``httpx.Client`` and
never start an event loop. Both map their failures to the same errors.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiohttp
import httpx
from pydantic import ValidationError

from agentforge.envs.base import (
    SPLITS,
    Environment,
    Observation,
    Session,
    Split,
    StepResult,
    Task,
    assign_splits,
    check_step,
)
from agentforge.envs.remote.actions import get_adapter
from agentforge.envs.remote.profiles import Profile, get_profile
from agentforge.errors import EnvError, EnvServerError
from agentforge.logs import get_logger
from agentforge.retry import ENV_RETRY_CODES, RetryPolicy

try:  # orjson is several times faster; the standard library is the fallback
    import orjson

    def _dumps(data: Any) -> bytes:
        return orjson.dumps(data)

    def _loads(raw: bytes) -> Any:
        return orjson.loads(raw)

    _DecodeError: tuple[type[Exception], ...] = (orjson.JSONDecodeError,)
except ImportError:  # pragma: no cover - depends on the installation

    def _dumps(data: Any) -> bytes:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    def _loads(raw: bytes) -> Any:
        return json.loads(raw)

    _DecodeError = (json.JSONDecodeError, UnicodeDecodeError)

log = get_logger(__name__)

T = TypeVar("T")

_NO_BODY: Any = object()
_JSON_HEADERS = {"content-type": "application/json"}
_CLIENT_HEADERS = {"accept": "application/json", "user-agent": "agentforge-env-client"}
_RETRY_STATUSES = frozenset({502, 503, 504})
KEEPALIVE_S = 4.0
# Failures that prove the request never reached the server: safe to retry for any operation.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class _Reply:
    """An HTTP answer, whichever client read it."""

    status: int
    content: bytes
    reason: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Failure:
    """A request that got no answer: what happened, whether the server may have seen the request
    (then only idempotent operations are repeated), and whether trying again can help at all."""

    what: str
    sent: bool
    transient: bool = True


def _aiohttp_failure(exc: BaseException, timeout: float) -> _Failure:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # no connection (or pool slot) in time: never sent
        return _Failure(f"timed out after {timeout:g} s ({type(exc).__name__})", sent=False)
    if isinstance(exc, TimeoutError):
        return _Failure(f"timed out after {timeout:g} s ({type(exc).__name__})", sent=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _Failure(f"cannot connect (is the server running?): {exc}", sent=False)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return _Failure(f"the server dropped the connection mid-response: {exc}", sent=True)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return _Failure(f"the connection was lost: {exc}", sent=True)
    return _Failure(f"{type(exc).__name__}: {exc}", sent=True, transient=False)  # e.g. a malformed HTTP answer


def _httpx_failure(exc: httpx.RequestError, timeout: float) -> _Failure:
    sent = not isinstance(exc, _NOT_SENT)
    if isinstance(exc, httpx.TimeoutException):
        return _Failure(f"timed out after {timeout:g} s ({type(exc).__name__})", sent=sent)
    if isinstance(exc, httpx.ConnectError):
        return _Failure(f"cannot connect (is the server running?): {exc}", sent=sent)
    if isinstance(exc, httpx.RemoteProtocolError):
        return _Failure(f"the server dropped the connection mid-response: {exc}", sent=sent)
    if isinstance(exc, httpx.NetworkError):
        return _Failure(f"the connection was lost: {exc}", sent=sent)
    return _Failure(f"{type(exc).__name__}: {exc}", sent=sent, transient=isinstance(exc, httpx.TransportError))


@dataclass(frozen=True)
class _Call:
    """One HTTP request an operation needs; the driver sends it and hands back the decoded JSON."""

    op: str
    method: Literal["GET", "POST"]
    path: str
    body: Any = _NO_BODY
    params: Mapping[str, Any] | None = None
    idempotent: bool = True
    missing_ok: bool = False  # a 404 means "already gone": answered as None


# An operation is a generator: it yields the requests it needs and returns its result. The same
# protocol code then runs under the async driver (aiohttp) and the sync one (httpx.Client).
_Op = Generator[_Call, Any, T]


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(value: Any) -> str:
    try:
        return _snippet(json.dumps(value, ensure_ascii=False, default=str), 200)
    except (TypeError, ValueError):  # pragma: no cover - decoded JSON always dumps
        return type(value).__name__



class RemoteEnv(Environment):
    """An environment served over HTTP, in one of the :mod:`~agentforge.envs.remote.profiles` dialects.

    ``tasks`` restricts the task list: task ids or indices (``data_idx``) for the ``agentforge``
    profile; indices for AgentGym profiles, whose default is ``range(num_tasks)`` (the profile's
    known count unless ``num_tasks`` is given). ``splits`` and ``seed`` assign train/val/test on
    the client (AgentGym servers have no splits; for the ``agentforge`` profile the server's splits
    are kept unless ``splits`` is given). ``name``, ``instruction`` and ``max_steps`` override what
    the profile or the server says.

    The ``agentforge`` profile reads ``GET /info`` and ``GET /tasks`` when constructed (a blocking
    call); in async code pass ``connect=False`` and ``await env.aconnect()``, or use
    ``await RemoteEnv.aopen(...)``.

    What a server puts in a step's ``info`` is opaque to the client and may hold gold data (sqlgym's carries
    the gold SQL), so it is kept as ``info["server_info"]``, a secret field that never reaches evidence.
    """

    secret_fields = frozenset({"answer", "server_info"})

    def __init__(
        self,
        url: str,
        profile: str | Profile = "agentforge",
        *,
        tasks: Sequence[int | str] | None = None,
        num_tasks: int | None = None,
        splits: Mapping[str, float | int] | None = None,
        seed: int = 0,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        max_connections: int = 128,
        name: str | None = None,
        instruction: str | None = None,
        max_steps: int | None = None,
        connect: bool = True,
    ) -> None:
        self.profile = get_profile(profile)
        self.url = self._base_url(url, self.profile)
        if timeout <= 0 or retries < 0 or backoff < 0 or max_connections < 1:
            raise EnvError("timeout and max_connections must be positive, retries and backoff not negative")
        self.timeout = float(timeout)
        # ``retries`` and ``backoff`` are the short form of a policy: doubling delays, capped at 2 s. A mapping
        # is a policy's fields, as an environment file's ``params: {retry: {...}}`` gives them.
        if isinstance(retry, Mapping):
            try:
                retry = RetryPolicy.model_validate(retry)
            except ValidationError as exc:
                raise EnvError(f"invalid retry policy: {exc}") from None
        self.retry = retry or RetryPolicy(max_attempts=int(retries) + 1, initial_delay=float(backoff), backoff=2.0,
                                          max_delay=2.0, jitter=0.0, retry_on=ENV_RETRY_CODES)
        self.max_connections = int(max_connections)
        self.adapter = get_adapter(self.profile.action_adapter)
        self._selection = list(tasks) if tasks is not None else None
        self._num_tasks = num_tasks
        self._splits = dict(splits) if splits is not None else None
        self._seed = seed
        self._overrides = {"name": name, "instruction": instruction, "max_steps": max_steps}
        self._client: httpx.Client | None = None
        self.name = name or self.profile.name
        self.instruction = instruction if instruction is not None else self.profile.instruction
        self.multi_turn = self.profile.multi_turn
        self.max_steps = max_steps if max_steps is not None else self.profile.max_steps
        self.connected = False
        super().__init__(())
        if not self.profile.fetch_info:
            self._set_tasks(self._index_tasks())
            self.connected = True
        elif connect:
            try:
                self.connect()
            except EnvError:
                self.close()
                raise

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    async def aopen(cls, url: str, profile: str | Profile = "agentforge", **options: Any) -> RemoteEnv:
        """Construct and connect without blocking the event loop."""
        env = cls(url, profile, connect=False, **options)
        try:
            await env.aconnect()
        except EnvError:
            await env.aclose()
            raise
        return env

    @staticmethod
    def _base_url(url: str, profile: Profile) -> str:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise EnvError(f"invalid environment server URL '{url}': {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise EnvError(f"invalid environment server URL '{url}': expected http://host:port[/path]")
        base = url.rstrip("/")
        if profile.path_prefix and not base.endswith(profile.path_prefix):
            base += profile.path_prefix
        return base

    def _index_tasks(self) -> list[Task]:
        """AgentGym servers: tasks are integer indices, split on the client."""
        if self._selection is not None:
            indices: list[int] = []
            for item in self._selection:
                if isinstance(item, bool) or not isinstance(item, (int, str)) or not str(item).isdigit():
                    raise EnvError(f"{self.name}: tasks for the '{self.profile.name}' profile are non-negative "
                                   f"integer indices, got {item!r}")
                indices.append(int(item))
        else:
            count = self._num_tasks if self._num_tasks is not None else self.profile.num_tasks
            if count is None:
                raise EnvError(f"{self.name}: the '{self.profile.name}' server does not say how many tasks it has; "
                               "pass tasks=[indices] or num_tasks=N")
            indices = list(range(count))
        if len(set(indices)) != len(indices):
            raise EnvError(f"{self.name}: duplicate task indices in tasks=")
        ids = [str(i) for i in indices]
        split_of = assign_splits(ids, self._splits, self._seed)
        return [Task(id=task_id, split=split_of[task_id], meta={"data_idx": i})
                for task_id, i in zip(ids, indices, strict=True)]

    def _op_describe(self) -> _Op[None]:
        info = yield _Call("info", "GET", "/info", missing_ok=True)
        if info is None:  # an AgentGym server (or anything else): it has no /info
            raise EnvError(f"{self.name}: info (GET {self.url}/info): HTTP 404: Not Found: {self._not_ours()}",
                           env=self.name, op="info", url=self.url + "/info", status=404)
        if not isinstance(info, dict) or not isinstance(info.get("name"), str):
            error = self._shape_error("info", "an object with name, instruction, multi_turn, max_steps", info)
            raise EnvServerError(f"{error.message}; {self._not_ours()}", **error.fields)
        listing = yield _Call("tasks", "GET", "/tasks")
        rows = listing.get("tasks") if isinstance(listing, dict) else None
        if not isinstance(rows, list):
            raise self._shape_error("tasks", 'an object {"tasks": [...]}', listing)
        tasks: list[Task] = []
        for row in rows:
            ok = (isinstance(row, dict) and isinstance(row.get("id"), str) and row.get("split") in SPLITS
                  and isinstance(row.get("data_idx"), int) and isinstance(row.get("inputs", {}), dict))
            if not ok:
                raise self._shape_error("tasks", '{"id": str, "split": train|val|test, "data_idx": int}', row)
            tasks.append(Task(id=row["id"], split=row["split"], inputs=row.get("inputs", {}),
                              meta={"data_idx": row["data_idx"]}))
        if self._selection is not None:
            by_id = {t.id: t for t in tasks}
            by_idx = {t.meta["data_idx"]: t for t in tasks}
            chosen: list[Task] = []
            for item in self._selection:
                found = by_idx.get(item) if isinstance(item, int) and not isinstance(item, bool) else by_id.get(item)
                if found is None:
                    raise EnvError(f"{info['name']}: the server has no task {item!r}", env=info["name"])
                chosen.append(found)
            tasks = chosen
        if self._splits is not None:
            split_of: dict[str, Split] = assign_splits([t.id for t in tasks], self._splits, self._seed)
            tasks = [t.model_copy(update={"split": split_of[t.id]}) for t in tasks]
        self.name = self._overrides["name"] or info["name"]
        if self._overrides["instruction"] is None:
            self.instruction = str(info.get("instruction", ""))
        self.multi_turn = bool(info.get("multi_turn", True))
        if self._overrides["max_steps"] is None and isinstance(info.get("max_steps"), int):
            self.max_steps = info["max_steps"]
        self._set_tasks(tasks)
        self.connected = True

    @staticmethod
    def _not_ours() -> str:
        from agentforge.envs.remote.profiles import PROFILES

        others = ", ".join(name for name in PROFILES if name != "agentforge")
        return (f"this server does not speak agentforge's protocol; set `profile:` to one of {others} "
                "(the AgentGym server it is) in the environment file, or --profile with a URL")

    def connect(self) -> None:
        """Read the server's description (``agentforge`` profile); a no-op for AgentGym profiles."""
        if not self.connected:
            self._run(self._op_describe())

    async def aconnect(self) -> None:
        if not self.connected:
            await self._arun(self._op_describe())

    # -- the Environment contract ------------------------------------------------------------------

    def session(self) -> RemoteSession:
        if not self.connected:
            raise EnvError(f"{self.name}: not connected to {self.url}; call connect() or await aconnect() first")
        return RemoteSession(self)

    def tasks(self, split: Split | None = None) -> list[Task]:
        if not self.connected:
            raise EnvError(f"{self.name}: not connected to {self.url}; call connect() or await aconnect() first")
        return super().tasks(split)

    async def ahealth(self) -> Any:
        """What ``GET /`` answers (a JSON string on every known server)."""
        return await self._arun(self._op_health())

    def health(self) -> Any:
        return self._run(self._op_health())

    @staticmethod
    def _op_health() -> _Op[Any]:
        return (yield _Call("health", "GET", "/"))

    async def aclose(self) -> None:
        """Close the blocking client's connections (each session closes its own with its ``aclose``)."""
        self.close()

    def close(self) -> None:
        """Close the blocking client's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def __aenter__(self) -> RemoteEnv:
        await self.aconnect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> RemoteEnv:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteEnv({self.url!r}, profile={self.profile.name!r})"

    # -- transport ---------------------------------------------------------------------------------

    def _open_aclient(self) -> aiohttp.ClientSession:
        """A new async HTTP client; whoever opens one closes it (a session at its ``aclose``)."""
        # Idle connections go after 4 s, below uvicorn's 5 s keep-alive, so a reused one is never one the
        # server is closing. ``connect`` bounds the wait for a pooled connection too.
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections,
                                         keepalive_timeout=KEEPALIVE_S)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_connect=self.timeout,
                                        sock_read=self.timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=_CLIENT_HEADERS,
                                     trust_env=False)  # a server is addressed directly, never via a proxy

    def _sclient(self) -> httpx.Client:
        if self._client is None or self._client.is_closed:
            self._client = httpx.Client(
                base_url=self.url, timeout=httpx.Timeout(self.timeout), headers=_CLIENT_HEADERS, trust_env=False,
                limits=httpx.Limits(max_connections=self.max_connections,
                                    max_keepalive_connections=self.max_connections, keepalive_expiry=KEEPALIVE_S))
        return self._client

    @staticmethod
    def _body(call: _Call) -> tuple[bytes | None, Mapping[str, str] | None]:
        if call.body is _NO_BODY:
            return None, None
        return _dumps(call.body), _JSON_HEADERS

    def _may_retry(self, call: _Call, attempt: int, failure: _Failure | None = None, status: int | None = None) -> bool:
        if attempt >= self.retry.retries or not self.retry.retries_code(EnvServerError.code):
            return False
        if failure is not None:
            return not failure.sent or (call.idempotent and failure.transient)
        return call.idempotent and status in _RETRY_STATUSES

    async def _asend(self, call: _Call, client: aiohttp.ClientSession) -> Any:
        url = self.url + call.path
        content, headers = self._body(call)
        attempt = 0
        while True:
            try:
                async with client.request(call.method, url, data=content, headers=headers,
                                          params=call.params) as response:
                    reply = _Reply(response.status, await response.read(), response.reason or "")
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = _aiohttp_failure(exc, self.timeout)
                if not self._may_retry(call, attempt, failure=failure):
                    raise self._transport_error(call, failure, attempt) from exc
            else:
                if not self._may_retry(call, attempt, status=reply.status):
                    return self._decode(call, reply)
            log.debug("remote_env.retry", env=self.name, op=call.op, attempt=attempt + 1)
            await asyncio.sleep(self.retry.delay(attempt + 1))
            attempt += 1

    def _send(self, call: _Call) -> Any:
        client = self._sclient()
        content, headers = self._body(call)
        attempt = 0
        while True:
            try:
                response = client.request(call.method, call.path, content=content, headers=headers,
                                          params=call.params)
            except httpx.RequestError as exc:
                failure = _httpx_failure(exc, self.timeout)
                if not self._may_retry(call, attempt, failure=failure):
                    raise self._transport_error(call, failure, attempt) from exc
            else:
                reply = _Reply(response.status_code, response.content, response.reason_phrase)
                if not self._may_retry(call, attempt, status=reply.status):
                    return self._decode(call, reply)
            log.debug("remote_env.retry", env=self.name, op=call.op, attempt=attempt + 1)
            time.sleep(self.retry.delay(attempt + 1))  # the blocking twin of asyncio.sleep above
            attempt += 1

    async def _arun(self, op: _Op[T], client: aiohttp.ClientSession | None = None) -> T:
        """Drive ``op`` on ``client``, or on a client of its own (opened only if it sends anything)."""
        own: aiohttp.ClientSession | None = None
        try:
            call = next(op)
            if client is None:
                client = own = self._open_aclient()
            while True:
                call = op.send(await self._asend(call, client))
        except StopIteration as stop:
            return stop.value
        finally:
            op.close()
            if own is not None:
                await own.close()

    def _run(self, op: _Op[T]) -> T:
        try:
            call = next(op)
            while True:
                call = op.send(self._send(call))
        except StopIteration as stop:
            return stop.value
        finally:
            op.close()

    # -- error mapping -----------------------------------------------------------------------------

    def _where(self, call: _Call) -> str:
        return f"{self.name}: {call.op} ({call.method} {self.url}{call.path})"

    def _transport_error(self, call: _Call, failure: _Failure, attempt: int) -> EnvServerError:
        what = failure.what
        if attempt:
            what += f" (after {attempt} retr{'y' if attempt == 1 else 'ies'})"
        elif not call.idempotent and failure.sent:
            what += " (not retried: the request may have reached the server)"
        return EnvServerError(f"{self._where(call)}: {what}", env=self.name, op=call.op, url=self.url + call.path)

    def _decode(self, call: _Call, response: _Reply) -> Any:
        status = response.status
        url = self.url + call.path
        if 200 <= status < 300:
            try:
                payload = _loads(response.content)
            except _DecodeError:
                raise EnvServerError(
                    f"{self._where(call)}: the server answered malformed JSON (HTTP {status}, "
                    f"{len(response.content)} bytes): {_snippet(response.text, 200)!r}",
                    env=self.name, op=call.op, url=url, status=status) from None
            if isinstance(payload, dict) and "error" in payload:
                raise EnvError(f"{self._where(call)}: the server refused: {_snippet(str(payload['error']))}",
                               env=self.name, op=call.op, url=url, status=status)
            return payload
        if status == 404 and call.missing_ok:
            return None
        message = self._server_message(response)
        if 400 <= status < 500:
            raise EnvError(f"{self._where(call)}: HTTP {status}: {message}", env=self.name, op=call.op, url=url,
                           status=status)
        if status == 500 and self.profile.error_style == "http_500":
            raise EnvError(f"{self._where(call)}: HTTP 500 ({self.profile.name} reports application errors this "
                           f"way): {message}", env=self.name, op=call.op, url=url, status=status)
        if status >= 500:
            raise EnvServerError(f"{self._where(call)}: server error HTTP {status}: {message}", env=self.name,
                                 op=call.op, url=url, status=status)
        raise EnvServerError(f"{self._where(call)}: unexpected HTTP {status}: {message}", env=self.name,
                             op=call.op, url=url, status=status)

    @staticmethod
    def _server_message(response: _Reply) -> str:
        text = response.text
        try:
            payload = _loads(response.content)
        except _DecodeError:
            return _snippet(text) or response.reason
        if isinstance(payload, dict):
            detail = payload.get("error", payload.get("detail", payload))
            if isinstance(detail, list):  # FastAPI's validation errors
                parts = []
                for item in detail:
                    if isinstance(item, dict):
                        loc = ".".join(str(x) for x in item.get("loc", ()))
                        parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg", item)))
                    else:
                        parts.append(str(item))
                return _snippet("; ".join(parts))
            return _snippet(detail if isinstance(detail, str) else _describe(detail))
        return _snippet(payload if isinstance(payload, str) else _describe(payload))

    def _shape_error(self, op: str, expected: str, got: Any) -> EnvServerError:
        return EnvServerError(f"{self.name}: {op} ({self.url}): unexpected answer shape: expected {expected}, "
                              f"got {_describe(got)}", env=self.name, op=op, url=self.url)


class RemoteSession(Session):
    """One episode at a time on one server instance, created lazily by the first reset.

    The session stops at the first ``done`` itself (some servers keep accepting steps, and
    textcraft then reports ``done: false`` again): a later step raises :class:`EnvError` until the
    next reset. A reply the profile's action adapter rejects (two ``Action:`` lines for textcraft)
    is not sent; it becomes a step whose observation explains the problem, reward 0, not done.
    """

    def __init__(self, env: RemoteEnv) -> None:
        self.env = env
        self.profile = env.profile
        self.instance: int | None = None
        self.task: Task | None = None
        self.done = False
        self.steps = 0
        self._http: aiohttp.ClientSession | None = None

    # -- operations (shared by the async and the sync twins) ---------------------------------------

    def _op_create(self) -> _Op[int]:
        body = {} if self.profile.create_body else _NO_BODY
        payload = yield _Call("create", "POST", "/create", body, idempotent=False)
        value = payload if self.profile.create_shape == "int" else (
            payload.get("id") if isinstance(payload, dict) else None)
        if isinstance(value, bool) or not isinstance(value, int):
            expected = "a bare integer id" if self.profile.create_shape == "int" else 'an object {"id": int}'
            raise self.env._shape_error("create", expected, payload)
        return value

    def _task_value(self, task: Task) -> int | str:
        if self.profile.task_value == "id":
            return task.id
        index = task.meta.get("data_idx")
        if isinstance(index, int) and not isinstance(index, bool):
            return index
        if task.id.isdigit():
            return int(task.id)
        raise EnvError(f"{self.env.name}: task '{task.id}' has no integer index for the server", env=self.env.name,
                       task=task.id)

    def _op_reset(self, task_id: str) -> _Op[Observation]:
        task = self.env.task(task_id)
        if self.instance is None:
            self.instance = yield from self._op_create()
        body = {self.profile.id_field: self.instance, self.profile.task_field: self._task_value(task)}
        payload = yield _Call("reset", "POST", "/reset", body)
        obs = self._parse_reset(payload)
        if self.profile.observe_after_reset:
            obs = Observation(text=(yield from self._op_observe()))
        self.task, self.done, self.steps = task, False, 0
        return obs

    def _op_step(self, action: str) -> _Op[StepResult]:
        check_step(self.env.name, self.task if self.instance is not None else None, self.done, action)
        parsed = self.env.adapter(action)
        self.steps += 1
        if parsed.action is None:
            return StepResult(observation=Observation(text=parsed.feedback), reward=0.0, done=False,
                              info={"rejected_action": True})
        body = {self.profile.id_field: self.instance, "action": parsed.action}
        payload = yield _Call("step", "POST", "/step", body, idempotent=False)
        result = self._parse_step(payload, parsed.action)
        self.done = result.done
        return result

    def _op_observe(self) -> _Op[str]:
        if self.instance is None:
            raise EnvError(f"{self.env.name}: no server instance yet; reset first", env=self.env.name)
        payload = yield _Call("observation", "GET", "/observation", params={self.profile.id_field: self.instance})
        if isinstance(payload, str):
            return payload
        if isinstance(payload, dict):
            for key in (self.profile.obs_key, "observation"):
                if isinstance(payload.get(key), str):
                    return payload[key]
        raise self.env._shape_error("observation", "a JSON string or an object with the observation", payload)

    def _op_close(self) -> _Op[None]:
        instance, self.instance = self.instance, None
        self.task, self.done = None, False
        if instance is None or not self.profile.has_close:
            return
        # A 404 means the server already dropped the instance (closed or expired): nothing to release.
        answer = yield _Call("close", "POST", "/close", {self.profile.id_field: instance}, missing_ok=True)
        if answer is False or (isinstance(answer, dict) and answer.get("success") is False):
            # AgentGym's textcraft answers a bare ``false`` for an id it does not know: the instance may leak.
            log.warning("remote_env.close_refused", env=self.env.name, url=self.env.url, instance=instance,
                        answer=_describe(answer))

    # -- parsing -----------------------------------------------------------------------------------

    def _parse_reset(self, payload: Any) -> Observation:
        if self.profile.reset_shape == "array":
            if isinstance(payload, list) and payload and isinstance(payload[0], str):
                return Observation(text=payload[0])
            raise self.env._shape_error("reset", "a JSON array [observation, ...]", payload)
        if not isinstance(payload, dict) or not isinstance(payload.get(self.profile.obs_key), str):
            raise self.env._shape_error("reset", f'an object with a string "{self.profile.obs_key}"', payload)
        text = payload[self.profile.obs_key]
        prefix_key = self.profile.reset_prefix_key
        if prefix_key and isinstance(payload.get(prefix_key), str):
            text = f"{payload[prefix_key]}\n{text}"
        return self._observation(text, payload)

    def _parse_step(self, payload: Any, action: str) -> StepResult:
        key, reward_key = self.profile.obs_key, self.profile.reward_key
        if not isinstance(payload, dict):
            raise self.env._shape_error("step", f'an object with "{key}", "{reward_key}" and "done"', payload)
        text, reward, done = payload.get(key), payload.get(reward_key), payload.get("done")
        if (not isinstance(text, str) or isinstance(reward, bool) or not isinstance(reward, (int, float))
                or done not in (True, False)):
            raise self.env._shape_error(
                "step", f'an object with "{key}": str, "{reward_key}": number, "done": bool', payload)
        info: dict[str, Any] = {"action_sent": action}
        if isinstance(payload.get("info"), dict):  # sqlgym's carries the gold SQL: a secret field (see the class)
            info["server_info"] = payload["info"]
        return StepResult(observation=self._observation(text, payload),
                          reward=float(reward) * self.profile.reward_scale, done=bool(done), info=info)

    @staticmethod
    def _observation(text: str, payload: Mapping[str, Any]) -> Observation:
        actions = payload.get("available_actions")
        fields = payload.get("fields")
        return Observation(
            text=text,
            available_actions=tuple(actions) if isinstance(actions, list) and all(
                isinstance(a, str) for a in actions) else None,
            fields=fields if isinstance(fields, dict) else {},
        )

    # -- async API and sync twins --------------------------------------------------------------------

    def _aclient(self) -> aiohttp.ClientSession:
        """This session's HTTP client: its connection stays open from one step to the next."""
        if self._http is None or self._http.closed:
            self._http = self.env._open_aclient()
        return self._http

    async def areset(self, task_id: str) -> Observation:
        return await self.env._arun(self._op_reset(task_id), self._aclient())

    async def astep(self, action: str) -> StepResult:
        return await self.env._arun(self._op_step(action), self._aclient())

    async def aobserve(self) -> str:
        """The server's current observation (``GET /observation``)."""
        return await self.env._arun(self._op_observe(), self._aclient())

    async def aclose(self) -> None:
        """Release the server instance, then this session's connection."""
        http, self._http = self._http, None
        try:
            await self.env._arun(self._op_close(), http if http is not None and not http.closed else None)
        finally:
            if http is not None:
                await http.close()

    def reset(self, task_id: str) -> Observation:
        return self.env._run(self._op_reset(task_id))

    def step(self, action: str) -> StepResult:
        return self.env._run(self._op_step(action))

    def observe(self) -> str:
        return self.env._run(self._op_observe())

    def close(self) -> None:
        self.env._run(self._op_close())


__all__ = ["RemoteEnv", "RemoteSession"]
