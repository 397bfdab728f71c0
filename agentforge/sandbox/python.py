"""Run generated Python in a separate, confined interpreter.

Each run is a fresh ``python -I -u -X utf8`` process (the caller's interpreter, with the caller's
site-packages readable) that:

- is confined by bubblewrap (see :mod:`agentforge.sandbox.confinement`): it sees only an allow-list of
  read-only mounts (the interpreter, its libraries, the system's shared libraries, a few ``/etc``
  files), its workspace read-write and a private scratch folder (``$TMPDIR``; ``/tmp`` is read-only); it runs
  as an unprivileged user with no
  capabilities, in new user, PID, network, IPC, UTS and cgroup namespaces, so it has no network, no
  shell, no home, no checkout, no ``/etc/shadow`` and no other run's workspace, and every process it
  starts (even one that called setsid()) dies with the run;
- works in its own folder: a new temporary directory, or ``workdir`` (the run's workspace);
- sees a minimal environment (``PATH`` and ``LANG`` only, so no API keys leak) and a closed stdin;
- lowers its own resource limits before the code starts (address space, CPU seconds, file size,
  processes, open files, no core dumps), with soft and hard limits equal;
- has run-wide totals as well (confined runs): its workspace is a tmpfs holding a copy of the real one
  plus ``workspace_mb`` (default 256 MB) of room, so a write past that fails with ``ENOSPC``, however
  many files share it; the changes are copied back when the run ends, however it ends. Where the caller
  may make cgroups (root, here), a per-run cgroup caps its tasks and its total memory,
  ``total_memory_mb`` (default ``2 * memory_mb + workspace_mb``; processes plus what they write to the
  scratch folder and the workspace, swap off). Hitting either marks the result
  (``SandboxResult.limit_exceeded``) and says so in its stderr. Where a total cannot be enforced, a
  warning is logged once and ``SandboxResult.unenforced`` names it;
- has a guard at the top that replaces ``socket``, so IP sockets, ``connect``, ``bind`` and name lookups
  raise ``PermissionError`` with a clear message even before the empty network namespace refuses;
- leads a new session, so a timeout (or cancellation) kills the whole process group, and with it the
  sandbox.

Where bubblewrap is unavailable the run is refused with :class:`~agentforge.errors.SandboxUnavailable`,
unless ``AGENTFORGE_SANDBOX=unconfined`` opts out. Unconfined, the child keeps only the network and
PID isolation ``unshare`` gives where the machine permits it, the socket guard and the limits: it can
read and write whatever the caller's user can.

The limits are set by the child's bootstrap rather than by ``preexec_fn``: ``preexec_fn`` may deadlock
when the parent has threads, and the engine runs tools in threads.

Defaults: ``memory_mb`` 512 per process (address space, and the scratch folder's size),
``total_memory_mb`` ``2 * memory_mb + workspace_mb``, ``workspace_mb`` :data:`WORKSPACE_MB`, 50 MB per
file (:data:`FILE_SIZE_LIMIT`), :data:`MAX_PROCESSES` tasks, :data:`MAX_OPEN_FILES` open files, CPU time
``timeout + 2`` s. Unconfined runs keep only the per-process and per-file limits.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from agentforge.errors import SandboxError
from agentforge.logs import get_logger
from agentforge.sandbox import confinement
from agentforge.sandbox._cgroup import RunCgroup, open_run_cgroup
from agentforge.sandbox._workspace import TmpfsWorkspace, seed_bytes

__all__ = ["SandboxResult", "arun_python", "extract_code", "network_isolation", "run_python"]

log = get_logger(__name__)

FILE_SIZE_LIMIT = 50 * 1024 * 1024
WORKSPACE_MB = 256  # what the code may add to its workspace in one run (default of ``workspace_mb``)
_MB = 1024 * 1024
MAX_PROCESSES = 256  # processes and threads the code may run (unconfined: add to what its user already runs)
MAX_OPEN_FILES = 256
_MIN_MEMORY_MB = 64
# Ways to give the child an empty network namespace, tried in order. A new user namespace comes first
# even for root: without it, root code keeps CAP_SYS_ADMIN and can setns() (nsenter) straight back
# into the parent's network through /proc/<ppid>/ns/net.
# Best first. A new PID namespace (``--pid --fork --kill-child``) means every process the code starts,
# even one that calls setsid() to leave the process group, dies with the run.
_PID_FLAGS = ("--pid", "--fork", "--kill-child")
_NET_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("--user", "--map-root-user", "--net", *_PID_FLAGS),
    ("--net", *_PID_FLAGS),
    ("--user", "--map-root-user", "--net"),
    ("--net",),
)

_BOOTSTRAP = '''\
# agentforge sandbox bootstrap: limits, network guard, inputs; then the code runs as __main__.
def _agentforge_setup():
    import json
    import resource
    import socket
    import sys

    import os
    import site

    handoff = __HANDOFF_FD__
    if handoff is not None:  # hand the workspace's tmpfs to the caller; it copies the workspace in, then says go
        channel = socket.socket(fileno=handoff)
        folder = os.open(".", os.O_PATH | os.O_DIRECTORY)
        socket.send_fds(channel, [b"w"], [folder])
        os.close(folder)
        go = channel.recv(1)
        channel.close()
        if go != b"g":
            raise SystemExit("agentforge sandbox: the workspace could not be copied in")
    os.environ.pop("PWD", None)  # bwrap's --chdir sets it; the code's environment stays PATH and LANG only
    site_dirs = __SITE_DIRS__
    if site_dirs is not None:  # started with -S: the caller's packages, not the base interpreter's
        for name in ("setquit", "setcopyright", "sethelper"):  # the builtins -S skipped (exit, help, ...)
            getattr(site, name, lambda: None)()
        for path in site_dirs:
            site.addsitedir(path)
    for name, value in __LIMITS__.items():
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, value))

    def deny(*args, **kwargs):
        raise PermissionError("network access is disabled in the agentforge sandbox")

    unix = getattr(socket, "AF_UNIX", None)

    class GuardedSocket(socket.socket):
        # Local socket pairs stay usable (asyncio and multiprocessing need them); nothing may connect.
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            super().__init__(family, type, proto, fileno)
            if self.family != unix:
                self.close()
                deny()

        connect = connect_ex = bind = deny

    socket.socket = socket.SocketType = GuardedSocket
    for name in ("create_connection", "create_server", "getaddrinfo", "gethostbyname",
                 "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        setattr(socket, name, deny)

    with open(__INPUTS_PATH__, encoding="utf-8") as f:
        inputs = json.load(f)
    with open(__CODE_PATH__, encoding="utf-8") as f:
        source = f.read()
    sys.argv = [__CODE_PATH__]
    names = {k: v for k, v in inputs.items() if k.isidentifier() and not k.startswith("__")}
    names.update(inputs=inputs, __file__=__CODE_PATH__, __agentforge_source__=source)
    return names


globals().update(_agentforge_setup())
del _agentforge_setup
try:
    exec(compile(globals().pop("__agentforge_source__"), __file__, "exec"))
except SystemExit:
    raise
except BaseException as exc:
    import traceback

    # Print the traceback without this bootstrap frame: the reader only needs the code's own frames.
    traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
    raise SystemExit(1) from None
'''


LimitName = Literal["memory", "workspace"]
Total = Literal["memory_total", "workspace_total"]


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run produced. ``returncode`` is None when the run was killed for time.

    ``limit_exceeded`` names the run-wide limit the code hit (``"memory"``: the kernel killed one of its
    processes for the total; ``"workspace"``: the workspace ran out of room), and the run is then not ok
    even if the code caught the error. ``unenforced`` names the totals this machine could not enforce
    (``"memory_total"``, ``"workspace_total"``); the per-process and per-file limits held regardless."""

    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool
    duration_s: float
    limit_exceeded: LimitName | None = None
    unenforced: tuple[Total, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode == 0 and self.limit_exceeded is None


def extract_code(text: str) -> str:
    """The Python in an LLM reply: the first ```python / ```py / bare fenced block, else the whole text."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^\s*(`{3,}|~{3,})\s*([^\s`]*)", lines[i])
        if opening is None:
            i += 1
            continue
        fence, lang = opening.group(1), opening.group(2).lower()
        end = i + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        if lang in ("", "python", "python3", "py", "py3"):
            return textwrap.dedent("\n".join(lines[i + 1 : end])).strip()
        i = end + 1
    return text.strip()


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


@cache
def _net_prefix() -> tuple[str, ...]:
    """The command prefix that isolates the network here, or () if none works. Checked once."""
    unshare = shutil.which("unshare")
    if unshare is None:
        log.info("sandbox.network_isolation", method="python-guard", reason="unshare not found")
        return ()
    for flags in _NET_PREFIXES:
        prefix = (unshare, *flags)
        try:
            probe = subprocess.run(
                [*prefix, sys.executable, "-I", "-S", "-c", "pass"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            log.debug("sandbox.network_isolation", method="unshare", flags=" ".join(flags))
            return prefix
    log.info("sandbox.network_isolation", method="python-guard", reason="unshare --net is not permitted")
    return ()


def _user_tasks() -> int:
    """Processes and threads of this real user: RLIMIT_NPROC counts them all, not just the sandbox's."""
    uid, count = os.getuid(), 0
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += max(1, os.stat(f"/proc/{entry.name}/task").st_nlink - 2)  # procfs: 2 + threads
        except OSError:
            continue  # the process ended meanwhile
    return count


def network_isolation() -> str:
    """How the next run will be confined: ``"bwrap"`` (the default; raises
    :class:`~agentforge.errors.SandboxUnavailable` if it cannot be used here) or, with
    ``AGENTFORGE_SANDBOX=unconfined``, how the network alone is blocked: ``"unshare"`` or ``"python-guard"``."""
    if confinement.mode() == "bwrap":
        confinement.require_bwrap()
        return "bwrap"
    return "unshare" if _net_prefix() else "python-guard"


@cache
def _warn_unconfined() -> None:
    log.warning("sandbox.unconfined", reason=f"{confinement.MODE_ENV}=unconfined",
                effect="generated code can read and write whatever this user can; neither its total memory "
                       "nor its workspace's total size is capped")


@dataclass(frozen=True)
class _Job:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stdout_path: Path
    stderr_path: Path
    confined: bool
    total_memory_mb: int
    workspace_mb: int
    cgroup: RunCgroup | None = None
    workspace: TmpfsWorkspace | None = None
    unenforced: tuple[Total, ...] = ()

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.workspace.child_fd,) if self.workspace is not None else ()

    def release(self) -> None:
        """After the run (its processes are dead): copy its workspace back, drop its cgroup, and clear the
        set-id bits a root caller's sandbox could have left, since its files belong to root outside."""
        try:
            if self.workspace is not None:
                try:
                    self.workspace.close()
                except OSError as exc:
                    raise SandboxError(f"could not copy the sandbox's workspace back to {self.cwd}: {exc}") from exc
        finally:
            if self.cgroup is not None:
                self.cgroup.close()
            if self.confined and os.geteuid() == 0:
                _strip_setid(self.cwd)


def _prepare(
    code: str, inputs: dict[str, Any] | None, timeout: float, memory_mb: int, workdir: Path | None,
    max_output: int, tmp: Path, total_memory_mb: int | None = None, workspace_mb: int = WORKSPACE_MB,
) -> _Job:
    """Check the arguments and write the run's files. Blocking (it may probe bwrap or unshare, scan /proc)."""
    if total_memory_mb is None:
        total_memory_mb = 2 * memory_mb + workspace_mb
    if workspace_mb < 1:
        raise SandboxError(f"workspace_mb must be at least 1, got {workspace_mb}")
    if total_memory_mb < _MIN_MEMORY_MB:
        raise SandboxError(f"total_memory_mb must be at least {_MIN_MEMORY_MB}, got {total_memory_mb}")
    if max_output < 0:
        raise SandboxError(f"max_output must not be negative, got {max_output}")
    if timeout <= 0:
        raise SandboxError(f"timeout must be positive, got {timeout}")
    if memory_mb < _MIN_MEMORY_MB:
        raise SandboxError(f"memory_mb must be at least {_MIN_MEMORY_MB}, got {memory_mb}")
    inputs = dict(inputs or {})
    bad_keys = [k for k in inputs if not isinstance(k, str)]
    if bad_keys:
        raise SandboxError(f"sandbox input names must be strings, got {bad_keys!r}")
    try:
        inputs_json = json.dumps(inputs, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SandboxError(f"sandbox inputs must be JSON-serializable: {exc}") from exc
    # Refuse before anything is written when the run cannot be confined.
    bwrap = confinement.require_bwrap() if confinement.mode() == "bwrap" else None

    if workdir is None:
        cwd = tmp / "work"
        cwd.mkdir()
    else:
        cwd = Path(workdir).resolve()
        if cwd.exists() and not cwd.is_dir():
            raise SandboxError(f"sandbox workdir is not a directory: {cwd}")
        cwd.mkdir(parents=True, exist_ok=True)

    code_path, inputs_path, boot_path = tmp / "main.py", tmp / "inputs.json", tmp / "bootstrap.py"
    code_path.write_text(code, encoding="utf-8")
    inputs_path.write_text(inputs_json, encoding="utf-8")
    limits = {
        "RLIMIT_AS": memory_mb * 1024 * 1024,
        "RLIMIT_CPU": int(timeout) + 2,
        "RLIMIT_FSIZE": FILE_SIZE_LIMIT,
        "RLIMIT_NOFILE": MAX_OPEN_FILES,
        "RLIMIT_CORE": 0,
    }
    flags = ["-I", "-u", "-X", "utf8", str(boot_path)]
    unenforced: list[Total] = []
    workspace: TmpfsWorkspace | None = None
    cgroup: RunCgroup | None = None
    if bwrap is not None:
        # In its own user namespace the run's processes are counted apart from the caller's.
        limits["RLIMIT_NPROC"] = MAX_PROCESSES
        interp = confinement.interpreter()
        site_dirs: tuple[str, ...] | None = interp.site_dirs
        # The workspace is a tmpfs holding a copy of it plus room for what the code may add.
        workspace = TmpfsWorkspace.create(cwd, seed_bytes(cwd) + workspace_mb * _MB, copy_back=workdir is not None)
        argv = [*confinement.bwrap_argv(bwrap, run_dir=tmp, workdir=cwd, tmp_mb=memory_mb,
                                        workspace_bytes=workspace.limit_bytes), interp.executable, "-S", *flags]
        # bwrap, its init and the interpreter count too.
        cgroup = open_run_cgroup(max_tasks=MAX_PROCESSES + 3, memory_bytes=total_memory_mb * _MB)
        if cgroup is not None:  # the launcher joins the cgroup, then becomes bwrap: no fork escapes the caps
            joins = " && ".join(f'echo $$ > "${i}"' for i in range(len(cgroup.procs_files)))
            argv = [shutil.which("sh") or "/bin/sh", "-c", f'{joins} && shift {len(cgroup.procs_files) - 1} '
                    '&& exec "$@"', *cgroup.procs_files, *argv]
        if cgroup is None or cgroup.memory is None:
            unenforced.append("memory_total")
    else:
        _warn_unconfined()
        unenforced += ["memory_total", "workspace_total"]
        limits["RLIMIT_NPROC"] = _user_tasks() + MAX_PROCESSES
        site_dirs = None
        argv = [*_net_prefix(), sys.executable, *flags]
    boot = (
        _BOOTSTRAP.replace("__LIMITS__", repr(limits))
        .replace("__SITE_DIRS__", repr(site_dirs))
        .replace("__HANDOFF_FD__", repr(workspace.child_fd if workspace is not None else None))
        .replace("__INPUTS_PATH__", repr(str(inputs_path)))
        .replace("__CODE_PATH__", repr(str(code_path)))
    )
    boot_path.write_text(boot, encoding="utf-8")

    env = {"PATH": os.environ.get("PATH", os.defpath)}
    if "LANG" in os.environ:
        env["LANG"] = os.environ["LANG"]
    return _Job(argv, env, cwd, tmp / "stdout.txt", tmp / "stderr.txt", site_dirs is not None, total_memory_mb,
                workspace_mb, cgroup, workspace, tuple(unenforced))


def _strip_setid(root: Path) -> None:
    """Clear setuid/setgid bits under ``root`` (symlinks not followed): a file the sandbox user made
    setuid would be a setuid-root program on the host."""
    setid = stat.S_ISUID | stat.S_ISGID
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
                if mode & setid and not stat.S_ISLNK(mode):
                    os.chmod(path, stat.S_IMODE(mode) & ~setid)
                    log.warning("sandbox.setid_cleared", path=path)
            except OSError:
                continue


def _kill_group(pid: int) -> None:
    # The child leads its own session, so its pid is the process group id of everything it started.
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning("sandbox.kill_failed", pid=pid)


def _read_capped(path: Path, max_output: int) -> str:
    with path.open("rb") as f:
        data = f.read(max_output * 4 + 4)
        more = bool(f.read(1))
    text = data.decode("utf-8", errors="replace")
    if len(text) > max_output or more:
        return text[:max_output] + f"\n... [output truncated at {max_output} characters]"
    return text


def _finish(job: _Job, returncode: int | None, timed_out: bool, timeout: float, started: float,
            max_output: int) -> SandboxResult:
    duration = time.monotonic() - started
    if job.confined and returncode is not None and 128 < returncode < 128 + signal.NSIG:
        returncode = 128 - returncode  # bwrap reports a child killed by signal N as 128 + N, as a shell does
    stdout = _read_capped(job.stdout_path, max_output)
    stderr = _read_capped(job.stderr_path, max_output)
    note = ""
    if timed_out:
        returncode = None
        note = f"[timed out after {timeout:g} s]"
    elif returncode is not None and returncode < 0:
        try:
            signame = signal.Signals(-returncode).name
        except ValueError:
            signame = str(-returncode)
        note = f"[killed by {signame}{' (CPU time limit)' if signame == 'SIGXCPU' else ''}]"
    exceeded: LimitName | None = None
    oom_kills = job.cgroup.oom_kills() if job.cgroup is not None else 0
    if oom_kills:
        exceeded = "memory"
        note = (f"[memory limit exceeded: the run's processes together used more than its total of "
                f"{job.total_memory_mb} MB (total_memory_mb; files in the workspace and $TMPDIR count too), "
                f"so the kernel killed {oom_kills} of them]")
    elif job.workspace is not None and job.workspace.filled():
        exceeded = "workspace"
        note = (f"{note} " if note else "") + (
            f"[workspace limit exceeded: the code may add at most {job.workspace_mb} MB to its workspace "
            "(workspace_mb); writes beyond it failed with 'No space left on device']")
    if note:
        stderr = f"{stderr.rstrip()}\n{note}" if stderr.strip() else note
    result = SandboxResult(stdout, stderr, returncode, timed_out, round(duration, 4), exceeded, job.unenforced)
    log.debug("sandbox.done", returncode=returncode, timed_out=timed_out, duration_s=result.duration_s,
              limit_exceeded=exceeded)
    return result


async def arun_python(
    code: str,
    *,
    inputs: dict[str, Any] | None = None,
    timeout: float = 10.0,
    memory_mb: int = 512,
    workdir: Path | None = None,
    max_output: int = 100_000,
    total_memory_mb: int | None = None,
    workspace_mb: int = WORKSPACE_MB,
) -> SandboxResult:
    """Run ``code`` in a sandboxed subprocess; ``inputs`` become top-level variables (and ``inputs``).

    ``memory_mb`` caps each process's address space (and the scratch folder); ``total_memory_mb`` (default
    ``2 * memory_mb + workspace_mb``) caps the memory of all the run's processes together, tmpfs files
    included; ``workspace_mb`` caps what the code may add to its workspace."""
    with tempfile.TemporaryDirectory(prefix="agentforge-sandbox-") as tmp:
        args = (code, inputs, timeout, memory_mb, workdir, max_output, Path(tmp), total_memory_mb, workspace_mb)
        job = await asyncio.to_thread(_prepare, *args)
        try:
            return await _arun(job, timeout, max_output)
        finally:
            await asyncio.to_thread(job.release)  # copies the workspace back: off the event loop


async def _arun(job: _Job, timeout: float, max_output: int) -> SandboxResult:
    started = time.monotonic()
    try:
        with job.stdout_path.open("wb") as out, job.stderr_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *job.argv, cwd=job.cwd, env=job.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, pass_fds=job.pass_fds,
            )
    except OSError as exc:
        raise SandboxError(f"could not start the sandbox: {exc}") from exc
    timed_out = False
    handoff: asyncio.Future[None] | None = None
    try:
        if job.workspace is not None:
            job.workspace.started()
            handoff = asyncio.ensure_future(asyncio.to_thread(_handoff, job))
            await asyncio.shield(handoff)
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        timed_out = True
    finally:
        # Also on cancellation and after a normal exit: nothing the code started may outlive the run.
        _kill_group(proc.pid)
        if handoff is not None and not handoff.done():  # cancelled mid-copy: let the copy end before release
            await asyncio.wait([handoff])
            if not handoff.cancelled():
                handoff.exception()  # retrieved; the cancellation is what propagates
        if proc.returncode is None:
            await proc.wait()
    return _finish(job, proc.returncode, timed_out, timeout, started, max_output)


def run_python(
    code: str,
    *,
    inputs: dict[str, Any] | None = None,
    timeout: float = 10.0,
    memory_mb: int = 512,
    workdir: Path | None = None,
    max_output: int = 100_000,
    total_memory_mb: int | None = None,
    workspace_mb: int = WORKSPACE_MB,
) -> SandboxResult:
    """Blocking twin of :func:`arun_python`, same behaviour and arguments."""
    with tempfile.TemporaryDirectory(prefix="agentforge-sandbox-") as tmp:
        job = _prepare(code, inputs, timeout, memory_mb, workdir, max_output, Path(tmp), total_memory_mb,
                       workspace_mb)
        try:
            return _run(job, timeout, max_output)
        finally:
            job.release()


def _handoff(job: _Job) -> None:
    assert job.workspace is not None
    try:
        job.workspace.handoff()
    except OSError as exc:
        raise SandboxError(f"could not copy the workspace {job.cwd} into the sandbox: {exc}") from exc


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``proc`` exited within ``timeout``; woken by a pidfd the moment it does (``Popen.wait`` polls
    in sleeps of up to 50 ms)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return bool(ready)


def _run(job: _Job, timeout: float, max_output: int) -> SandboxResult:
    started = time.monotonic()
    try:
        with job.stdout_path.open("wb") as out, job.stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                job.argv, cwd=job.cwd, env=job.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, pass_fds=job.pass_fds,
            )
    except OSError as exc:
        raise SandboxError(f"could not start the sandbox: {exc}") from exc
    try:
        if job.workspace is not None:
            job.workspace.started()
            _handoff(job)
        timed_out = not _wait_exit(proc, timeout)
    finally:
        _kill_group(proc.pid)
        proc.wait()
    return _finish(job, proc.returncode, timed_out, timeout, started, max_output)
