"""How a sandboxed run is confined: a bubblewrap view built from an allow-list, or, opted out, nothing.

The confined child (the default) starts under ``bwrap`` and:

- sees a new, empty root with only these mounts: read-only, the interpreter's executable, its standard
  library and shared library, the caller's site-packages, the system's shared libraries
  (``/usr/lib/<multiarch>``, ``/usr/lib64``, the ``/lib*`` links), ``/usr/share/zoneinfo``,
  ``/etc/ld.so.cache``, ``/etc/localtime`` and a generated ``/etc/passwd`` and ``/etc/group`` that
  name only the sandbox user; read-write, the run's workspace (a size-capped tmpfs at its path, which the
  caller fills and copies back: see ``_workspace``) and a private, size-capped scratch folder
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

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from agentforge.errors import SandboxError, SandboxUnavailable
from agentforge.logs import get_logger
from agentforge.sandbox._cgroup import cgroup_parents

__all__ = [
    "MODE_ENV",
    "Interpreter",
    "Mode",
    "bwrap_argv",
    "interpreter",
    "mode",
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


def _binds(binds: list[tuple[str, str]], tmpfs: dict[str, int]) -> list[str]:
    """Bind arguments, and tmpfs mounts (path → size in bytes), parents before children (a later mount hides
    what an earlier one put there)."""
    mounts = [*binds, *(("--tmpfs", path) for path in tmpfs)]
    args: list[str] = []
    for flag, path in sorted(mounts, key=lambda b: (len(Path(b[1]).parts), b[1])):
        args += ["--size", str(tmpfs[path]), flag, path] if flag == "--tmpfs" else [flag, path, path]
    return args


SCRATCH = "/var/tmp"  # the sandbox's private, writable temporary folder ($TMPDIR)


def bwrap_argv(bwrap: str, *, run_dir: Path, workdir: Path, tmp_mb: int,
               workspace_bytes: int | None = None) -> list[str]:
    """The ``bwrap ...`` prefix for one run: ``run_dir`` (its code files) read-only, ``workdir`` writable: bound
    from the host, or, given ``workspace_bytes``, an empty tmpfs of that size at its path (the caller fills it)."""
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
    binds = [(flag, path) for path, flag in ro] + [("--ro-bind", str(run_dir))]
    if workspace_bytes is None:
        binds.append(("--bind", str(workdir)))
    args += _binds(binds, {str(workdir): workspace_bytes} if workspace_bytes is not None else {})
    # bwrap made the folders leading to each bind in the new root: nothing may write there.
    args += ["--remount-ro", "/tmp", "--remount-ro", "/", "--chdir", str(workdir)]
    return args


def _pids_parent() -> Path | None:
    """Where runs' pids cgroups go here, or None (kept for the benchmark's report)."""
    return cgroup_parents().get("pids")


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
