"""`agentforge memory stats | search | export | import | forget | rebuild`, on a throwaway typer app that
mounts ``memory_app`` the way the main CLI does. Exit codes: 0 ok, 1 the store failed, 2 bad input."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agentforge.cli.memory import memory_app
from agentforge.memory import Experience, Provenance

app = typer.Typer()
app.add_typer(memory_app, name="memory")


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, ["memory", *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def preset(tmp_path: Path) -> str:
    path = tmp_path / "mem.yaml"
    path.write_text("version: 1\nkind: memory\npath: store\nembedder: hashing\n")
    return str(path)


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    records = [
        Experience(kind="attempt", text="Tom buys 3 apples at 2 dollars each. How much?", env="arith", task_id="t1",
                   score=1.0, spec_hash="abc"),
        Experience(kind="attempt", text="What is the capital of France?", env="capitals", task_id="c1", score=0.0,
                   failure="wrong_answer"),
        Experience(kind="lesson", text="Multiply the count by the unit price.", env="arith",
                   provenance=Provenance(run="r1", generation=2, optimizer="reflect", source_task_ids=("t1",))),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    return path


def test_import_then_stats_search_export_and_forget(preset: str, export_file: Path, tmp_path: Path) -> None:
    result = invoke("import", str(export_file), "--memory", preset)
    assert result.exit_code == 0, result.output
    assert "imported 3 records" in result.output and "holds 3 (was 0)" in result.output

    stats = json.loads(invoke("stats", "--memory", preset, "--json").stdout)
    assert stats["records"] == 3 and stats["by_kind"] == {"attempt": 2, "lesson": 1}
    assert stats["embedder"] == "hashing-384" and stats["path"] == str(tmp_path / "store")
    shown = invoke("stats", "--memory", preset).stdout
    assert "records" in shown and "env capitals" in shown

    hits = json.loads(invoke("search", "apples at 2 dollars", "-k", "2", "--memory", preset, "--json").stdout)
    assert hits[0]["record"]["task_id"] == "t1" and len(hits) == 2
    lessons = json.loads(invoke("search", "price", "--kind", "lesson", "--memory", preset, "--json").stdout)
    assert [h["record"]["kind"] for h in lessons] == ["lesson"]
    table = invoke("search", "capital", "--where", "env=capitals", "--memory", preset)
    assert table.exit_code == 0 and "France" in table.stdout and "apples" not in table.stdout

    out = tmp_path / "out.jsonl"
    assert invoke("export", str(out), "--memory", preset).exit_code == 0
    assert sorted(out.read_text().splitlines()) == sorted(export_file.read_text().splitlines())

    forgot = invoke("forget", "--where", "env=arith", "--where", "kind=attempt", "--memory", preset)
    assert forgot.exit_code == 0 and "forgot 1 records" in forgot.stdout
    assert json.loads(invoke("stats", "--memory", preset, "--json").stdout)["records"] == 2
    assert invoke("rebuild", "--memory", preset).stdout.strip() == "indexed 2 records"


def test_bad_input_exits_2_with_a_clear_message(preset: str, tmp_path: Path) -> None:
    forget_all = invoke("forget", "--memory", preset)
    assert forget_all.exit_code == 2
    bad_key = invoke("forget", "--where", "evn=arith", "--memory", preset)
    assert bad_key.exit_code == 2 and "did you mean 'env'" in bad_key.output
    assert invoke("forget", "--where", "arith", "--memory", preset).exit_code == 2
    assert invoke("search", "x", "--kind", "thought", "--memory", preset).exit_code == 2
    unknown = invoke("stats", "--memory", "defualt")
    assert unknown.exit_code == 2 and "did you mean 'default'" in unknown.output
    missing = invoke("import", str(tmp_path / "nope.jsonl"), "--memory", preset)
    assert missing.exit_code == 2 and "no such file" in missing.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "attempt"}\n')
    bad_line = invoke("import", str(broken), "--memory", preset)
    assert bad_line.exit_code == 2 and "broken.jsonl:1" in bad_line.output


def test_a_chroma_server_that_is_down_exits_1_naming_host_and_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "server.yaml"
    path.write_text(f"backend: server\nhost: 127.0.0.1\nport: {port}\npath: store\nembedder: hashing\n")
    result = invoke("stats", "--memory", str(path))
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.output and "chroma run" in result.output
