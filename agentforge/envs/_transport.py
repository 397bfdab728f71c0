"""A lean httpx transport for many short, concurrent requests to one server.

httpx's default pool rescans every connection per request, which cost 1.6-2.6 ms of client CPU
per environment step in benchmarks/bench_env_server.py; this keeps a LIFO stack of idle
keep-alive connections per origin (h11 over asyncio streams) and raises httpx's own exceptions,
so callers see the same errors as with the stock transport.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping

import h11
import httpx


class Connection:
    """One HTTP/1.1 keep-alive connection: asyncio streams, h11 for the protocol."""

    __slots__ = ("h11", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(our_role=h11.CLIENT)
        self.idle_since = 0.0

    def reusable(self, now: float, expiry: float) -> bool:
        return now - self.idle_since < expiry and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class StreamTransport(httpx.AsyncBaseTransport):
    """An httpx transport for many concurrent, short requests to one server.

    httpcore's pool rescans every connection and queued request on each request, so with 32+
    concurrent sessions its CPU cost per request grows with the concurrency (measured: 2.6 ms of
    client CPU per step at 32 sessions; see benchmarks/bench_env_server.py). This keeps a LIFO
    stack of idle keep-alive connections instead: O(1) per request. It raises httpx's own
    exceptions, so the error mapping above is the same for both transports. Idle connections are
    dropped after ``keepalive_expiry`` seconds, which is kept below uvicorn's 5 s keep-alive so that
    a reused connection is not one the server is closing.
    """

    def __init__(self, max_connections: int, keepalive_expiry: float = 4.0) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None
        conn: Connection | None = None
        done = False
        try:
            conn = await self._checkout(request, timeouts.get("connect"))
            body = await request.aread()
            response = await self._exchange(conn, request, body, timeouts)
            done = True
            return response
        finally:
            self._slots.release()
            if conn is not None:
                self._checkin(request, conn, done)

    @staticmethod
    def _origin(url: httpx.URL) -> tuple[str, str, int]:
        return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)

    async def _checkout(self, request: httpx.Request, timeout: float | None) -> Connection:
        key = self._origin(request.url)
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.reusable(now, self._expiry):
                return conn
            conn.close()
        use_ssl: ssl.SSLContext | None = None
        if key[0] == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            use_ssl = self._ssl
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(key[1], key[2], ssl=use_ssl, limit=2 ** 20)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {key[1]}:{key[2]} in time", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(f"{exc.strerror or exc}", request=request) from exc
        return Connection(reader, writer)

    def _checkin(self, request: httpx.Request, conn: Connection, done: bool) -> None:
        reusable = (done and not self._closed and conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
                    and not conn.h11.trailing_data[0])  # bytes past the response: the server is out of step
        if not reusable:
            conn.close()
            return
        conn.h11.start_next_cycle()
        conn.idle_since = time.monotonic()
        self._idle.setdefault(self._origin(request.url), []).append(conn)

    async def _exchange(self, conn: Connection, request: httpx.Request, body: bytes,
                        timeouts: Mapping[str, float | None]) -> httpx.Response:
        try:
            out = conn.h11.send(h11.Request(method=request.method, target=request.url.raw_path,
                                            headers=request.headers.raw))
            if body:
                out += conn.h11.send(h11.Data(data=body))
            out += conn.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        try:
            conn.writer.write(out)
            async with asyncio.timeout(timeouts.get("write")):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("the request could not be sent in time", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc
        head: h11.Response | None = None
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(timeouts.get("read")):
                while True:
                    event = conn.h11.next_event()
                    if event is h11.NEED_DATA:
                        data = await conn.reader.read(65536)
                        if not data and head is None:
                            raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                                            request=request)
                        conn.h11.receive_data(data)  # b"" is the end of the stream: h11 says if the body was whole
                    elif isinstance(event, h11.Response):
                        head = event
                    elif isinstance(event, h11.Data):
                        chunks.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                                        request=request)
                    # h11.InformationalResponse (1xx): keep reading
        except TimeoutError:
            raise httpx.ReadTimeout("no complete response in time", request=request) from None
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        assert head is not None
        return httpx.Response(head.status_code, headers=head.headers, stream=httpx.ByteStream(b"".join(chunks)),
                              request=request, extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason})

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
