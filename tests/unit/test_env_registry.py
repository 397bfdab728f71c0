"""Environment YAML files: lookup by name or path, every source type, errors located by file and line."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentforge.envs import registry
from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task
from agentforge.envs.builtin import BUILTIN_ENVS
from agentforge.envs.datasets.dataset import DatasetEnv, split_ids
from agentforge.envs.registry import env_dirs, env_files, find_env_file, load_env, load_env_spec, repo_envs_dir
from agentforge.envs.spec import EnvSpec
from agentforge.errors import ConfigError, EnvError, SpecError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("arithmetic", "capitals", "mcq_science", "code_funcs", "bigbench_example")


class TinySession(LocalSession):
    def _reset(self, task: Task) -> Observation:
        return Observation(text=task.id)

    def _step(self, action: str) -> StepResult:
        return StepResult(observation=Observation(text="ok"), reward=1.0, done=True)


class TinyEnv(Environment):
    """A stand-in built-in class that records how it was built."""

    name = "tiny"
    instruction = "Do the tiny thing."

    def __init__(self, num_tasks: int = 4, seed: int = 0, splits: Mapping[str, float | int] | None = None,
                 size: int = 1) -> None:
        self.kwargs = {"num_tasks": num_tasks, "seed": seed, "splits": splits, "size": size}
        ids = [f"t{i}" for i in range(num_tasks)]
        split_of = split_ids(ids, splits, seed)
        super().__init__([Task(id=i, split=split_of[i]) for i in ids])

    def session(self) -> TinySession:
        return TinySession(self)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILTIN_ENVS, "tiny", f"{__name__}:TinyEnv")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def qa_files(folder: Path, yaml_body: str = "") -> Path:
    write(folder / "data" / "qa.jsonl", '{"id": "a", "question": "1+1?", "answer": 2}\n'
                                         '{"id": "b", "question": "2+2?", "answer": 4}\n'
                                         '{"id": "c", "question": "3+3?", "answer": 6}\n')
    return write(folder / "qa.yaml", yaml_body or """
        version: 1
        kind: env
        name: qa
        description: Sums.
        source:
          type: jsonl
          path: data/qa.jsonl
          input_fields: [question]
        metric: numeric
        splits: {train: 1, test: 2}
        seed: 0
        """)


def problem_of(exc: pytest.ExceptionInfo[SpecError]) -> Any:
    assert len(exc.value.problems) >= 1
    return exc.value.problems[0]


# ---------------------------------------------------------------- lookup


@pytest.mark.parametrize("name", SHIPPED[:4])
def test_shipped_yaml_loads_by_name_from_any_directory(name: str, tmp_path: Path) -> None:
    assert Path.cwd() == tmp_path  # not the repository
    env = load_env(name)
    assert isinstance(env, DatasetEnv) and env.name == name
    assert env.description  # type: ignore[attr-defined]
    assert env.tasks("train") and env.tasks("val") and env.tasks("test")


def test_every_shipped_yaml_validates() -> None:
    for path in (REPO / "envs").glob("*.yaml"):
        spec, _ = load_env_spec(path)
        assert spec.name == path.stem, path  # file name and env name agree


def test_a_local_envs_folder_comes_first(tmp_path: Path) -> None:
    path = qa_files(tmp_path / "envs")
    assert find_env_file("qa") == path.resolve()
    assert env_dirs()[0] == (tmp_path / "envs").resolve() and env_dirs()[-1] == repo_envs_dir()
    files = env_files()
    assert files["qa"] == path.resolve() and files["arithmetic"] == REPO / "envs" / "arithmetic.yaml"
    env = load_env("qa")
    assert (env.name, env.instruction.startswith("Solve"), len(env.tasks("test"))) == ("qa", True, 2)
    write(tmp_path / "envs" / "arithmetic.yaml", (tmp_path / "envs" / "qa.yaml").read_text().replace(
        "name: qa", "name: arithmetic"))
    assert len(load_env("arithmetic").tasks()) == 3  # shadows the repository's file
    assert len(load_env("arithmetic", search=()).tasks()) == 200


def test_load_by_path_resolves_data_relative_to_the_file(tmp_path: Path) -> None:
    path = qa_files(tmp_path / "elsewhere")
    for ref in (path, str(path), "elsewhere/qa.yaml"):
        env = load_env(ref)
        assert isinstance(env, DatasetEnv) and env.path == (tmp_path / "elsewhere" / "data" / "qa.jsonl")
        session = env.session()
        session.reset("b")
        assert session.step("4").reward == 1.0


def test_builtin_class_by_name_with_default_params(tiny: None) -> None:
    env = load_env("tiny")
    assert isinstance(env, TinyEnv) and env.kwargs == {"num_tasks": 4, "seed": 0, "splits": None, "size": 1}


def test_unknown_name_suggests_and_lists_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'arithmetic'") as info:
        load_env("arithmetik")
    assert str(repo_envs_dir()) in str(info.value)


# ---------------------------------------------------------------- source types


def test_builtin_source_passes_shared_settings_and_params(tmp_path: Path, tiny: None) -> None:
    path = write(tmp_path / "t.yaml", """
        version: 1
        kind: env
        name: my_tiny
        instruction: Custom instruction.
        source: {type: builtin, class: tiny, params: {size: 3}}
        num_tasks: 10
        splits: {train: 0.5, val: 0.5}
        seed: 7
        """)
    env = load_env(path)
    assert isinstance(env, TinyEnv)
    assert env.kwargs == {"num_tasks": 10, "seed": 7, "splits": {"train": 0.5, "val": 0.5}, "size": 3}
    # val is about half (0.5 of 10, hashed per task): 4 here; the default 60/20/20 would give about 2.
    assert (env.name, env.instruction, len(env.tasks("val"))) == ("my_tiny", "Custom instruction.", 4)


def test_bigbench_source_by_path(tmp_path: Path) -> None:
    write(tmp_path / "bb" / "task.json", """
        {"name": "t", "description": "d", "keywords": [], "canary": "c",
         "metrics": ["exact_str_match"], "preferred_score": "exact_str_match",
         "examples": [{"input": "1+1", "target": "2"}, {"input": "2+2", "target": "4"},
                      {"input": "3+3", "target": "6"}]}
        """)
    path = write(tmp_path / "bb.yaml", """
        version: 1
        kind: env
        name: bb
        source: {type: bigbench, path: bb}
        metric: numeric
        splits: {train: 1, test: 2}
        """)
    env = load_env(path)
    assert (env.name, env.metric.name, len(env.tasks("test"))) == ("bb", "numeric", 2)  # type: ignore[attr-defined]


def test_remote_source_builds_remote_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: dict[str, Any] = {}

    class FakeRemote(TinyEnv):
        def __init__(self, url: str, profile: str = "agentforge", *, tasks: list[Any] | None = None,
                     num_tasks: int | None = None, splits: Mapping[str, float | int] | None = None, seed: int = 0,
                     timeout: float = 30.0, name: str | None = None, instruction: str | None = None) -> None:
            built.update(url=url, profile=profile, tasks=tasks, num_tasks=num_tasks, splits=splits, seed=seed,
                         timeout=timeout, name=name)
            super().__init__(num_tasks=len(tasks or [0]), seed=seed)

    monkeypatch.setattr(registry, "_remote_class", lambda: FakeRemote)
    path = write(tmp_path / "r.yaml", """
        version: 1
        kind: env
        name: remote_tc
        source:
          type: remote
          url: http://127.0.0.1:8000
          profile: textcraft
          task_ids: [3, 5, 8]
          params: {timeout: 5}
        seed: 2
        """)
    env = load_env(path)
    assert built == {"url": "http://127.0.0.1:8000", "profile": "textcraft", "tasks": [3, 5, 8], "num_tasks": None,
                     "splits": None, "seed": 2, "timeout": 5, "name": "remote_tc"}
    assert env.name == "remote_tc"


def test_remote_source_without_the_http_client_is_a_clear_error(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "agentforge.envs.remote.client", None)  # makes the import fail
    path = write(tmp_path / "r.yaml", """
        version: 1
        kind: env
        name: r
        source: {type: remote, url: "http://127.0.0.1:1", num_tasks: 3}
        """)
    with pytest.raises(EnvError, match="RemoteEnv"):
        load_env(path)


def test_spec_is_frozen() -> None:
    spec, _ = load_env_spec(REPO / "envs" / "arithmetic.yaml")
    assert isinstance(spec, EnvSpec) and spec.source.type == "jsonl"
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]


# ---------------------------------------------------------------- errors, with file and line


def load_error(tmp_path: Path, text: str) -> tuple[Path, Any, SpecError]:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(SpecError) as info:
        load_env(path)
    return path, problem_of(info), info.value


BASE = """
    version: 1
    kind: env
    name: bad
    source:
      type: jsonl
      path: data/qa.jsonl
    """


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        (BASE + "metrc: numeric\n", 7, "unknown field 'metrc'", "did you mean 'metric'?"),
        (BASE.replace("path: data", "pth: data"), 6, "unknown field 'pth'", "did you mean 'path'?"),
        (BASE.replace("type: jsonl", "type: jsnol"), 5, "unknown source type 'jsnol'", "did you mean 'jsonl'?"),
        (BASE + "metric: exact_mach\n", 7, "unknown metric 'exact_mach'; did you mean 'exact_match'?", None),
        (BASE + "splits: {train: 0.5, dev: 0.5}\n", 7, "", None),
        (BASE + "num_tasks: 0\n", 7, "greater than or equal to 1", None),
        (BASE.replace("version: 1", "version: 2"), 1, "", None),
        (BASE.replace("name: bad", "name: bad name!"), 3, "string should match pattern", None),
        (BASE.replace("      path: data/qa.jsonl\n", ""), 4, "missing required field 'path'", "add 'path:' here"),
        ("version: 1\nkind: env\nname: x\nsource: {type: bigbench}\n", 4, "exactly one of 'task'", None),
        ("version: 1\nkind: env\nname: x\nsource: {type: bigbench, task: a, path: b}\n", 4, "exactly one", None),
        ("version: 1\nkind: env\nname: x\nsource: {type: builtin}\n", 4, "missing required field 'class'", None),
        ("version: 1\nkind: env\nname: x\n", 1, "missing required field 'source'", None),
    ],
)
def test_spec_errors_name_file_line_and_suggest(tmp_path: Path, text: str, line: int, message: str,
                                                hint: str | None) -> None:
    path, _, error = load_error(tmp_path, text)
    problem = next((p for p in error.problems if message in p.message), None)
    assert problem is not None, error
    assert (problem.file, problem.line) == (str(path), line), error
    if hint:
        assert problem.hint == hint
    assert f"{path}:{line}" in str(error)


def test_malformed_yaml_and_non_mapping(tmp_path: Path) -> None:
    path, problem, _ = load_error(tmp_path, "version: 1\nname: [unclosed\nkind: env\n")
    assert problem.file == str(path) and problem.line is not None and "malformed YAML" in problem.message
    _, problem, _ = load_error(tmp_path, "- just\n- a list\n")
    assert "must be a YAML mapping" in problem.message and problem.line == 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="environment file not found") as info:
        load_env(tmp_path / "nope.yaml")
    assert info.value.problems[0].file == str(tmp_path / "nope.yaml")


def test_metric_on_a_builtin_source_is_an_error(tmp_path: Path, tiny: None) -> None:
    _, problem, _ = load_error(tmp_path, """
        version: 1
        kind: env
        name: x
        source: {type: builtin, class: tiny}
        metric: numeric
        """)
    assert problem.line == 5 and "applies to jsonl and bigbench" in problem.message


def test_unknown_builtin_class_and_parameter(tmp_path: Path, tiny: None) -> None:
    _, problem, _ = load_error(tmp_path, """
        version: 1
        kind: env
        name: x
        source: {type: builtin, class: wordel}
        """)
    assert problem.line == 4 and "'wordel'" in problem.message and "did you mean 'wordle'" in problem.message
    _, problem, _ = load_error(tmp_path, """
        version: 1
        kind: env
        name: x
        source:
          type: builtin
          class: tiny
          params:
            sise: 3
        """)
    assert (problem.line, problem.hint) == (8, "did you mean 'size'?")
    assert "takes no parameter 'sise'" in problem.message


def test_data_file_errors_point_into_the_data_file(tmp_path: Path) -> None:
    path = qa_files(tmp_path)
    (tmp_path / "data" / "qa.jsonl").write_text('{"id": "a", "question": "q", "answer": 1}\nnot json\n')
    with pytest.raises(SpecError) as info:
        load_env(path)
    problem = info.value.problems[0]
    assert (problem.file, problem.line) == (str(tmp_path / "data" / "qa.jsonl"), 2)
