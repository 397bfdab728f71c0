from __future__ import annotations

import ast
import asyncio
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from agentforge.errors import SandboxError
from agentforge.sandbox import SandboxResult, arun_python, extract_code, network_isolation, run_python
from agentforge.sandbox import python as sandbox


def _alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _wait_dead(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_stdout_is_captured_and_run_is_ok() -> None:
    result = await arun_python("print('hello', 6 * 7)")
    assert isinstance(result, SandboxResult)
    assert result.stdout == "hello 42\n"
    assert result.stderr == ""
    assert result.returncode == 0
    assert result.ok and not result.timed_out
    assert result.duration_s > 0


def test_sync_twin_matches() -> None:
    result = run_python("import sys\nprint(sum(range(5)))\nsys.exit(3)")
    assert result.stdout == "10\n"
    assert result.returncode == 3
    assert not result.ok


async def test_inputs_are_top_level_variables_and_a_dict() -> None:
    inputs = {"numbers": [1, 2, 3], "name": "ada", "not an identifier": 1}
    code = "print(sum(numbers), name.upper(), sorted(inputs))"
    result = await arun_python(code, inputs=inputs)
    assert result.stdout.strip() == "6 ADA ['name', 'not an identifier', 'numbers']"


async def test_non_json_inputs_are_rejected() -> None:
    with pytest.raises(SandboxError, match="JSON"):
        await arun_python("print(1)", inputs={"x": object()})


async def test_errors_show_the_codes_traceback_not_the_bootstrap() -> None:
    result = await arun_python("x = 1\nprint('before')\n1 / 0\n")
    assert result.returncode == 1
    assert result.stdout == "before\n"
    assert "ZeroDivisionError" in result.stderr
    assert "line 3" in result.stderr
    assert "bootstrap" not in result.stderr


async def test_timeout_kills_an_infinite_loop() -> None:
    started = time.monotonic()
    result = await arun_python("print('started')\nwhile True:\n    pass\n", timeout=1.0)
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert result.returncode is None
    assert not result.ok
    assert elapsed < 3.0
    assert "started" in result.stdout  # unbuffered: output before the kill survives
    assert "timed out" in result.stderr


def test_sync_timeout_kills_an_infinite_loop() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass\n", timeout=1.0)
    assert result.timed_out
    assert time.monotonic() - started < 3.0


LATE_WRITER = (
    "subprocess.Popen([sys.executable, '-c', "
    "'import time; time.sleep(1); open(\"late.txt\", \"w\").write(\"late\")']{extra})\n"
)


@pytest.mark.parametrize("extra", ["", ", start_new_session=True"], ids=["child", "setsid-child"])
async def test_nothing_the_code_started_outlives_the_run(tmp_path: Path, extra: str) -> None:
    # A child that leaves the process group with setsid() must die too (the run has its own PID namespace).
    if extra and network_isolation() not in ("bwrap", "unshare"):
        pytest.skip("without namespaces a setsid() child can leave the process group")
    result = await arun_python("import subprocess, sys\n" + LATE_WRITER.format(extra=extra), workdir=tmp_path)
    assert result.ok, result.stderr
    await asyncio.sleep(1.6)
    assert not (tmp_path / "late.txt").exists()


async def test_cancellation_kills_the_child(tmp_path: Path) -> None:
    # The workspace is copied back only when the run ends, so the test watches the process table instead.
    marker = f"cancel-{time.monotonic_ns()}"
    sleeper = f"[sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}]"
    code = f"import sys, subprocess\nsubprocess.run({sleeper})\n"
    task = asyncio.create_task(arun_python(code, workdir=tmp_path, timeout=30))
    for _ in range(200):
        if _with_marker(marker):
            break
        await asyncio.sleep(0.05)
    assert _with_marker(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(40):
        if not _with_marker(marker):
            break
        await asyncio.sleep(0.05)
    assert not _with_marker(marker)  # the child is gone


def _with_marker(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes() and _alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


async def test_memory_limit_stops_a_huge_allocation() -> None:
    result = await arun_python("block = bytearray(2 * 1024**3)\nprint('allocated')", memory_mb=256)
    assert not result.ok
    assert "allocated" not in result.stdout
    assert "MemoryError" in result.stderr


async def test_file_size_limit() -> None:
    result = await arun_python("open('big', 'wb').write(b'x' * (60 * 1024 * 1024))")
    assert not result.ok
    assert "File too large" in result.stderr


@pytest.mark.parametrize("layer", ["default", "python-guard-only"])
async def test_network_is_blocked(layer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if layer == "python-guard-only":  # unconfined, on a machine where unshare is not permitted
        monkeypatch.setenv("AGENTFORGE_SANDBOX", "unconfined")
        monkeypatch.setattr(sandbox, "_net_prefix", lambda: ())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('connected')\n"
            "except OSError as exc:\n"
            "    print('blocked', type(exc).__name__)\n"
        )
        result = await arun_python(code)
        assert result.ok, result.stderr
        assert result.stdout.startswith("blocked")
        with pytest.raises(BlockingIOError):
            server.accept()


async def test_low_level_sockets_are_blocked_by_the_namespace() -> None:
    if network_isolation() not in ("bwrap", "unshare"):
        pytest.skip("no network namespace here; only the Python guard applies")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        # `_socket` bypasses the Python-level guard; the empty network namespace still refuses (unreachable
        # when its loopback is down, refused when bwrap brought it up: both are OSErrors).
        code = (
            f"import _socket\ns = _socket.socket()\ntry:\n    s.connect(('127.0.0.1', {port}))\n"
            "except OSError as exc:\n    raise OSError(repr(exc)) from None\nprint('connected')"
        )
        result = await arun_python(code)
        assert "connected" not in result.stdout
        assert "OSError" in result.stderr


async def test_root_cannot_nsenter_back_into_the_parents_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # The unconfined fallback's own guard (confined, nsenter is not even in the view: test_escape_suite.py).
    monkeypatch.setenv("AGENTFORGE_SANDBOX", "unconfined")
    if network_isolation() != "unshare" or shutil.which("nsenter") is None:
        pytest.skip("needs unshare and nsenter")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('ESCAPED')"
        code = (
            "import os, subprocess\n"
            "net = f'--net=/proc/{os.getppid()}/ns/net'\n"
            "cmd = ['nsenter', net, python, '-I', '-c', probe]\n"
            "out = subprocess.run(cmd, capture_output=True, text=True)\n"
            "print(out.stdout, out.stderr)\n"
        )
        result = await arun_python(code, inputs={"python": sys.executable, "probe": probe})
        assert result.ok, result.stderr
        assert "ESCAPED" not in result.stdout


async def test_local_socket_pairs_still_work_for_asyncio() -> None:
    result = await arun_python("import asyncio\nasync def f():\n    return 7\nprint(asyncio.run(f()))")
    assert result.stdout == "7\n", result.stderr


async def test_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-leak-test-123")
    code = "import os\nprint(sorted(os.environ))\nprint(os.environ.get('OPENAI_API_KEY'))"
    result = await arun_python(code)
    assert "sk-leak-test-123" not in result.stdout
    names = ast.literal_eval(result.stdout.splitlines()[0])
    assert set(names) <= {"PATH", "LANG", "TMPDIR"}  # TMPDIR names the sandbox's private scratch folder


async def test_workdir_is_the_working_directory(tmp_path: Path) -> None:
    code = "import os\nopen('out.txt', 'w').write('data')\nprint(os.getcwd())"
    result = await arun_python(code, workdir=tmp_path)
    assert result.ok, result.stderr
    assert Path(result.stdout.strip()) == tmp_path.resolve()
    assert (tmp_path / "out.txt").read_text() == "data"


async def test_workspace_changes_reach_the_real_folder(tmp_path: Path) -> None:
    # The code works on a capped copy; what it made, changed, renamed and deleted is copied back.
    (tmp_path / "keep.txt").write_text("kept")
    (tmp_path / "edit.txt").write_text("old")
    (tmp_path / "gone.txt").write_text("bye")
    (tmp_path / "old_dir").mkdir()
    (tmp_path / "old_dir" / "inner.txt").write_text("inner")
    (tmp_path / "link").symlink_to("keep.txt")
    code = (
        "import os, shutil\n"
        "print(open('link').read(), open('old_dir/inner.txt').read())\n"
        "open('edit.txt', 'w').write('new')\n"
        "os.remove('gone.txt')\n"
        "shutil.rmtree('old_dir')\n"
        "os.makedirs('made/deep')\n"
        "open('made/deep/file.txt', 'w').write('deep')\n"
        "os.rename('keep.txt', 'renamed.txt')\n"
        "os.symlink('renamed.txt', 'link2')\n"
    )
    result = await arun_python(code, workdir=tmp_path)
    assert result.ok and result.stdout == "kept inner\n", result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edit.txt", "link", "link2", "made", "renamed.txt"]
    assert (tmp_path / "edit.txt").read_text() == "new"
    assert (tmp_path / "made" / "deep" / "file.txt").read_text() == "deep"
    assert os.readlink(tmp_path / "link2") == "renamed.txt" and (tmp_path / "link2").read_text() == "kept"
    assert os.readlink(tmp_path / "link") == "keep.txt"  # left as it was, now dangling


async def test_workspace_writes_before_a_timeout_are_kept(tmp_path: Path) -> None:
    code = "import time\nopen('partial.txt', 'w').write('done so far')\ntime.sleep(30)\n"
    result = await arun_python(code, workdir=tmp_path, timeout=1)
    assert result.timed_out
    assert (tmp_path / "partial.txt").read_text() == "done so far"


async def test_default_workdir_is_fresh_and_not_the_callers() -> None:
    result = await arun_python("import os\nprint(os.getcwd())\nprint(os.listdir('.'))")
    cwd, listing = result.stdout.splitlines()
    assert Path(cwd) != Path.cwd()
    assert listing == "[]"
    assert not Path(cwd).exists()  # removed after the run


async def test_output_is_truncated() -> None:
    result = await arun_python("print('x' * 5000)", max_output=100)
    assert result.stdout.startswith("x" * 100)
    assert "x" * 101 not in result.stdout
    assert "truncated" in result.stdout


async def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(SandboxError, match="timeout"):
        await arun_python("print(1)", timeout=0)
    with pytest.raises(SandboxError, match="memory_mb"):
        await arun_python("print(1)", memory_mb=1)
    with pytest.raises(SandboxError, match="max_output"):
        run_python("print(1)", max_output=-1)
    with pytest.raises(SandboxError, match="workspace_mb"):
        run_python("print(1)", workspace_mb=0)
    with pytest.raises(SandboxError, match="total_memory_mb"):
        run_python("print(1)", total_memory_mb=8)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Here you go:\n```python\nprint(1)\n```\nDone.", "print(1)"),
        ("```py\nx = 2\nprint(x)\n```", "x = 2\nprint(x)"),
        ("```\nprint(3)\n```", "print(3)"),
        ('Data:\n```json\n{"a": 1}\n```\nCode:\n```python\nprint(4)\n```', "print(4)"),
        ("```python\n    if True:\n        print(5)\n```", "if True:\n    print(5)"),
        ("```python\nprint(6)", "print(6)"),  # an unterminated fence (the reply was cut off)
        ("  print(7)\n", "print(7)"),
        ("first\n```python\nprint('a')\n```\n```python\nprint('b')\n```", "print('a')"),
    ],
)
def test_extract_code(reply: str, expected: str) -> None:
    assert extract_code(reply) == expected


def test_no_parent_environment_variable_reaches_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFORGE_SECRET_TOKEN", "shh")
    result = run_python("import os\nprint('AGENTFORGE_SECRET_TOKEN' in os.environ)")
    assert result.stdout == "False\n"
    assert os.environ["AGENTFORGE_SECRET_TOKEN"] == "shh"
