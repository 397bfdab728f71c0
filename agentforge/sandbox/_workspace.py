"""The run's workspace as a size-capped tmpfs: filled from the real workspace before the code starts, its
changes copied back after the run ends (however it ends).

bwrap mounts a tmpfs of ``seed + limit`` bytes over the workspace path; before the code runs, the
bootstrap opens that tmpfs and hands the folder to the caller over an inherited socket, then waits. The
caller copies the real workspace in (so the seed is not charged to the run's memory), records what it
wrote, and lets the code start. The handed-over folder keeps the tmpfs alive after the sandbox's last
process has gone, so the caller can copy back what the code made, changed or deleted, and tell whether
the code ran out of room.

Both copies go through folder descriptors and never follow a symlink: the tree is the code's making. A
symlink is copied as a symlink, special files (FIFOs, sockets) are skipped, set-id bits are dropped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

from agentforge.logs import get_logger

__all__ = ["HANDOFF_TIMEOUT_S", "TmpfsWorkspace", "seed_bytes"]

log = get_logger(__name__)

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
HANDOFF_TIMEOUT_S = 20.0
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KEEP_MODE = 0o1777  # permission bits and sticky; never setuid/setgid
Entry = tuple[str, int, int, int, str]  # kind ("d", "f", "l"), mode, size, mtime_ns, link target


def seed_bytes(root: Path) -> int:
    """What the workspace's files take on a tmpfs (whole pages), so the tmpfs can hold them plus the cap."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                total += -(-max(st.st_size, 1) // PAGE) * PAGE
    return total


@dataclass
class TmpfsWorkspace:
    """One run's tmpfs workspace, seen from the caller: the socket the bootstrap hands it over, then its folder."""

    real: Path
    limit_bytes: int
    copy_back: bool
    ours: socket.socket
    theirs: socket.socket
    fd: int | None = None
    seeded: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def create(cls, real: Path, limit_bytes: int, *, copy_back: bool) -> TmpfsWorkspace:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        os.set_inheritable(theirs.fileno(), True)
        return cls(real, limit_bytes, copy_back, ours, theirs)

    @property
    def child_fd(self) -> int:
        """The descriptor number the bootstrap uses (inherited through bwrap unchanged)."""
        return self.theirs.fileno()

    def started(self) -> None:
        """The sandbox has its end of the socket now; close ours of it, so a sandbox that dies unseen ends the wait."""
        self.theirs.close()

    def handoff(self) -> bool:
        """Receive the tmpfs folder, copy the real workspace into it, let the code start. False if the sandbox
        ended before handing it over (nothing ran, so there is nothing to copy back). Blocking."""
        self.ours.settimeout(HANDOFF_TIMEOUT_S)
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(self.ours, 1, 1)
        except (OSError, TimeoutError):
            return False
        if not fds:
            return False
        try:  # the bootstrap sent an O_PATH descriptor; a readable one lists the folder
            self.fd = os.open(".", _DIR, dir_fd=fds[0])
        finally:
            os.close(fds[0])
        real = os.open(self.real, _DIR)
        try:
            _sync(real, self.fd, {}, self.seeded)
        finally:
            os.close(real)
        with contextlib.suppress(OSError):
            self.ours.sendall(b"g")
        return True

    def filled(self) -> bool:
        """Whether the code ran the tmpfs out of room (less than a few pages left)."""
        if self.fd is None:
            return False
        st = os.fstatvfs(self.fd)
        return st.f_bavail * st.f_frsize < 16 * PAGE

    def close(self) -> None:
        """After the run: copy the code's changes back to the real workspace, then let the tmpfs go."""
        self.ours.close()
        with contextlib.suppress(OSError):
            self.theirs.close()
        if self.fd is None:
            return
        try:
            if self.copy_back:
                real = os.open(self.real, _DIR)
                try:
                    _sync(self.fd, real, self.seeded, {})
                finally:
                    os.close(real)
        finally:
            os.close(self.fd)
            self.fd = None


def _entry(st: os.stat_result, target: str = "") -> Entry:
    # A folder's or a symlink's time changes as it is copied: only a file's content and time are compared.
    if stat.S_ISREG(st.st_mode):
        return "f", stat.S_IMODE(st.st_mode) & _KEEP_MODE, st.st_size, st.st_mtime_ns, ""
    kind = "d" if stat.S_ISDIR(st.st_mode) else "l"
    return kind, stat.S_IMODE(st.st_mode) & _KEEP_MODE if kind == "d" else 0, 0, 0, target


def _sync(src: int, dst: int, known: dict[str, Entry], made: dict[str, Entry]) -> None:
    children: dict[str, set[str]] = {}
    for rel in known:
        parent, _, name = rel.rpartition("/")
        children.setdefault(f"{parent}/" if parent else "", set()).add(name)
    _copy_tree(src, dst, known, children, made, "")


def _copy_tree(src: int, dst: int, known: dict[str, Entry], children: dict[str, set[str]],
               made: dict[str, Entry], prefix: str) -> None:
    """Make folder ``dst`` match folder ``src``, skipping what ``known`` says is unchanged since the copy in
    (and deleting from ``dst`` what ``known`` lists but ``src`` no longer has). Records what ``src`` holds in
    ``made``."""
    names = set(os.listdir(src))
    for name in sorted(names):
        rel = f"{prefix}{name}"
        try:
            st = os.lstat(name, dir_fd=src)
        except FileNotFoundError:
            continue
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            log.info("sandbox.workspace_skipped", path=rel, reason="not a file, folder or symlink")
            continue
        entry = _entry(st, os.readlink(name, dir_fd=src) if stat.S_ISLNK(st.st_mode) else "")
        made[rel] = entry
        unchanged = known.get(rel) == entry
        if entry[0] == "d":
            if not unchanged:
                _make_dir(dst, name, entry[1])
            sub_src, sub_dst = os.open(name, _DIR, dir_fd=src), os.open(name, _DIR, dir_fd=dst)
            try:
                _copy_tree(sub_src, sub_dst, known, children, made, f"{rel}/")
            finally:
                os.close(sub_src)
                os.close(sub_dst)
        elif not unchanged:
            _remove(dst, name)
            if entry[0] == "l":
                os.symlink(entry[4], name, dir_fd=dst)
            else:
                _copy_file(src, dst, name, entry)
    for name in children.get(prefix, set()) - names:
        _remove(dst, name)  # the code deleted it


def _make_dir(dst: int, name: str, mode: int) -> None:
    try:
        st = os.lstat(name, dir_fd=dst)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        _remove(dst, name)
        st = None
    if st is None:
        os.mkdir(name, 0o700, dir_fd=dst)
    os.chmod(name, mode | stat.S_IRWXU, dir_fd=dst)  # the owner keeps access to copy into it


def _copy_file(src: int, dst: int, name: str, entry: Entry) -> None:
    fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst)
        try:
            with open(fin, "rb", closefd=False) as r, open(fout, "wb", closefd=False) as w:
                shutil.copyfileobj(r, w, 1024 * 1024)
            os.fchmod(fout, entry[1])
            os.utime(fout, ns=(entry[3], entry[3]))
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _remove(dst: int, name: str) -> None:
    try:
        st = os.lstat(name, dir_fd=dst)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dst)
    else:
        os.unlink(name, dir_fd=dst)
