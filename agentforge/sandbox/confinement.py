"""How a sandboxed run is confined: a bubblewrap view built from an allow-list, or, opted out, nothing.

The confined child (the default) starts under ``bwrap`` and:

- sees a new, empty root with only these mounts: read-only, the interpreter's executable, its standard
  library and shared library, the caller's site-packages, the system's shared libraries
  (``/usr/lib/<multiarch>``, ``/usr/lib64``, the ``/lib*`` links), ``/usr/share/zoneinfo``,
  ``/etc/ld.so.cache``, ``/etc/localtime`` and a generated ``/etc/passwd`` and ``/etc/group`` that
  name only the sandbox user; read-write, the run's workspace and a private, size-capped scratch folder
  (``/var/tmp``, named by ``$TMPDIR``; ``/tmp`` is read-only),
  a minimal ``/dev`` and its own ``/proc``. No ``/usr/bin``, so no shell; no home, no checkout, no
  ``/etc/shadow``, no other run's workspace. Each bind sits at its host path, so paths printed inside
  mean the same outside;
- runs as uid/gid 65534 in new user, PID, network, IPC, UTS and cgroup namespaces, with every
  capability dropped, in a new session, and dies with its parent.

When the caller is root, a user namespace maps root's files to the sandbox user, so a read-only view
of ``/`` would still show ``/etc/shadow``: the view must be an allow-list, as it is here.

``AGENTFORGE_SANDBOX=unconfined`` opts out: code then runs with only the older safeguards (no network,
own PID namespace where ``unshare`` permits, resource limits) and can read and write whatever the
caller's user can. Without that opt-out, a machine where bubblewrap is missing or cannot create its
namespaces refuses to run code (:class:`~agentforge.errors.SandboxUnavailable`); it never falls back
silently.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from agentforge.errors import SandboxError, SandboxUnavailable
from agentforge.logs import get_logger

__all__ = [
    "MODE_ENV",
    "Interpreter",
    "Mode",
    "bwrap_argv",
    "close_pids_cgroup",
    "interpreter",
    "mode",
    "open_pids_cgroup",
    "require_bwrap",
]

log = get_logger(__name__)

MODE_ENV = "AGENTFORGE_SANDBOX"
Mode = Literal["bwrap", "unconfined"]
_MODES: dict[str, Mode] = {"": "bwrap", "bwrap": "bwrap", "confined": "bwrap", "unconfined": "unconfined"}
SANDBOX_UID = 65534  # "nobody" on Debian, Fedora and Alpine alike
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_SHARED_DIRS = ("/usr/share/zoneinfo",)
_OPT_OUT_HINT = (
    f"set {MODE_ENV}=unconfined to run generated code without confinement (it can then read and write "
    "whatever your user can)"
)
_INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; "
    f"or `make sandbox-deps`), or {_OPT_OUT_HINT}"
)


def mode() -> Mode:
    """The confinement chosen by ``AGENTFORGE_SANDBOX`` (read on every call): ``bwrap`` unless opted out."""
    raw = os.environ.get(MODE_ENV, "").strip().lower()
    if raw not in _MODES:
        raise SandboxError(f"{MODE_ENV}={raw!r} is not a sandbox mode; use 'bwrap' (the default) or 'unconfined'")
    return _MODES[raw]


@dataclass(frozen=True)
class Interpreter:
    """The Python the child runs, and what of it the view must hold (host paths, bound read-only)."""

    executable: str
    binds: tuple[str, ...]
    site_dirs: tuple[str, ...]


@cache
def interpreter() -> Interpreter:
    """The caller's interpreter, resolved past venv symlinks; its site-packages are added by the bootstrap."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    binds = [executable]
    for key in ("stdlib", "platstdlib"):
        binds.append(os.path.realpath(sysconfig.get_paths(vars={"base": sys.base_prefix,
                                                                 "platbase": sys.base_exec_prefix})[key]))
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
        if libdir and soname and os.path.exists(os.path.join(libdir, soname)):
            binds.append(os.path.realpath(os.path.join(libdir, soname)))
    # The caller's packages (a venv's, not the checkout around it); the bootstrap puts them on sys.path.
    site_dirs = [os.path.realpath(p) for p in site.getsitepackages() if os.path.isdir(p)]
    return Interpreter(executable, tuple(dict.fromkeys(p for p in binds if os.path.exists(p))),
                       tuple(dict.fromkeys(site_dirs)))


def _system_mounts() -> list[str]:
    """The shared libraries and the few system files Python needs, as bwrap arguments."""
    args: list[str] = []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    usr_libs = [f"/usr/lib/{multiarch}"] if multiarch and os.path.isdir(f"/usr/lib/{multiarch}") else ["/usr/lib"]
    usr_libs.append("/usr/lib64")
    for path in usr_libs:
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--ro-bind", path, path]
    for top in ("/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):  # a system without merged /usr: its /lib holds libc
            args += ["--ro-bind", top, top]
    for path in (*_SHARED_DIRS, *_ETC_FILES):
        args += ["--ro-bind-try", path, path]
    return args


def _write_identity(run_dir: Path) -> list[str]:
    """A passwd and group naming only the sandbox user, so ``getpass``/``pwd`` work without the host's. Its home
    is ``/nonexistent`` (as for Debian's ``nobody``): ``~`` leads nowhere, not to the scratch folder."""
    passwd, group = run_dir / "passwd", run_dir / "group"
    passwd.write_text(f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/nonexistent:/usr/sbin/nologin\n",
                      encoding="utf-8")
    group.write_text(f"sandbox:x:{SANDBOX_UID}:\n", encoding="utf-8")
    return ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]


def _binds(binds: list[tuple[str, str]]) -> list[str]:
    """Bind arguments, parents before children (a later mount hides what an earlier one put there)."""
    args: list[str] = []
    for flag, path in sorted(binds, key=lambda b: (len(Path(b[1]).parts), b[1])):
        args += [flag, path, path]
    return args


SCRATCH = "/var/tmp"  # the sandbox's private, writable temporary folder ($TMPDIR)


def bwrap_argv(bwrap: str, *, run_dir: Path, workdir: Path, tmp_mb: int) -> list[str]:
    """The ``bwrap ...`` prefix for one run: ``run_dir`` (its code files) read-only, ``workdir`` writable."""
    interp = interpreter()
    args = [
        bwrap,
        "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--hostname", "sandbox",
        "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        # Scratch space is private and capped, and named by TMPDIR; /tmp itself is read-only (below), so a
        # write to a /tmp path fails as any write outside the workspace does.
        "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", SCRATCH, "--setenv", "TMPDIR", SCRATCH,
        *_system_mounts(),
        *_write_identity(run_dir),
    ]
    ro = [(p, "--ro-bind") for p in (*interp.binds, *interp.site_dirs)]
    binds = [(flag, path) for path, flag in ro] + [("--ro-bind", str(run_dir)), ("--bind", str(workdir))]
    args += _binds(binds)
    # bwrap made the folders leading to each bind in the new root: nothing may write there.
    args += ["--remount-ro", "/tmp", "--remount-ro", "/", "--chdir", str(workdir)]
    return args


_CGROUP_MOUNT = Path("/sys/fs/cgroup")
_CGROUP_STALE_S = 60.0
_cgroup_ids = itertools.count()


@cache
def _pids_parent() -> Path | None:
    """Where this process puts its runs' pids cgroups, or None where it cannot make them (not root, no
    pids controller). Only a root caller needs one: root's own processes are exempt from RLIMIT_NPROC,
    and a user namespace maps the sandbox user to root."""
    if os.geteuid() != 0:
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, own = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = _CGROUP_MOUNT / controllers
        elif hierarchy == "0" and not controllers:
            base = _CGROUP_MOUNT if (_CGROUP_MOUNT / "cgroup.controllers").exists() else _CGROUP_MOUNT / "unified"
        else:
            continue
        parent = base / own.lstrip("/") / "agentforge-sandbox"
        try:
            parent.mkdir(exist_ok=True)
            if hierarchy == "0":  # cgroup v2: a child gets pids.max only when its parent delegates it
                (parent / "cgroup.subtree_control").write_text("+pids", encoding="utf-8")
        except OSError:
            continue
        return parent
    log.warning("sandbox.no_pids_cgroup", reason="no writable pids controller; RLIMIT_NPROC does not bind root")
    return None


def open_pids_cgroup(limit: int) -> Path | None:
    """A new cgroup capping a run's tasks at ``limit``, for a root caller where the machine allows it."""
    parent = _pids_parent()
    if parent is None:
        return None
    _sweep(parent)
    path = parent / f"run-{os.getpid()}-{next(_cgroup_ids)}"
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(limit), encoding="utf-8")
    except OSError as exc:
        log.warning("sandbox.pids_cgroup_failed", path=str(path), error=str(exc))
        close_pids_cgroup(path)
        return None
    return path


def close_pids_cgroup(path: Path) -> None:
    """Remove a run's cgroup; if its processes are still dying, a later run's sweep removes it."""
    with contextlib.suppress(OSError):
        path.rmdir()


def _sweep(parent: Path) -> None:
    now = time.time()
    try:
        children = list(parent.iterdir())
    except OSError:
        return
    for child in children:
        try:
            if child.is_dir() and now - child.stat().st_mtime > _CGROUP_STALE_S:
                child.rmdir()  # fails, harmlessly, while any process is left in it
        except OSError:
            continue


def _bwrap_path() -> str | None:
    return shutil.which("bwrap")


@cache
def _probe(bwrap: str) -> str | None:
    """Why bwrap cannot confine a Python run on this machine, or None if it can. Checked once per process."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agentforge-sandbox-probe-") as tmp:
        run_dir = Path(tmp)
        work = run_dir / "work"
        work.mkdir()
        argv = [*bwrap_argv(bwrap, run_dir=run_dir, workdir=work, tmp_mb=1), interpreter().executable,
                "-I", "-S", "-c", "pass"]
        try:
            probe = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
    if probe.returncode != 0:
        return probe.stderr.decode("utf-8", errors="replace").strip() or f"exit status {probe.returncode}"
    return None


def require_bwrap() -> str:
    """The path of a bwrap that works here, else :class:`SandboxUnavailable` saying what to do."""
    bwrap = _bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(f"cannot confine generated code: bubblewrap (bwrap) is not installed; {_INSTALL_HINT}")
    problem = _probe(bwrap)
    if problem is not None:
        raise SandboxUnavailable(
            f"cannot confine generated code: bubblewrap ({bwrap}) cannot create its sandbox here ({problem}); "
            f"allow unprivileged user namespaces, or {_OPT_OUT_HINT}"
        )
    return bwrap
