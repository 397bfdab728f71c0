"""docs/workflow-format.md stays true: its examples validate, and it names everything the code defines.

Every ```yaml block with top-level ``version:`` and ``nodes:`` is a complete workflow and must load and
validate with no problems. A block whose first line is ``# file: NAME.yaml`` is written under that
name first, so a parent workflow can reference a child file shown in another block. Fragments must not
have a top-level ``nodes:`` key (or use another info string, such as ```yaml fragment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from agentforge.cli import app
from agentforge.config import ModelAlias, Settings
from agentforge.tools.builtins import BUILTINS
from agentforge.workflow import spec as spec_module
from agentforge.workflow.loader import load_spec, spec_from_text
from agentforge.workflow.validate import find_problems

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "workflow-format.md"
VALIDATE_SOURCE = REPO / "agentforge" / "workflow" / "validate.py"
CONFIG_SOURCE = REPO / "agentforge" / "config.py"

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
_FILE_MARK = re.compile(r"^#\s*file:\s*(\S+\.ya?ml)\s*$")


@dataclass(frozen=True)
class Block:
    index: int
    info: str
    text: str
    heading: str

    @property
    def data(self) -> object:
        return yaml.safe_load(self.text)

    @property
    def is_workflow(self) -> bool:
        data = self.data
        return self.info == "yaml" and isinstance(data, dict) and "version" in data and "nodes" in data

    @property
    def file_name(self) -> str | None:
        first = self.text.splitlines()[0] if self.text else ""
        match = _FILE_MARK.match(first)
        return match.group(1) if match else None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.heading).strip("-").lower()
        return f"{self.index}-{slug}"


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def blocks() -> list[Block]:
    text = doc_text()
    fences = list(_FENCE.finditer(text))
    headings = [(m.start(), m.group(1)) for m in _HEADING.finditer(text)
                if not any(f.start() <= m.start() < f.end() for f in fences)]  # a "# comment" in a block is no heading
    out: list[Block] = []
    for index, match in enumerate(fences):
        above = [title for start, title in headings if start < match.start()]
        out.append(Block(index, match.group(1).strip(), match.group(2), above[-1] if above else "top"))
    return out


def yaml_blocks() -> list[Block]:
    return [b for b in blocks() if b.info.split(" ")[0] == "yaml"]


def workflow_blocks() -> list[Block]:
    return [b for b in yaml_blocks() if b.is_workflow]


def write_named_files(directory: Path) -> None:
    """Write every ``# file: NAME`` workflow block, so subworkflow references resolve."""
    for block in workflow_blocks():
        if block.file_name:
            (directory / block.file_name).write_text(block.text, encoding="utf-8")


# -- the examples ------------------------------------------------------------------------------


def test_doc_has_complete_examples() -> None:
    assert len(workflow_blocks()) >= 10


@pytest.mark.parametrize("block", workflow_blocks(), ids=lambda b: b.id)
def test_workflow_example_validates(block: Block, tmp_path: Path) -> None:
    write_named_files(tmp_path)
    path = tmp_path / (block.file_name or f"block_{block.index}.yaml")
    path.write_text(block.text, encoding="utf-8")
    spec = load_spec(path)
    problems = find_problems(spec)
    assert problems == [], "\n".join(p.render() for p in problems)
    # The same text loads from a string too (what a reader pasting it would do).
    if not block.file_name:
        assert find_problems(spec_from_text(block.text)) == []


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: b.id)
def test_yaml_blocks_parse_and_fragments_have_no_nodes(block: Block) -> None:
    data = block.data  # every yaml block is valid YAML
    if block.info == "yaml" and isinstance(data, dict) and "nodes" in data:
        assert "version" in data, "a ```yaml block with top-level 'nodes:' must be a complete workflow"


def test_subworkflow_example_binds_to_its_child(tmp_path: Path) -> None:
    write_named_files(tmp_path)
    parents = [b for b in workflow_blocks() if b.file_name and "kind: subworkflow" in b.text]
    assert parents, "the subworkflow section should show a parent with its child file"
    for block in parents:
        spec = load_spec(tmp_path / block.file_name)
        assert find_problems(spec) == []


def test_config_example_is_valid_settings() -> None:
    configs = [b for b in yaml_blocks() if b.text.startswith("# agentforge.yaml")]
    assert configs, "the doc should show an agentforge.yaml example"
    for block in configs:
        data = dict(block.data)  # type: ignore[arg-type]
        data["models"] = {k: ({"model": v} if isinstance(v, str) else v) for k, v in data["models"].items()}
        settings = Settings.model_validate(data)
        assert all(isinstance(a, ModelAlias) for a in settings.models.values())


# -- the doc names everything the code defines -------------------------------------------------


def mentioned(name: str, text: str) -> bool:
    """Named in backticks in the prose, or used as a key in an example."""
    if f"`{name}`" in text or f"`{name}:" in text:
        return True
    return re.search(rf"^\s*(?:- )?{re.escape(name)}:", text, re.M) is not None


@pytest.mark.parametrize("kind", spec_module.NODE_KINDS)
def test_every_node_kind_is_documented(kind: str) -> None:
    text = doc_text()
    assert f"### {kind}" in text, f"node kind '{kind}' has no subsection"
    assert f"kind: {kind}" in text, f"node kind '{kind}' has no example"


def validation_codes() -> list[str]:
    # Graph-level checks are in validate.py; each node kind checks itself in its own module.
    kind_modules = sorted((REPO / "agentforge" / "workflow" / "nodes").glob("*.py"))
    source = "\n".join(p.read_text(encoding="utf-8") for p in (VALIDATE_SOURCE, *kind_modules))
    return sorted(set(re.findall(r'code="([a-z_]+)"', source)))


def test_validation_codes_are_found() -> None:
    assert len(validation_codes()) >= 20  # the grep still matches how validate.py writes codes


@pytest.mark.parametrize("code", validation_codes())
def test_every_validation_code_is_documented(code: str) -> None:
    assert re.search(rf"^\| `{code}` \|", doc_text(), re.M), f"validation code '{code}' is not in the table"


CLI_COMMANDS = ("validate", "run", "schema", "graph", "diff", "models")


def test_documented_cli_commands_exist() -> None:
    registered = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    assert set(CLI_COMMANDS) <= registered


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"agentforge {command}" in doc_text()


SPEC_MODELS = (
    spec_module.WorkflowSpec, spec_module.Defaults, spec_module.StateField, spec_module.InputField,
    spec_module.Demo, spec_module.AgentNode, spec_module.ToolNode, spec_module.Route, spec_module.RouterChoice,
    spec_module.RouterNode, spec_module.EnsembleMember, spec_module.EnsembleNode, spec_module.CodeNode,
    spec_module.SubworkflowNode, spec_module.Edge, spec_module.Change, ModelAlias,
)


@pytest.mark.parametrize("model", SPEC_MODELS, ids=lambda m: m.__name__)
def test_every_field_is_documented(model: type) -> None:
    text = doc_text()
    names = [info.alias or name for name, info in model.model_fields.items()]  # type: ignore[attr-defined]
    missing = [name for name in names if not mentioned(name, text)]
    assert not missing, f"{model.__name__} fields not in the doc: {missing}"


def test_env_vars_and_builtin_tools_are_documented() -> None:
    text = doc_text()
    env_vars = set(re.findall(r'"(AGENTFORGE_[A-Z_]+)"', CONFIG_SOURCE.read_text(encoding="utf-8")))
    assert env_vars, "config.py no longer names its environment variables as string literals"
    missing = sorted(v for v in env_vars if f"`{v}`" not in text)
    assert not missing, f"environment variables not in the doc: {missing}"
    for builtin in BUILTINS:
        assert re.search(rf"^\| `{builtin.name}` \|", text, re.M), f"built-in tool '{builtin.name}' not in the table"
