"""The ``agentforge`` command line: exit codes (0 ok, 1 run failed, 2 bad input), messages, outputs.

Most tests drive the typer app in-process (scripted models registered here answer there); a few run
the real console entry point in a subprocess to prove the exit codes and that no traceback leaks.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from agentforge.cli import app
from agentforge.errors import LLMError
from agentforge.llm.scripted import ScriptedModel, register_script
from agentforge.workflow.loader import load_spec
from tests.conftest import WORKFLOWS

SHIPPED = sorted(WORKFLOWS.glob("*.yaml"))

TWO_STEP = """\
version: 1
kind: workflow
name: two-step
inputs:
  question: str
outputs:
  answer: str
nodes:
  - id: first
    kind: agent
    instruction: Make notes.
    prompt: "Q: {question}"
    inputs: [question]
    outputs: [notes]
  - id: second
    kind: agent
    instruction: Answer from the notes.
    prompt: "Notes: {notes}"
    inputs: [notes]
    outputs: [answer]
edges:
  - {from: first, to: second}
"""

COUNT = """\
version: 1
kind: workflow
name: count
inputs:
  n: int
outputs:
  total: int
nodes:
  - id: add
    kind: agent
    prompt: "Add one to {n}"
    inputs: [n]
    outputs: {total: int}
"""

BAD_TOOL = """\
version: 1
kind: workflow
name: bad
inputs:
  question: str
outputs:
  answer: str
nodes:
  - id: a
    kind: agent
    inputs: [question]
    outputs: [answer]
    tools: [calculater]
"""


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the YAML")


def flat(text: str) -> str:
    """Whitespace collapsed, so assertions do not depend on where the console wrapped a line."""
    return " ".join(text.split())


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def write(name: str, text: str) -> Path:
    path = Path(name)  # tests run inside their own tmp_path
    path.write_text(text, encoding="utf-8")
    return path


def assert_exit(result: Result, code: int, *fragments: str) -> None:
    """Exit ``code`` through typer (no stray exception), no traceback, and every fragment on stderr."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in flat(result.stderr), (fragment, result.stderr)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process (it inherits the test's env and working directory)."""
    return subprocess.run([sys.executable, "-m", "agentforge.cli", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def two_step_script(model: ScriptedModel, answer: object = "forty-two") -> ScriptedModel:
    return model.on(r"Q: ", "n1").on(r"Notes: ", answer)


# -- validate ------------------------------------------------------------------------------------


def test_validate_accepts_every_shipped_workflow_and_names_each() -> None:
    result = invoke("validate", *map(str, SHIPPED))
    assert_exit(result, 0)
    shown = flat(result.stdout)
    for path in SHIPPED:
        assert f"✓ {path}: workflow '{load_spec(path).name}'" in shown


def test_validate_bad_file_exits_2_naming_file_line_and_node() -> None:
    write("bad.yaml", BAD_TOOL)
    result = invoke("validate", "bad.yaml")
    assert_exit(result, 2, f"bad.yaml:{line_of(BAD_TOOL, 'tools: [calculater]')}", "node 'a'",
                "unknown tool 'calculater'", "did you mean 'calculator'?")


def test_validate_reports_every_file_given() -> None:
    write("good.yaml", TWO_STEP)
    write("bad.yaml", BAD_TOOL)
    result = invoke("validate", "good.yaml", "bad.yaml", "missing.yaml")
    assert_exit(result, 2, "bad.yaml: 1 problem(s)", "calculater", "missing.yaml: file not found")
    assert "good.yaml: workflow 'two-step'" in flat(result.stdout)


def test_validate_keeps_square_brackets_in_messages() -> None:
    text = TWO_STEP.replace("question: str", "question: list[int]", 1).replace(
        "inputs: [question]", "inputs: {question: 'list[str]'}")
    write("lists.yaml", text)
    result = invoke("validate", "lists.yaml")
    assert_exit(result, 2, "expects list[str]", "is list[int]")


def test_validate_unknown_type_name_exits_2_with_a_suggestion() -> None:
    write("types.yaml", TWO_STEP.replace("question: str", "question: strng", 1))
    result = invoke("validate", "types.yaml")
    assert_exit(result, 2, "types.yaml:", "strng", "did you mean 'str'?")


def test_validate_in_a_subprocess_exits_2_without_traceback() -> None:
    write("bad.yaml", BAD_TOOL)
    proc = cli("validate", "bad.yaml")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"bad.yaml:{line_of(BAD_TOOL, 'tools: [calculater]')}" in proc.stderr
    assert "node 'a'" in proc.stderr


# -- run: success --------------------------------------------------------------------------------


def test_run_prints_the_output(scripted: tuple[str, ScriptedModel]) -> None:
    model_name, model = scripted
    two_step_script(model)
    write("wf.yaml", TWO_STEP)
    result = invoke("run", "wf.yaml", "-i", "question=life", "--model", model_name)
    assert_exit(result, 0)
    assert result.stdout.strip() == "forty-two"
    assert "Q: life" in model.calls[0].prompt_text()
    assert "first" in result.stderr and "second" in result.stderr  # the per-node table


def test_run_json_reports_outputs_cost_tokens_latency_and_trace(scripted: tuple[str, ScriptedModel]) -> None:
    model_name, model = scripted
    two_step_script(model)
    write("wf.yaml", TWO_STEP)
    result = invoke("run", "wf.yaml", "-i", "question=life", "--model", model_name, "--json")
    assert_exit(result, 0)
    data = json.loads(result.stdout)
    assert {"outputs", "cost", "tokens", "latency_s", "trace_path", "run_id"} <= set(data)
    assert data["status"] == "succeeded"
    assert data["outputs"] == {"answer": "forty-two"}
    assert data["cost"] == 0.0
    assert data["tokens"]["prompt"] > 0 and data["tokens"]["completion"] > 0
    assert data["latency_s"] >= 0
    trace_path = Path(data["trace_path"])
    assert trace_path.is_file()
    assert data["run_id"] in str(trace_path)
    trace = json.loads(trace_path.read_text(encoding="utf-8"))
    assert trace["run_id"] == data["run_id"]
    assert [n["node"] for n in trace["nodes"]] == ["first", "second"]
    assert trace["nodes"][0]["outputs"] == {"notes": "n1"}
    assert trace["nodes"][1]["inputs"] == {"notes": "n1"}
    assert len(trace["nodes"][1]["llm_calls"]) == 1


def test_run_reads_inputs_from_a_json_file(scripted: tuple[str, ScriptedModel]) -> None:
    model_name, model = scripted
    two_step_script(model)
    write("wf.yaml", TWO_STEP)
    Path("inputs.json").write_text(json.dumps({"question": "from the file"}), encoding="utf-8")
    result = invoke("run", "wf.yaml", "--input-json", "inputs.json", "--model", model_name)
    assert_exit(result, 0)
    assert result.stdout.strip() == "forty-two"
    assert "Q: from the file" in model.calls[0].prompt_text()


def test_run_coerces_command_line_text_to_the_input_type(scripted: tuple[str, ScriptedModel]) -> None:
    model_name, model = scripted
    model.on(r"Add one to 41", '{"total": 42}')
    write("count.yaml", COUNT)
    result = invoke("run", "count.yaml", "-i", "n=41", "--model", model_name, "--json")
    assert_exit(result, 0)
    assert json.loads(result.stdout)["outputs"] == {"total": 42}


def test_run_in_a_subprocess_exits_0_and_prints_the_output() -> None:
    write("wf.yaml", TWO_STEP)
    proc = cli("run", "wf.yaml", "-i", "question=life", "--model", "scripted/echo")
    assert proc.returncode == 0, proc.stderr
    assert "Notes: Q: life" in proc.stdout  # the echo model repeats the prompt it was given
    assert "Traceback" not in proc.stderr


# -- run: bad input ------------------------------------------------------------------------------


def test_run_missing_file_exits_2() -> None:
    assert_exit(invoke("run", "nope.yaml", "-i", "question=x"), 2, "nope.yaml", "file not found")


def test_run_malformed_yaml_exits_2_with_the_line() -> None:
    text = TWO_STEP.replace("    kind: agent\n    instruction: Make notes.",
                            "    kind: agent\n      instruction: Make notes.")
    write("broken.yaml", text)
    result = invoke("run", "broken.yaml", "-i", "question=x")
    assert_exit(result, 2, "malformed YAML", f"broken.yaml:{line_of(text, 'instruction: Make notes.')}")


def test_run_invalid_workflow_exits_2_naming_file_line_and_node() -> None:
    write("bad.yaml", BAD_TOOL)
    result = invoke("run", "bad.yaml", "-i", "question=x")
    assert_exit(result, 2, f"bad.yaml:{line_of(BAD_TOOL, 'tools: [calculater]')}", "node 'a'", "calculater")


def test_run_with_an_unknown_type_name_exits_2() -> None:
    write("types.yaml", TWO_STEP.replace("question: str", "question: strng", 1))
    assert_exit(invoke("run", "types.yaml", "-i", "question=x"), 2, "strng", "did you mean 'str'?")


def test_run_missing_input_exits_2() -> None:
    write("wf.yaml", TWO_STEP)
    assert_exit(invoke("run", "wf.yaml"), 2, "missing input 'question'")


def test_run_mistyped_input_exits_2() -> None:
    write("count.yaml", COUNT)
    assert_exit(invoke("run", "count.yaml", "-i", "n=abc"), 2, "input 'n' must be int", "abc")


def test_run_mistyped_list_input_keeps_the_type_in_the_message() -> None:
    write("lists.yaml", COUNT.replace("n: int\n", "n: list[int]\n", 1).replace(
        "inputs: [n]", "inputs: {n: 'list[int]'}"))
    assert_exit(invoke("run", "lists.yaml", "-i", "n=abc"), 2, "input 'n' must be list[int]")


def test_run_unknown_input_name_exits_2_with_a_suggestion() -> None:
    write("wf.yaml", TWO_STEP)
    result = invoke("run", "wf.yaml", "-i", "questoin=x")
    assert_exit(result, 2, "unknown input 'questoin'", "did you mean 'question'?")


def test_run_input_without_equals_exits_2() -> None:
    write("wf.yaml", TWO_STEP)
    assert_exit(invoke("run", "wf.yaml", "-i", "question"), 2, "--input 'question' must look like key=value")


@pytest.mark.parametrize(("content", "fragment"), [(None, "file not found"), ("{not json", "not valid JSON"),
                                                   ("[1, 2]", "JSON object")], ids=["missing", "bad", "list"])
def test_run_bad_input_json_file_exits_2(content: str | None, fragment: str) -> None:
    write("wf.yaml", TWO_STEP)
    if content is not None:
        Path("inputs.json").write_text(content, encoding="utf-8")
    assert_exit(invoke("run", "wf.yaml", "--input-json", "inputs.json"), 2, "--input-json", fragment)


def test_run_unknown_model_alias_exits_2() -> None:
    write("wf.yaml", TWO_STEP)
    result = invoke("run", "wf.yaml", "-i", "question=x", "--model", "nope")
    assert_exit(result, 2, "unknown model 'nope'", "local")


def test_run_without_file_or_resume_exits_2() -> None:
    assert_exit(invoke("run"), 2, "--resume")


def test_resume_of_an_unknown_run_exits_2() -> None:
    assert_exit(invoke("run", "--resume", "19990101-000000-abcdef"), 2, "no run '19990101-000000-abcdef'")


def test_resume_of_an_unknown_run_lists_recent_run_ids(scripted: tuple[str, ScriptedModel]) -> None:
    model_name, model = scripted
    two_step_script(model)
    write("wf.yaml", TWO_STEP)
    done = invoke("run", "wf.yaml", "-i", "question=x", "--model", model_name, "--json")
    run_id = json.loads(done.stdout)["run_id"]
    result = invoke("run", "--resume", "19990101-000000-abcdef")
    assert_exit(result, 2, "no run '19990101-000000-abcdef'", f"recent: {run_id}")


def test_bad_input_in_a_subprocess_exits_2_without_traceback() -> None:
    write("count.yaml", COUNT)
    proc = cli("run", "count.yaml", "-i", "n=abc")
    assert proc.returncode == 2, proc.stderr
    assert "input 'n' must be int" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


# -- run: failure and resume ---------------------------------------------------------------------


def test_failed_run_exits_1_and_says_how_to_resume(scripted: tuple[str, ScriptedModel]) -> None:
    model_name, model = scripted
    two_step_script(model, LLMError("down"))
    write("wf.yaml", TWO_STEP)
    result = invoke("run", "wf.yaml", "-i", "question=x", "--model", model_name)
    assert_exit(result, 1, "node 'second' failed: down", "agentforge run --resume ")
    assert re.search(r"--resume \S+", result.stderr)


def test_failed_run_with_json_prints_the_failure_as_json(scripted: tuple[str, ScriptedModel]) -> None:
    model_name, model = scripted
    two_step_script(model, LLMError("down"))
    write("wf.yaml", TWO_STEP)
    result = invoke("run", "wf.yaml", "-i", "question=x", "--model", model_name, "--json")
    assert_exit(result, 1)
    data = json.loads(result.stdout)
    assert data["status"] == "failed"
    assert "down" in data["error"]
    assert (Path("runs") / data["run_id"] / "run.json").is_file()


def test_resume_finishes_a_failed_run_without_rerunning_finished_nodes(
    scripted: tuple[str, ScriptedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTFORGE_CACHE", "0")  # so a re-run node would reach the model again
    model_name, model = scripted
    two_step_script(model, LLMError("down"))
    write("wf.yaml", TWO_STEP)
    failed = invoke("run", "wf.yaml", "-i", "question=x", "--model", model_name)
    assert_exit(failed, 1)
    match = re.search(r"--resume (\S+)", failed.stderr)
    assert match is not None
    run_id = match.group(1)
    assert len(model.calls) == 2

    fixed = register_script(model_name.split("/", 1)[1], two_step_script(ScriptedModel()))
    resumed = invoke("run", "--resume", run_id, "--json")
    assert_exit(resumed, 0)
    data = json.loads(resumed.stdout)
    assert (data["run_id"], data["outputs"]) == (run_id, {"answer": "forty-two"})
    assert len(fixed.calls) == 1  # only the failed node ran again
    assert "Notes: n1" in fixed.calls[0].prompt_text()
    trace = json.loads(Path(data["trace_path"]).read_text(encoding="utf-8"))
    assert trace["resumed"] is True
    assert [n["node"] for n in trace["nodes"]] == ["first", "second"]


def test_failed_run_in_a_subprocess_exits_1_without_traceback() -> None:
    # The echo model repeats "Count: hi", which holds no integer, so the node fails.
    write("wf.yaml", TWO_STEP.replace('prompt: "Q: {question}"', 'prompt: "Count: {question}"').replace(
        "outputs: [notes]", "outputs: {notes: int}"))
    proc = cli("run", "wf.yaml", "-i", "question=hi", "--model", "scripted/echo")
    assert proc.returncode == 1, proc.stderr
    assert "node 'first' failed" in proc.stderr
    assert "--resume" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unreachable_llm_backend_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFORGE_TEST_DUMMY_KEY", "sk-dummy")
    Path("agentforge.yaml").write_text(yaml.safe_dump({
        "max_retries": 0,
        "models": {"remote": {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9",
                              "api_key_env": "AGENTFORGE_TEST_DUMMY_KEY"}},
    }), encoding="utf-8")
    write("wf.yaml", TWO_STEP.replace("nodes:\n", "defaults:\n  model: remote\nnodes:\n", 1))
    proc = cli("run", "wf.yaml", "-i", "question=x")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "cannot reach" in proc.stderr, proc.stderr
    assert "127.0.0.1:9" in proc.stderr


# -- schema --------------------------------------------------------------------------------------


def test_schema_is_flat_json_that_accepts_every_shipped_workflow() -> None:
    result = invoke("schema")
    assert_exit(result, 0)
    schema = json.loads(result.stdout)
    assert "$ref" not in result.stdout
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in SHIPPED:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], (path.name, errors)


def test_schema_rejects_an_unknown_node_kind_and_field() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(invoke("schema").stdout))
    data = yaml.safe_load((WORKFLOWS / "cot_qa.yaml").read_text(encoding="utf-8"))
    data["nodes"][0]["kind"] = "agnet"
    assert not validator.is_valid(data)
    data["nodes"][0]["kind"] = "agent"
    data["nodes"][0]["instrucion"] = "typo"
    assert not validator.is_valid(data)


# -- graph ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_graph_prints_mermaid_with_every_node(path: Path) -> None:
    result = invoke("graph", str(path))
    assert_exit(result, 0)
    assert result.stdout.startswith("flowchart")
    assert "-->" in result.stdout
    for node_id in load_spec(path).node_ids():
        assert re.search(rf"^\s+{node_id}\W", result.stdout, re.M), node_id
        assert re.search(rf"-->(\|[^|]*\|)? {node_id}$", result.stdout, re.M), f"no edge into {node_id}"


def test_graph_writes_a_png() -> None:
    pytest.importorskip("matplotlib", reason="the viz extra (matplotlib) is not installed")
    result = invoke("graph", str(WORKFLOWS / "refine_loop.yaml"), "--format", "png", "-o", "out/loop.png")
    assert_exit(result, 0)
    assert Path("out/loop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graph_writes_an_svg() -> None:
    pytest.importorskip("matplotlib", reason="the viz extra (matplotlib) is not installed")
    result = invoke("graph", str(WORKFLOWS / "debate.yaml"), "--format", "svg", "-o", "debate.svg")
    assert_exit(result, 0)
    text = Path("debate.svg").read_text(encoding="utf-8")
    assert text.startswith("<?xml") or "<svg" in text
    assert "<svg" in text


def test_graph_without_matplotlib_exits_2_and_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    result = invoke("graph", str(WORKFLOWS / "debate.yaml"), "--format", "png", "-o", "debate.png")
    assert_exit(result, 2, "pip install 'agentforge[viz]'")
    assert not Path("debate.png").exists()


def test_graph_bad_format_exits_2() -> None:
    result = invoke("graph", str(WORKFLOWS / "debate.yaml"), "--format", "gif")
    assert_exit(result, 2, "--format must be mermaid, png or svg, not 'gif'")


def test_graph_of_a_bad_file_exits_2() -> None:
    assert_exit(invoke("graph", "nope.yaml"), 2, "nope.yaml", "file not found")


# -- models --------------------------------------------------------------------------------------


def test_models_lists_the_local_alias_and_the_runtime_status() -> None:
    Path("agentforge.yaml").write_text("models:\n  fast: openai/gpt-4o-mini\n", encoding="utf-8")
    result = invoke("models")
    assert_exit(result, 0)
    shown = flat(result.stdout)
    assert re.search(r"\blocal\b.*local/qwen2\.5-coder-0\.5b-instruct", shown)
    assert re.search(r"\bfast\b.*openai/gpt-4o-mini", shown)
    installed = importlib.util.find_spec("llama_cpp") is not None
    assert f"local model runtime (llama-cpp-python): {'installed' if installed else 'missing'}" in shown


def test_models_with_a_broken_config_exits_2() -> None:
    Path("agentforge.yaml").write_text("models: [unclosed\n", encoding="utf-8")
    assert_exit(invoke("models"), 2, "agentforge.yaml", "malformed YAML")


# -- help ----------------------------------------------------------------------------------------

COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands if c.callback)


def test_the_documented_commands_exist() -> None:
    assert {"validate", "run", "schema", "graph", "models"} <= set(COMMANDS)


@pytest.mark.parametrize("command", [None, *COMMANDS], ids=lambda c: c or "app")
def test_help_exits_0(command: str | None) -> None:
    result = invoke(*([command] if command else []), "--help")
    assert_exit(result, 0)
    assert "Usage" in result.stdout
    if command:
        assert command in result.stdout
