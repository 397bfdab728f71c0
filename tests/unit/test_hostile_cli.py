"""Arguments the CLI must refuse cleanly: exit 2, a message that says what to do, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentforge.cli import app
from agentforge.config import get_settings
from agentforge.errors import ModelNotFound
from agentforge.llm.gateway import check_model

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    return " ".join(text.split())


def assert_refused(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in flat(result.output), (fragment, result.output)


@pytest.mark.parametrize("args", [
    ("--limit", "0"), ("--limit", "-1"), ("-n", "-5"), ("--concurrency", "0"), ("-c", "-2"), ("--workers", "0"),
])
def test_eval_rejects_non_positive_counts(args: tuple[str, ...]) -> None:
    result = invoke("eval", str(WORKFLOWS / "cot_qa.yaml"), "--env", "capitals", *args)
    assert_refused(result, "Invalid value for", args[0])


@pytest.mark.parametrize("args", [("--port", "0"), ("--port", "70000"), ("--session-ttl", "0")])
def test_env_serve_rejects_bad_numbers(args: tuple[str, ...]) -> None:
    assert_refused(invoke("env", "serve", "capitals", *args), "Invalid value for", args[0])


def test_unknown_log_level_is_rejected() -> None:
    assert_refused(invoke("--log-level", "verbose", "validate", str(WORKFLOWS)), "'verbose' is not a log level",
                   "debug, info, warning, error")


def test_log_level_in_capitals_is_accepted() -> None:
    assert invoke("--log-level", "DEBUG", "validate", str(WORKFLOWS / "cot_qa.yaml")).exit_code == 0


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"agentforge {version('agentforge')}"


def test_unknown_provider_is_model_not_found_listing_aliases_and_providers() -> None:
    with pytest.raises(ModelNotFound) as info:
        check_model("nosuchprovider/foo", get_settings().aliases())
    text = str(info.value)
    assert "no provider 'nosuchprovider'" in text and "local, qwen" in text and "openai" in text


def test_known_providers_and_aliases_pass() -> None:
    aliases = get_settings().aliases()
    assert check_model("openai/gpt-4o-mini", aliases).model == "openai/gpt-4o-mini"
    assert check_model("local", aliases).model.startswith("local/")
    assert check_model("scripted/echo", aliases).model == "scripted/echo"


@pytest.mark.parametrize("command", ["run", "eval"])
def test_unknown_provider_exits_2_without_a_resume_line(command: str) -> None:
    args = (["run", str(WORKFLOWS / "cot_qa.yaml"), "-i", "question=hi"] if command == "run"
            else ["eval", str(WORKFLOWS / "cot_qa.yaml"), "--env", "capitals", "--limit", "1"])
    result = invoke(*args, "--model", "nosuchprovider/foo")
    assert_refused(result, "unknown model 'nosuchprovider/foo'", "Configured aliases: local, qwen", "openai")
    assert "resume with" not in result.output


def test_eval_refuses_a_workflow_naming_an_unknown_provider(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text((WORKFLOWS / "cot_qa.yaml").read_text(encoding="utf-8").replace("model: local",
                                                                                     "model: nosuchprovider/foo"))
    result = invoke("eval", str(path), "--env", "capitals", "--limit", "1")
    assert_refused(result, "unknown model 'nosuchprovider/foo'", "Configured aliases")


def test_run_refuses_a_workflow_naming_an_unknown_provider_before_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text((WORKFLOWS / "cot_qa.yaml").read_text(encoding="utf-8").replace("model: local",
                                                                                     "model: nosuchprovider/foo"))
    result = invoke("run", str(path), "-i", "question=hi")
    assert_refused(result, "unknown model 'nosuchprovider/foo'", "Configured aliases")
    assert "resume with" not in result.output
    assert not list((tmp_path / "runs").glob("*/run.json"))  # refused before a run was saved
