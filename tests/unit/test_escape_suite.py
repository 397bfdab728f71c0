"""Escape attempts against the confined sandbox: each must fail, and the run must say so.

Every attempt runs as generated code would (``arun_python`` with a workspace) and prints ``blocked ...``
or ``ESCAPED ...``; the test checks both the report and, from outside, that nothing leaked or changed.
These need bubblewrap: without it the sandbox refuses to run (``SandboxUnavailable``) and they fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from agentforge.sandbox import SandboxResult, arun_python, run_python
from agentforge.sandbox import python as sandbox
from agentforge.sandbox.confinement import SANDBOX_UID, interpreter

CHECKOUT = Path(__file__).resolve().parents[2]

# Run ``attempt()``; an OSError (or SubprocessError) is the expected, reported failure.
HARNESS = """
import subprocess
def report(name, attempt):
    try:
        value = attempt()
    except (OSError, subprocess.SubprocessError) as exc:
        print('blocked', name, type(exc).__name__)
    else:
        print('ESCAPED', name, repr(value)[:200])
"""


@pytest.fixture(autouse=True)
def _confined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_SANDBOX", raising=False)


async def _attempt(body: str, workspace: Path, **kwargs: object) -> SandboxResult:
    return await arun_python(HARNESS + body, workdir=workspace, **kwargs)  # type: ignore[arg-type]


def _under_private_tmp(path: Path) -> bool:
    """The sandbox's /tmp is its own tmpfs, holding the parents of what it binds (a venv, a workspace): a write
    to a path under the host's /tmp lands there, not on the host. For those paths the host-side check decides."""
    return path.is_absolute() and path.is_relative_to("/tmp")


def _assert_all_blocked(result: SandboxResult, expected: int, private: tuple[str, ...] = ()) -> None:
    """No ``ESCAPED`` line, except for the attempts named in ``private`` (paths under the private /tmp), which the
    caller checks from outside instead."""
    assert result.ok, result.stderr
    lines = [f"blocked {line[len('ESCAPED '):]}" if line.startswith("ESCAPED ") and
             any(line[len("ESCAPED "):].startswith(f"{name} ") for name in private) else line
             for line in result.stdout.splitlines()]
    assert not [line for line in lines if line.startswith("ESCAPED")], result.stdout
    assert sum(line.startswith("blocked") for line in lines) == expected, result.stdout


def _workspace(tmp_path: Path, run: str = "run-a") -> Path:
    path = tmp_path / "runs" / run / "workspace"
    path.mkdir(parents=True)
    return path


async def test_runs_as_an_unprivileged_user_with_no_capabilities(tmp_path: Path) -> None:
    code = (
        "import os\n"
        "caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))]\n"
        "print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), *caps)\n"
    )
    result = await arun_python(code, workdir=_workspace(tmp_path))
    assert result.ok, result.stderr
    uid, euid, gid, egid, *caps = result.stdout.split()
    assert {uid, euid, gid, egid} == {str(SANDBOX_UID)}
    assert caps and all(int(c, 16) == 0 for c in caps)


async def test_reading_etc_shadow_fails(tmp_path: Path) -> None:
    body = (
        "import os\n"
        "report('read', lambda: open('/etc/shadow').read())\n"
        "report('read gshadow', lambda: open('/etc/gshadow').read())\n"
        "print('etc', sorted(os.listdir('/etc')))\n"
    )
    result = await _attempt(body, _workspace(tmp_path))
    assert result.ok, result.stderr
    expected = ["blocked read FileNotFoundError", "blocked read gshadow FileNotFoundError"]
    assert result.stdout.splitlines()[:2] == expected
    assert "shadow" not in result.stdout.splitlines()[2]
    if Path("/etc/shadow").exists():
        assert "root:" not in result.stdout


async def test_reading_the_home_folder_fails(tmp_path: Path) -> None:
    home = Path.home().resolve()
    # The interpreter may live under home (pyenv): only the path down to it may show, nothing beside it.
    bound = [Path(p) for p in (*interpreter().binds, *interpreter().site_dirs)]
    private = [str(p) for p in sorted(home.iterdir())
               if not any(b == p or b.is_relative_to(p) for b in bound)][:20]
    assert private, "the home folder has nothing to hide: this test would prove nothing"
    body = (
        "for path in private:\n"
        "    report(path, lambda: open(path).read() if os.path.isfile(path) else os.listdir(path))\n"
    )
    result = await _attempt("import os\n" + body, _workspace(tmp_path), inputs={"private": private})
    _assert_all_blocked(result, len(private))


async def test_the_sandbox_users_home_leads_nowhere(tmp_path: Path) -> None:
    body = "import os\nreport('home', lambda: os.listdir(os.path.expanduser('~')))\nprint(os.path.expanduser('~'))\n"
    result = await _attempt(body, _workspace(tmp_path))
    assert result.stdout.splitlines() == ["blocked home FileNotFoundError", "/nonexistent"], result.stdout


async def test_reading_the_checkout_fails(tmp_path: Path) -> None:
    targets = [str(CHECKOUT / name) for name in ("pyproject.toml", "agentforge/__init__.py", ".git/config")
               if (CHECKOUT / name).exists()]
    assert targets
    body = (
        "for path in targets:\n    report(path, lambda: open(path).read())\n"
        "print('listing', sorted(os.listdir(checkout)) if os.path.isdir(checkout) else None)\n"
    )
    result = await _attempt("import os\n" + body, _workspace(tmp_path),
                            inputs={"targets": targets, "checkout": str(CHECKOUT)})
    assert result.ok, result.stderr
    *reports, listing = result.stdout.splitlines()
    assert reports == [f"blocked {t} FileNotFoundError" for t in targets]
    # At most the venv's site-packages show (read-only), never the sources.
    assert listing in ("listing None", "listing []", "listing ['.venv']"), listing


async def test_reading_another_runs_workspace_fails(tmp_path: Path) -> None:
    mine, theirs = _workspace(tmp_path, "run-a"), _workspace(tmp_path, "run-b")
    (theirs / "secret.txt").write_text("the other run's secret")
    body = (
        "report('absolute', lambda: open(other + '/secret.txt').read())\n"
        "report('relative', lambda: open('../../run-b/workspace/secret.txt').read())\n"
        "report('list runs', lambda: os.listdir('../..'))\n"
    )
    result = await _attempt("import os\n" + body, mine, inputs={"other": str(theirs)})
    # Listing ../.. may succeed (bwrap made the folders leading to the workspace) but must show no run-b.
    assert "the other run's secret" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == "blocked absolute FileNotFoundError" and lines[1] == "blocked relative FileNotFoundError"
    assert "run-b" not in lines[2], lines[2]


async def test_writing_outside_the_workspace_fails(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    beside = tmp_path / "runs" / "escaped.txt"  # next to the workspace
    outside = [CHECKOUT / "escaped.txt", Path.home() / "escaped.txt", Path("/etc/escaped.txt"),
               Path("/usr/lib/escaped.txt"), Path("/escaped.txt")]
    body = "for path in targets:\n    report(path, lambda: open(path, 'w').write('x'))\n"
    result = await _attempt(body + "report('beside', lambda: open(beside, 'w').write('x'))\n", workspace,
                            inputs={"targets": [str(p) for p in outside], "beside": str(beside)})
    private = tuple([str(p) for p in outside if _under_private_tmp(p)]
                    + (["beside"] if _under_private_tmp(beside) else []))
    _assert_all_blocked(result, len(outside) + 1, private)
    assert not [p for p in [*outside, beside] if p.exists()]


async def test_tmp_is_read_only_and_scratch_space_is_private(tmp_path: Path) -> None:
    marker = f"agentforge-escape-{os.getpid()}-{time.monotonic_ns()}"
    body = (
        "import os, tempfile\n"
        f"report('tmp', lambda: open('/tmp/{marker}', 'w').write('x'))\n"
        f"print(tempfile.gettempdir(), open(os.path.join(tempfile.gettempdir(), '{marker}'), 'w').write('x'))\n"
    )
    result = await _attempt(body, _workspace(tmp_path))
    assert result.stdout.splitlines() == ["blocked tmp OSError", "/var/tmp 1"], result.stderr + result.stdout
    assert not Path("/tmp", marker).exists() and not Path("/var/tmp", marker).exists()


async def test_symlinks_do_not_lead_out(tmp_path: Path) -> None:
    workspace, theirs = _workspace(tmp_path, "run-a"), _workspace(tmp_path, "run-b")
    (theirs / "secret.txt").write_text("the other run's secret")
    (workspace / "shadow").symlink_to("/etc/shadow")
    (workspace / "checkout").symlink_to(CHECKOUT)
    (workspace / "other").symlink_to(theirs)
    (workspace / "up").symlink_to("../../../..")
    body = (
        "import os\n"
        "report('shadow', lambda: open('shadow').read())\n"
        "report('checkout', lambda: open('checkout/pyproject.toml').read())\n"
        "report('other', lambda: open('other/secret.txt').read())\n"
        "report('up', lambda: open('up/runs/run-b/workspace/secret.txt').read())\n"
        "os.symlink('/etc/shadow', 'made')\n"
        "report('made', lambda: open('made').read())\n"
        "report('write through', lambda: open('checkout/escaped.txt', 'w').write('x'))\n"
    )
    result = await _attempt(body, workspace)
    _assert_all_blocked(result, 6, ("write through",) if _under_private_tmp(CHECKOUT) else ())
    assert not (CHECKOUT / "escaped.txt").exists()


async def test_no_set_id_program_is_left_behind(tmp_path: Path) -> None:
    # Its files belong to the caller outside; for a root caller a setuid file would run as root.
    workspace = _workspace(tmp_path)
    code = (
        "import os\n"
        "open('tool', 'w').write('#!/bin/sh\\nid\\n')\n"
        "os.chmod('tool', 0o6755)\n"
        "os.mkdir('shared')\n"
        "os.chmod('shared', 0o2777)\n"
        "print(oct(os.stat('tool').st_mode & 0o7777))\n"
    )
    result = await arun_python(code, workdir=workspace)
    assert result.ok, result.stderr
    for path in (workspace / "tool", workspace / "shared"):
        assert not path.stat().st_mode & (stat.S_ISUID | stat.S_ISGID), oct(path.stat().st_mode)
    assert (workspace / "tool").stat().st_mode & 0o777 == 0o755


async def test_spawning_a_shell_fails(tmp_path: Path) -> None:
    body = (
        "import os\n"
        "report('/bin/sh', lambda: subprocess.run(['/bin/sh', '-c', 'id'], capture_output=True))\n"
        "report('sh on PATH', lambda: subprocess.run(['sh', '-c', 'id'], capture_output=True))\n"
        "report('bash', lambda: subprocess.run(['bash', '-c', 'id'], capture_output=True))\n"
        "report('id', lambda: subprocess.run(['id'], capture_output=True))\n"
        "report('shell=True', lambda: subprocess.run('id', shell=True, check=True, capture_output=True))\n"
        "status = os.system('id')\n"
        "print('os.system', status)\n"
    )
    result = await _attempt(body, _workspace(tmp_path))
    assert "uid=" not in result.stdout
    _assert_all_blocked(result, 5)
    assert "os.system 0" not in result.stdout


async def test_sockets_reach_nothing(tmp_path: Path) -> None:
    unix_path = tmp_path / "host.sock"  # outside the workspace
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        tcp.setblocking(False)
        unix.bind(str(unix_path))
        unix.listen()
        unix.setblocking(False)
        body = (
            "import socket, _socket\n"
            "report('tcp', lambda: socket.create_connection(('127.0.0.1', port), timeout=2))\n"
            "def raw():\n"
            "    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
            "    s.settimeout(2)\n"
            "    s.connect(('127.0.0.1', port))\n"
            "report('raw tcp', raw)\n"
            "def raw_unix():\n"
            "    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)\n"
            "    s.connect(unix_path)\n"
            "report('unix', raw_unix)\n"
            "report('dns', lambda: _socket.getaddrinfo('example.com', 80))\n"
            "def outside():\n"
            "    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)\n"
            "    s.connect(('192.0.2.1', 53))\n"
            "    s.send(b'x')\n"
            "report('udp out', outside)\n"
        )
        result = await _attempt(body, _workspace(tmp_path), inputs={"port": tcp.getsockname()[1],
                                                                    "unix_path": str(unix_path)})
        _assert_all_blocked(result, 5)
        for server in (tcp, unix):
            with pytest.raises(BlockingIOError):
                server.accept()


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


async def _none_left(marker: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _processes_with(marker):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_fork_bomb_hits_the_process_limit(tmp_path: Path) -> None:
    marker = f"forkbomb-{time.monotonic_ns()}"
    code = (
        "import os, sys, time\n"
        f"sys.argv[0] = {marker!r}\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print('blocked fork after', n, type(exc).__name__)\n"
    )
    result = await arun_python(code, workdir=_workspace(tmp_path), timeout=20)
    assert result.ok, result.stderr
    words = result.stdout.split()
    assert words[:3] == ["blocked", "fork", "after"] and words[4] == "BlockingIOError", result.stdout
    assert int(words[3]) <= sandbox.MAX_PROCESSES
    assert await _none_left(marker)


async def test_memory_bomb_is_stopped(tmp_path: Path) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    result = await arun_python(code, workdir=_workspace(tmp_path), memory_mb=256, timeout=20)
    assert not result.ok and not result.timed_out
    assert "MemoryError" in result.stderr


async def test_disk_filler_is_stopped(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    code = (
        "import errno\n"
        "def fill(path):\n"
        "    with open(path, 'wb') as f:\n"
        "        while True:\n"
        "            f.write(b'x' * 1024 * 1024)\n"
        "report('workspace file', lambda: fill('big'))\n"
        "def many():\n"
        "    for i in range(10_000):\n"
        "        with open(f'/tmp/fill-{i}', 'wb') as f:\n"
        "            f.write(b'x' * 8 * 1024 * 1024)\n"
        "report('private tmp', many)\n"
    )
    result = await arun_python(HARNESS + code, workdir=workspace, memory_mb=128, timeout=30)
    _assert_all_blocked(result, 2)
    assert "blocked workspace file OSError" in result.stdout  # EFBIG: the file size limit
    assert (workspace / "big").stat().st_size <= sandbox.FILE_SIZE_LIMIT


SPREAD_MEMORY = """
import os, time
children = []
for _ in range(4):  # each stays under memory_mb; together they pass total_memory_mb
    pid = os.fork()
    if pid == 0:
        held = bytearray(b'x') * (150 * 1024 * 1024)
        time.sleep(1)
        os._exit(0)
    children.append(pid)
print([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children])
"""


async def test_memory_spread_over_processes_hits_the_total(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a memory cgroup needs a root caller here; the run records the total as unenforced")
    result = await arun_python(SPREAD_MEMORY, workdir=_workspace(tmp_path), memory_mb=256, total_memory_mb=300,
                               timeout=20)
    assert "memory_total" not in result.unenforced
    assert result.limit_exceeded == "memory" and not result.ok, result
    assert "memory limit exceeded" in result.stderr and "300 MB" in result.stderr
    assert "-9" in result.stdout.strip("[]\n").split(", ")  # the exit codes the code printed: one was SIGKILLed


async def test_memory_spread_over_processes_under_the_total_runs(tmp_path: Path) -> None:
    result = await arun_python(SPREAD_MEMORY, workdir=_workspace(tmp_path), memory_mb=256, total_memory_mb=1024,
                               timeout=20)
    assert result.ok and result.stdout.strip() == "[0, 0, 0, 0]", result


async def test_many_files_under_the_file_cap_hit_the_workspace_cap(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    (workspace / "given.bin").write_bytes(b"y" * 20 * 1024 * 1024)  # what is already there does not count
    code = (
        "import errno\n"
        "def fill():\n"
        "    for i in range(40):\n"  # 40 files of 8 MB, each far below the 50 MB file cap
        "        with open(f'part-{i}', 'wb') as f:\n"
        "            f.write(b'x' * 8 * 1024 * 1024)\n"
        "report('many files', fill)\n"
        "try:\n"
        "    fill()\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
    )
    result = await _attempt(code, workspace, workspace_mb=64, timeout=30)
    assert result.stdout.splitlines() == ["blocked many files OSError", "ENOSPC"], result
    assert result.limit_exceeded == "workspace" and not result.ok
    assert "workspace limit exceeded" in result.stderr and "64 MB" in result.stderr
    added = sum(p.stat().st_size for p in workspace.glob("part-*"))
    assert 56 * 1024 * 1024 <= added <= 64 * 1024 * 1024  # what fitted was kept, nothing more
    assert (workspace / "given.bin").stat().st_size == 20 * 1024 * 1024


async def test_a_setsid_child_does_not_outlive_the_timeout(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    marker = f"setsid-{time.monotonic_ns()}"
    child = (
        "import time\n"
        "while True:\n"
        "    open('beat', 'a').write('.')\n"
        "    time.sleep(0.05)\n"
    )
    code = (
        "import os, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', child, marker], start_new_session=True)\n"
        "if os.fork() == 0:\n"  # and a daemon the classic way: fork, setsid, fork
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.execv(sys.executable, [sys.executable, '-c', child, marker])\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n"
    )
    result = await arun_python(code, workdir=workspace, timeout=1.5, inputs={"child": child, "marker": marker})
    assert result.timed_out
    assert "timed out" in result.stderr
    assert await _none_left(marker)
    beat = workspace / "beat"
    assert beat.exists()  # the children did run
    size = beat.stat().st_size
    await asyncio.sleep(0.5)
    assert beat.stat().st_size == size


def test_code_still_works_confined(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    (workspace / "given.txt").write_text("input file")
    code = (
        "import json, math, sqlite3, decimal, zoneinfo, tempfile, getpass, multiprocessing\n"
        "open('out.txt', 'w').write(open('given.txt').read().upper())\n"
        "with tempfile.TemporaryFile() as f:\n"
        "    f.write(b'scratch')\n"
        "db = sqlite3.connect(':memory:')\n"
        "sql = db.execute('select 2').fetchone()[0]\n"
        "print(json.dumps({'sqrt': math.sqrt(n), 'user': getpass.getuser(), 'sql': sql}))\n"
    )
    result = run_python(code, workdir=workspace, inputs={"n": 16})
    assert result.ok, result.stderr
    assert result.stdout.strip() == '{"sqrt": 4.0, "user": "sandbox", "sql": 2}'
    assert (workspace / "out.txt").read_text() == "INPUT FILE"


ISSUE_WORKFLOW = """\
version: 1
kind: workflow
name: probe
inputs: {checkout: str, home: str, outside: str}
outputs: {report: str}
nodes:
  - id: probe
    kind: code
    inputs: [checkout, home, outside]
    outputs: {report: str}
    source: |
      import json, os, subprocess
      def attempt(fn):
          try:
              return repr(fn())[:80]
          except (OSError, subprocess.SubprocessError) as exc:
              return 'blocked ' + type(exc).__name__
      print(json.dumps({
          'uid': os.getuid(),
          'id': attempt(lambda: subprocess.run(['id'], capture_output=True, text=True).stdout),
          'shadow': attempt(lambda: open('/etc/shadow').read()),
          'home': attempt(lambda: [n for n in os.listdir(home) if n != '.pyenv']),
          'checkout': attempt(lambda: [n for n in os.listdir(checkout) if n != '.venv']),
          'outside': attempt(lambda: open(outside, 'w').write('x')),
          'workspace': attempt(lambda: open('mine.txt', 'w').write('ok')),
      }))
"""


async def test_a_code_node_run_by_a_workflow_is_confined(tmp_path: Path) -> None:
    # The issue's report, replayed through the run path: uid 0, `id`, /etc/shadow, home, checkout, a write.
    import json

    from agentforge import Workflow
    from agentforge.runtime.store import RunStore

    spec = tmp_path / "probe.yaml"
    spec.write_text(ISSUE_WORKFLOW)
    outside = CHECKOUT / "probe-escaped.txt"  # under /tmp only when the checkout is (a clone there, as CI's may be)
    workflow = Workflow.from_yaml(spec, store=RunStore(tmp_path / "runs"))
    result = await workflow.arun({"checkout": str(CHECKOUT), "home": str(Path.home()), "outside": str(outside)})
    report = json.loads(result.outputs["report"])
    assert report["uid"] == SANDBOX_UID
    assert report["id"] == "blocked FileNotFoundError"
    assert report["shadow"] == "blocked FileNotFoundError"
    assert report["home"] in ("blocked FileNotFoundError", "[]")
    assert report["checkout"] in ("blocked FileNotFoundError", "[]")
    assert report["outside"].startswith("blocked") or _under_private_tmp(outside)  # then the line below decides
    assert report["workspace"] == "2"
    assert not outside.exists()
    assert [p.read_text() for p in (tmp_path / "runs").rglob("mine.txt")] == ["ok"]
