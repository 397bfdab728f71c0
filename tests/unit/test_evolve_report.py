"""The evolve run report: one self-contained HTML file with the run's own data, escaped, for finished and
unfinished runs. The run folders are made by the real evolve loop, with scripted executor and optimizer
models and the in-memory experience store."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agentforge.config import Settings, use_settings
from agentforge.errors import LLMError, RunFolderError
from agentforge.evolve.config import BudgetConfig, EvolveConfig, SplitConfig
from agentforge.evolve.events import (
    CandidateAccepted,
    CandidateRejected,
    Event,
    GenerationStarted,
    ProposalFailed,
    RunFinished,
)
from agentforge.evolve.loop import evolve
from agentforge.evolve.report import write_report
from agentforge.evolve.store import RunStore
from agentforge.llm.base import LLMRequest
from agentforge.llm.scripted import ScriptedModel, register_script, unregister_script
from agentforge.memory.embeddings import HashingEmbedder
from agentforge.memory.in_memory import InMemoryStore
from agentforge.workflow.loader import spec_from_text
from tests.unit.sample_evolve import AddEnv

QA = """
version: 1
name: adder
description: "Adds two numbers <b>fast</b>"
inputs: {question: str}
outputs: {answer: str}
nodes:
  - {id: ask, kind: agent, instruction: "Answer the question.", prompt: "Q: {question}",
     inputs: [question], outputs: [answer]}
"""

HOSTILE = "<script>alert('pwned')</script>"
REWRITE = ("Add the two numbers with care and answer with the digits of the sum only " + HOSTILE
           + " then check the sum once more before you reply to the question")


def sum_env() -> AddEnv:
    """Add two numbers: 8 train, 8 val and 6 test tasks."""
    return AddEnv(8, 8, 6, numbers=lambda k: (3 + k * 7 % 50, 2 + k * 3 % 40), question="What is {a} plus {b}?",
                  name="sums")


def solver(request: LLMRequest) -> str:
    """Right when the first number is a multiple of 3; a hint helps on even numbers too; demos fix all."""
    text = request.prompt_text()
    a, b = map(int, re.findall(r"What is (\d+) plus (\d+)", text)[-1])
    demos = len(re.findall(r"What is \d+ plus \d+", text)) > 1
    hint = "Hint:" in text and a % 2 == 0
    return str(a + b) if demos or hint or a % 3 == 0 else str(a + b + 1)


class Optimizer:
    """The optimizer model: its first call fails (with markup in the error), then it asks for a rewrite
    whose text carries markup and is too long for the gate, and it lets the RNG choose from the menu."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: LLMRequest) -> str:
        self.calls += 1
        if self.calls == 1:
            raise LLMError(f"upstream refused: {HOSTILE}")
        if "Rewrite the instruction" in request.prompt_text():
            return json.dumps({"instruction": REWRITE})
        return "not json"


class Killed(Exception):
    """Stands for a kill: raised from the event callback, after the event is stored."""


@dataclass
class Runs:
    finished: Path
    unfinished: Path
    started: Path


def make_run(runs_dir: Path, name: str, *, kill_at: int | None) -> Path:
    register_script(f"{name}-exec", ScriptedModel(default=solver))
    register_script(f"{name}-opt", ScriptedModel(default=Optimizer()))
    config = EvolveConfig(model=f"scripted/{name}-exec", optimizer_model=f"scripted/{name}-opt", minibatch=4,
                          splits=SplitConfig(), budget=BudgetConfig(generations=3), runs_dir=runs_dir,
                          optimizer_options={"reflect": {"rewrites": 1}}, gate={"max_component_chars": 150})

    def on_event(event: Event) -> None:  # kill_at 0: at the first event; n: as generation n starts
        if kill_at == 0 or (isinstance(event, GenerationStarted) and event.generation == kill_at):
            raise Killed

    try:
        evolve(spec_from_text(QA), sum_env(), config, memory=InMemoryStore(HashingEmbedder()), on_event=on_event)
    except Killed:
        pass
    finally:
        unregister_script(f"{name}-exec")
        unregister_script(f"{name}-opt")
    (folder,) = runs_dir.iterdir()
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    base = tmp_path_factory.mktemp("evolve-report")
    with use_settings(Settings(home=base / "home")):
        yield Runs(finished=make_run(base / "a", "report-a", kill_at=None),
                   unfinished=make_run(base / "b", "report-b", kill_at=2),
                   started=make_run(base / "c", "report-c", kill_at=0))


def _stored(folder: Path) -> tuple[list[Event], list[dict[str, object]]]:
    store = RunStore.open(folder)
    try:
        return store.events(), store.candidates()
    finally:
        store.close()


class _Page(HTMLParser):
    """Collects tags with their attributes, the text of each section, and the text inside <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.sections: dict[str, list[str]] = {}
        self.section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "section":
            self.section = dict(attrs).get("id")
            self.sections[self.section or ""] = []

    def handle_data(self, data: str) -> None:
        if self.section is not None:
            self.sections[self.section].append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]).split())


def _page(path: Path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def test_the_report_is_one_file_with_nothing_loaded_from_elsewhere(runs: Runs) -> None:
    path = write_report(runs.finished)
    assert path == runs.finished / "report.html"
    text, page = _page(path)
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "img", "object", "embed")]
    for _, attrs in page.tags:
        for key in ("src", "href", "xlink:href", "action"):
            value = attrs.get(key) or ""
            assert not re.match(r"\s*(https?:)?//", value), (key, value)
            assert not value.strip().startswith(("javascript:", "data:text/html")), (key, value)
    assert "@import" not in text and not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    assert [t for t, _ in page.tags].count("svg") >= 3  # two plots and the lineage, inline
    # The plots' ids are unique across the page, so one figure's defs cannot capture another's references.
    ids = [a["id"] for _, a in page.tags if a.get("id")]
    assert len(ids) == len(set(ids))


def test_the_summary_shows_the_run_the_test_result_and_the_budget(runs: Runs) -> None:
    events, _ = _stored(runs.finished)
    store = RunStore.open(runs.finished)
    meta = store.meta()
    store.close()
    fin = next(e for e in events if isinstance(e, RunFinished))
    spent = [e for e in events if e.type == "budget"][-1].spent  # type: ignore[attr-defined]
    _, page = _page(write_report(runs.finished))
    summary = page.text("summary")
    assert meta["run_id"] in summary and "adder" in summary and "Adds two numbers <b>fast</b>" in summary
    assert re.search(rf"finished ?: {re.escape(fin.stop_reason)}", summary)
    assert f"seed {fin.seed_test:.3f} → best {fin.best_test:.3f}" in summary
    assert fin.comparison in summary  # the paired CI
    assert f"seed {fin.seed_val:.3f} → best {fin.best_val:.3f}" in summary
    assert fin.best[:8] in summary and "reflect" in summary and "scripted/report-a-opt" in summary
    budget = page.text("budget")
    for role in ("executor", "optimizer", "total"):
        assert f"{role} {spent[role]['calls']:,} {spent[role]['fresh_calls']:,} {spent[role]['tokens']:,}" in budget
    assert "of at most 3" in budget


def test_the_plots_carry_the_runs_scores(runs: Runs) -> None:
    events, candidates = _stored(runs.finished)
    text, _ = _page(write_report(runs.finished))
    scores = text[text.index('<section id="scores">'):text.index('<section id="pareto">')]
    for label in ("best val so far", "candidate, train minibatch", "seed, test", "best, test", "generation"):
        assert label in scores
    pareto = text[text.index('<section id="pareto">'):text.index('<section id="lineage">')]
    assert "Pareto front" in pareto and "LLM calls per val task" in pareto
    fin = next(e for e in events if isinstance(e, RunFinished))
    assert f"{fin.best[:8]} (best)" in pareto
    # Every val-evaluated candidate is a point: as many markers as there are such candidates.
    evaluated = [c for c in candidates if c["val_score"] is not None]
    assert len(evaluated) >= 2
    assert len(re.findall(r"<use ", pareto)) >= len(evaluated)


def test_the_lineage_shows_every_candidate_under_its_parent_with_its_status(runs: Runs) -> None:
    events, candidates = _stored(runs.finished)
    text, page = _page(write_report(runs.finished))
    lineage = page.text("lineage")
    accepted = {e.spec_hash for e in events if isinstance(e, CandidateAccepted)}
    rejected = {e.spec_hash: e.stage for e in events if isinstance(e, CandidateRejected)}
    assert accepted and rejected
    for c in candidates:
        h = str(c["hash"])
        val = "–" if c["val_score"] is None else f"{c['val_score']:.3f}"
        assert f"{h[:8]} val {val}" in lineage
    svg = text[text.index('<section id="lineage">'):text.index('<section id="diff">')]
    # One edge per candidate with a parent, and the node of each accepted one is coloured as the pool.
    with_parent = [c for c in candidates if c["parent"] and c["parent"] != c["hash"]]
    assert svg.count('class="edge"') == len(with_parent)
    for h in accepted:
        node = re.search(rf'<title>{h}\n.*?</title><circle [^>]*fill="([^"]+)"', svg, re.S)
        assert node and node.group(1) == "#2e7d32"
    for h, stage in rejected.items():
        assert re.search(rf'<title>{h}\n[^<]*, {stage}\n', svg)


def test_the_diff_shows_each_changed_node_before_and_after_with_the_words_marked(runs: Runs) -> None:
    events, candidates = _stored(runs.finished)
    fin = next(e for e in events if isinstance(e, RunFinished))
    seed = spec_from_text(str(candidates[0]["yaml"]))
    best = spec_from_text(next(str(c["yaml"]) for c in candidates if c["hash"] == fin.best))
    before, after = seed.node("ask").instruction, best.node("ask").instruction
    assert before != after and after.startswith(before)  # this run's best added a hint paragraph
    text, _ = _page(write_report(runs.finished))
    diff = text[text.index('<section id="diff">'):text.index('<section id="verdicts">')]
    assert "node <code>ask</code>" in diff and "set_component <code>ask.instruction</code>" in diff
    assert f"<pre>{before}</pre>" in diff  # nothing was removed: the seed side has no <del>
    inserted = [html.unescape(part) for part in re.findall(r"<ins>(.*?)</ins>", diff, re.S)]
    assert " ".join("".join(inserted).split()) == " ".join(after[len(before):].split())
    for c in candidates:  # the path from the seed to the best, with each step's summary
        if c["hash"] in (fin.best, candidates[0]["hash"]):
            assert html.escape(str(c["summary"])) in diff


def test_the_verdict_table_lists_every_outcome_with_its_stage_and_reason(runs: Runs) -> None:
    events, _ = _stored(runs.finished)
    _, page = _page(write_report(runs.finished))
    table = page.text("verdicts")
    outcomes = [e for e in events if isinstance(e, CandidateRejected | CandidateAccepted | ProposalFailed)]
    stages = {e.stage for e in events if isinstance(e, CandidateRejected)}
    assert {"gate", "minibatch"} <= stages
    for event in outcomes:
        if isinstance(event, CandidateRejected):
            assert f"{event.spec_hash[:8]} {event.generation} reflect {event.stage} {' '.join(event.reason.split())}" \
                in table
        elif isinstance(event, CandidateAccepted):
            assert f"{event.spec_hash[:8]} {event.generation} reflect accepted {event.comparison}" in table
        else:
            assert f"{event.generation} reflect proposal failed" in table
    gate = next(e for e in events if isinstance(e, CandidateRejected) and e.stage == "gate")
    assert "too long" in gate.reason and "too long" in table


def test_markup_from_models_and_workflows_shows_as_text(runs: Runs) -> None:
    text, page = _page(write_report(runs.finished))
    assert "script" not in [t for t, _ in page.tags] and "<b>fast" not in text  # nothing hostile became a tag
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in text
    assert HOSTILE in page.text("verdicts")  # the failed proposal's error, as text
    assert "Adds two numbers &lt;b&gt;fast&lt;/b&gt;" in text


def test_an_unfinished_run_renders_what_it_has(runs: Runs) -> None:
    events, candidates = _stored(runs.unfinished)
    assert not any(isinstance(e, RunFinished) for e in events)
    path = write_report(runs.unfinished)
    text, page = _page(path)
    summary = page.text("summary")
    assert "in progress / stopped early" in summary and "Test scores come at the end" in summary
    for c in candidates:
        assert str(c["hash"])[:8] in page.text("lineage")
    assert "seed, test" not in text  # no test scores yet
    assert [t for t, _ in page.tags].count("svg") >= 3


def test_a_run_killed_before_anything_was_scored_renders(runs: Runs) -> None:
    events, candidates = _stored(runs.started)
    assert [e.type for e in events] == ["run_started"] and candidates == []
    _, page = _page(write_report(runs.started))
    assert "in progress / stopped early" in page.text("summary")
    assert "Nothing scored yet" in page.text("scores") and "No candidate" in page.text("lineage")
    assert "No best candidate yet" in page.text("diff") and "No candidate has an outcome yet" in page.text("verdicts")
    assert "No budget update recorded yet" in page.text("budget")


def test_a_folder_that_is_not_a_run_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    (folder / "run.sqlite").write_bytes(b"this is not sqlite")
    with pytest.raises(RunFolderError, match="corrupt"):
        write_report(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["run.sqlite"]
    with pytest.raises(RunFolderError):
        write_report(tmp_path / "missing")
