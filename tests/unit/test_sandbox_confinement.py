"""Without bubblewrap the sandbox refuses to run code, clearly, unless the user opts out; every caller obeys."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentforge.errors import NodeError, SandboxError, SandboxUnavailable
from agentforge.sandbox import arun_python, confinement, network_isolation, run_python

WRITE_MARKER = "open('ran.txt', 'w').write('ran')\nprint('ran')"


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_SANDBOX", raising=False)
    monkeypatch.setattr(confinement, "_bwrap_path", lambda: None)


@pytest.fixture
def broken_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A bwrap that cannot create namespaces, as on a machine that forbids unprivileged user namespaces."""
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.delenv("AGENTFORGE_SANDBOX", raising=False)
    monkeypatch.setattr(confinement, "_bwrap_path", lambda: str(fake))


@pytest.mark.usefixtures("no_bwrap")
async def test_missing_bwrap_refuses_to_run_code(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable) as info:
        await arun_python(WRITE_MARKER, workdir=tmp_path)
    assert info.value.code == "sandbox_unavailable"
    message = str(info.value)
    assert "bubblewrap" in message and "apt-get install bubblewrap" in message
    assert "AGENTFORGE_SANDBOX=unconfined" in message
    assert not (tmp_path / "ran.txt").exists()
    with pytest.raises(SandboxUnavailable):
        run_python(WRITE_MARKER, workdir=tmp_path)
    with pytest.raises(SandboxUnavailable):
        network_isolation()


@pytest.mark.usefixtures("broken_bwrap")
async def test_a_bwrap_that_cannot_sandbox_refuses_with_its_reason(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace") as info:
        await arun_python(WRITE_MARKER, workdir=tmp_path)
    assert "AGENTFORGE_SANDBOX=unconfined" in str(info.value)
    assert not (tmp_path / "ran.txt").exists()


@pytest.mark.usefixtures("no_bwrap")
async def test_the_explicit_opt_out_runs_unconfined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFORGE_SANDBOX", "unconfined")
    result = await arun_python(WRITE_MARKER, workdir=tmp_path)
    assert result.ok, result.stderr
    assert (tmp_path / "ran.txt").read_text() == "ran"
    assert network_isolation() in ("unshare", "python-guard")


def test_an_unknown_mode_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFORGE_SANDBOX", "off")
    with pytest.raises(SandboxError, match="AGENTFORGE_SANDBOX='off' is not a sandbox mode"):
        run_python("print(1)")


def test_bwrap_is_the_default_here() -> None:
    # `make test` installs bubblewrap (the sandbox-deps target): the suite runs confined.
    if confinement.mode() != "bwrap":
        pytest.skip("AGENTFORGE_SANDBOX opts out in this environment")
    assert network_isolation() == "bwrap"


# ---------------------------------------------------------------- every caller goes through it

CODE_WORKFLOW = """\
version: 1
kind: workflow
name: code-only
inputs: {n: int}
outputs: {doubled: int}
nodes:
  - id: double
    kind: code
    inputs: [n]
    outputs: {doubled: int}
    source: |
      open('ran.txt', 'w').write('ran')
      print(n * 2)
"""


@pytest.mark.usefixtures("no_bwrap")
async def test_a_code_node_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    from agentforge import Workflow
    from agentforge.runtime.store import RunStore

    path = tmp_path / "wf.yaml"
    path.write_text(CODE_WORKFLOW)
    workflow = Workflow.from_yaml(path, store=RunStore(tmp_path / "runs"))
    with pytest.raises(NodeError, match="bubblewrap") as info:
        await workflow.arun({"n": 2})
    assert info.value.fields.get("cause") == "sandbox_unavailable"
    assert not list((tmp_path / "runs").rglob("ran.txt"))


@pytest.mark.usefixtures("no_bwrap")
async def test_the_python_tool_refuses_rather_than_returning_an_observation(tmp_path: Path) -> None:
    from agentforge.tools import ToolContext, default_registry

    tool = default_registry().get("python")
    with pytest.raises(SandboxUnavailable):
        await tool.acall({"code": WRITE_MARKER}, ToolContext(workspace=tmp_path))
    assert not (tmp_path / "ran.txt").exists()


@pytest.mark.usefixtures("no_bwrap")
def test_the_code_tests_metric_refuses() -> None:
    from agentforge.envs.datasets.metrics import acode_tests, code_tests

    with pytest.raises(SandboxUnavailable):
        code_tests("def f():\n    return 1\n", "assert f() == 1")
    with pytest.raises(SandboxUnavailable):
        asyncio.run(acode_tests("def f():\n    return 1\n", "assert f() == 1"))


def test_the_view_holds_the_interpreter_not_the_checkout() -> None:
    interp = confinement.interpreter()
    checkout = Path(__file__).resolve().parents[2]
    for path in interp.binds:
        assert not Path(path).is_relative_to(checkout) or ".venv" in Path(path).parts, path
    assert Path(interp.executable).is_file()
    assert Path(interp.executable).name.startswith("python")
    assert all(Path(p).is_dir() for p in interp.site_dirs)
