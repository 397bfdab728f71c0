"""The Chroma store over a real Chroma server: `chroma run` (the CLI chromadb installs) started on
loopback by this module, the whole conformance suite run against ``ChromaStore(host=..., port=...)``,
then the server stopped. Also: the index lives on the server and is rebuilt there from local records,
and a server that goes away mid-use loses no record."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentforge.errors import MemoryStoreError
from agentforge.memory import ChromaStore, Experience, HashingEmbedder
from agentforge.memory._store import StoreBase
from tests.unit.test_memory_conformance import *  # noqa: F403 (the suite, collected here with this module's fixture)

_collections = itertools.count()


def _chroma_cli() -> str:
    beside = Path(sys.executable).with_name("chroma")
    found = str(beside) if beside.is_file() else shutil.which("chroma")
    if found is None:
        pytest.skip("the chroma CLI (from the chromadb package) is not installed")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChromaServer:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = (self.data.parent / "chroma-server.log").open("ab")
        self.proc = subprocess.Popen([_chroma_cli(), "run", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--path", str(self.data)], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("chroma run did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    running = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data")
    running.start()
    yield running
    running.stop()


@pytest.fixture
def make_store(server: ChromaServer, tmp_path: Path) -> Iterator[Callable[..., StoreBase]]:
    opened: list[StoreBase] = []

    def make(**options: Any) -> StoreBase:
        n = next(_collections)
        store = ChromaStore(tmp_path / f"records{n}", HashingEmbedder(), host="127.0.0.1", port=server.port,
                            collection=f"conformance-{n}", exact_limit=0, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_the_index_lives_on_the_server_and_is_rebuilt_there_from_local_records(server: ChromaServer,
                                                                               tmp_path: Path) -> None:
    import chromadb
    from chromadb.config import Settings

    records = [Experience(kind="attempt", text=f"task number {i} about apples and pears {i * 7}", env="arith",
                          task_id=f"t{i}", score=i / 10) for i in range(10)]
    with ChromaStore(tmp_path, HashingEmbedder(), host="127.0.0.1", port=server.port, collection="rebuilt") as store:
        store.add(records)
        assert store.stats().backend == "server"
        assert not (tmp_path / "chroma").exists()  # no embedded index: the vectors are on the server
    client = chromadb.HttpClient(host="127.0.0.1", port=server.port, settings=Settings(anonymized_telemetry=False))
    assert client.get_collection("rebuilt-attempt", embedding_function=None).count() == 10
    client.delete_collection("rebuilt-attempt")
    with ChromaStore(tmp_path, HashingEmbedder(), host="127.0.0.1", port=server.port, collection="rebuilt") as store:
        assert store.index_count() == 10
        assert store.similar(records[4].text, k=1)[0].record.task_id == "t4"
    client.close()


def test_a_server_gone_mid_use_is_a_clear_error_and_no_record_is_lost(tmp_path: Path) -> None:
    own = ChromaServer(tmp_path / "own-server")
    own.start()
    try:
        store = ChromaStore(tmp_path / "records", HashingEmbedder(), host="127.0.0.1", port=own.port)
        store.add([Experience(kind="lesson", text="first lesson", env="arith")])
        own.stop()
        with pytest.raises(MemoryStoreError, match=rf"127\.0\.0\.1:{own.port} still running.*records in .* are kept"):
            store.add([Experience(kind="lesson", text="second lesson, written while the server is down", env="arith")])
        assert store.count() == 2  # the records file has both
        store.close()
        with pytest.raises(MemoryStoreError, match=rf"no Chroma server answers at 127\.0\.0\.1:{own.port}"):
            ChromaStore(tmp_path / "records", HashingEmbedder(), host="127.0.0.1", port=own.port)
        own.start()  # back, on the same port and data
        with ChromaStore(tmp_path / "records", HashingEmbedder(), host="127.0.0.1", port=own.port) as store:
            assert store.index_count() == 2  # rebuilt from the records
            assert store.lessons_for("lesson written while down", k=1)[0].record.text.startswith("second")
    finally:
        own.stop()
