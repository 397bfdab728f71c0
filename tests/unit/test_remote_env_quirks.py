"""The env server and client meet hostile bodies and foreign servers with clear answers: a deeply nested
body is a 4xx, an AgentGym server reached without ``profile:`` gets a hint naming the profiles, a bare
``false`` from ``/close`` is logged, and ``eval --env`` takes a server URL."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.envs.registry import load_env
from agentforge.envs.remote.client import RemoteEnv
from agentforge.envs.remote.profiles import PROFILES
from agentforge.envs.remote.server import serve_in_thread
from agentforge.errors import EnvError

FAST = {"timeout": 2.0, "retries": 0}
runner = CliRunner()


def _textcraft_like() -> Starlette:
    """AgentGym TextCraft's shape: no /info, and /close answers a bare ``false`` for an id it does not know."""
    live: set[int] = set()

    async def create(request: Request) -> Response:
        live.add(len(live))
        return JSONResponse({"id": len(live) - 1, "observation": "", "reward": 0, "done": False})

    async def reset(request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"id": body["id"], "observation": "Crafting commands:\n...\nGoal: craft stick.",
                             "reward": 0, "done": False})

    async def close(request: Request) -> Response:
        await request.json()
        return JSONResponse(False)  # what the real server says for an unknown (here: any) id

    async def health(request: Request) -> Response:
        return JSONResponse("This is environment TextCraft.")

    return Starlette(routes=[Route("/", health), Route("/create", create, methods=["POST"]),
                             Route("/reset", reset, methods=["POST"]), Route("/close", close, methods=["POST"])])


@pytest.fixture(scope="module")
def agentgym_url() -> Iterator[str]:
    with serve_in_thread(_textcraft_like()) as url:
        yield url


@pytest.fixture(scope="module")
def textcraft_url() -> Iterator[str]:
    with serve_in_thread(load_env("textcraft")) as url:
        yield url


@pytest.mark.parametrize("path", ["/create", "/reset", "/step", "/close"])
def test_a_12000_level_body_is_a_400_over_http_and_the_server_lives_on(textcraft_url: str, path: str) -> None:
    body = '{"id": 0, "action": ' + "[" * 12_000 + "]" * 12_000 + "}"
    assert len(body) < 6 * 4096 + 1024  # inside the size limit: only the nesting is hostile
    with httpx.Client(base_url=textcraft_url, timeout=10) as client:
        response = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text[:300]
        assert "nests too deeply" in response.json()["error"]
        assert client.post("/create", json={}).status_code == 200


def test_an_agentgym_server_without_a_profile_gets_a_hint(agentgym_url: str) -> None:
    with pytest.raises(EnvError) as caught:
        RemoteEnv(agentgym_url, **FAST)
    message = str(caught.value)
    assert "HTTP 404" in message and "does not speak agentforge's protocol" in message
    assert "set `profile:` to one of textcraft, babyai" in message
    assert all(name in message for name in PROFILES if name != "agentforge")


async def test_a_bare_false_from_close_is_logged_as_a_warning(agentgym_url: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    env = RemoteEnv(agentgym_url, "textcraft", tasks=[0], **FAST)
    session = env.session()
    await session.areset("0")
    await session.aclose()
    logged = capsys.readouterr().err
    assert "remote_env.close_refused" in logged and "warning" in logged.lower(), logged
    session = env.session()  # the blocking twin too
    session.reset("0")
    session.close()
    assert "remote_env.close_refused" in capsys.readouterr().err
    env.close()


POLICY = """
version: 1
name: inv
inputs: {observation: str}
outputs: {action: str}
nodes:
  - {id: act, kind: agent, prompt: "{observation}", inputs: [observation], outputs: [action]}
"""


def _workflow(tmp: Path) -> str:
    path = tmp / "inv.yaml"
    path.write_text(textwrap.dedent(POLICY))
    return str(path)


def test_eval_accepts_a_server_url_as_env(tmp_path: Path, textcraft_url: str, scripted: Any) -> None:
    model, script = scripted
    script.default = "inventory"
    result = runner.invoke(app, ["eval", _workflow(tmp_path), "--env", textcraft_url, "--limit", "1",
                                 "--model", model, "--json"])
    assert result.exit_code == 0, result.output
    assert '"env": "textcraft"' in result.stdout and '"tasks": 1' in result.stdout


def test_eval_with_a_url_explains_the_remote_env_file(tmp_path: Path, agentgym_url: str, scripted: Any) -> None:
    model, _ = scripted
    wf = _workflow(tmp_path)
    foreign = runner.invoke(app, ["eval", wf, "--env", agentgym_url, "--limit", "1", "--model", model])
    assert foreign.exit_code == 2 and "does not speak agentforge's protocol" in foreign.output
    assert "Traceback" not in foreign.output
    scheme = runner.invoke(app, ["eval", wf, "--env", "ftp://127.0.0.1:1", "--model", model])
    assert scheme.exit_code == 2 and "type: remote" in scheme.output and "ftp://127.0.0.1:1" in scheme.output
    one_slash = runner.invoke(app, ["eval", wf, "--env", "http:/127.0.0.1:36001", "--model", model])
    assert one_slash.exit_code == 2 and "http://host:port" in one_slash.output and "type: remote" in one_slash.output
    workers = runner.invoke(app, ["eval", wf, "--env", agentgym_url, "--executor", "processes", "--model", model])
    assert workers.exit_code == 2 and "type: remote" in workers.output
    unknown = runner.invoke(app, ["eval", wf, "--env", agentgym_url, "--profile", "textcarft", "--model", model])
    assert unknown.exit_code == 2 and "textcraft" in unknown.output
    stray = runner.invoke(app, ["eval", wf, "--env", "textcraft", "--profile", "textcraft", "--model", model])
    assert stray.exit_code == 2 and "--profile applies to --env http" in stray.output
