"""A minimal OpenAI-compatible chat-completions server for benchmarks: it answers every request after
a fixed delay and costs the client's machine as little CPU as possible.

    python benchmarks/stub_openai.py PORT DELAY_S

``POST /v1/chat/completions`` answers ``"ok " + the last 12 characters of the last message`` with a
usage block; ``GET /calls`` returns how many completions it has served. HTTP/1.1 with keep-alive,
written on asyncio's protocol layer: a framework server (starlette + uvicorn) added about 3 ms of
latency per request under load here, which the benchmark would wrongly charge to the client.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


class StubProtocol(asyncio.Protocol):
    calls = 0

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            parts = head[0].split(" ")
            self.handle(parts[1] if len(parts) > 1 else "/", body)

    def handle(self, path: str, body: bytes) -> None:
        if path.startswith("/calls"):
            self.send(200, json.dumps({"calls": StubProtocol.calls}).encode())
            return
        if not path.endswith("/chat/completions"):
            self.send(404, b'{"error": {"message": "not found"}}')
            return
        StubProtocol.calls += 1
        request = json.loads(body)
        text = "ok " + request["messages"][-1]["content"][-12:]
        payload = json.dumps({
            "id": f"cmpl-{StubProtocol.calls}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", "stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }).encode()
        asyncio.get_running_loop().call_later(self.delay, self.send, 200, payload)

    def send(self, status: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = b"OK" if status == 200 else b"Not Found"
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, reason, len(payload), payload))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StubProtocol(delay), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2])))
