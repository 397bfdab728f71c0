"""``agentforge evolve | report | versions | export``: the evolve loop from the command line.

Registered on the main app by ``agentforge.cli``. Progress goes to stderr as a live panel (or one line
per event with ``--plain``); the final summary goes to stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from agentforge.cli import BAD_INPUT, OK, RUN_FAILED, _exit_code, _fail, _start_logging, app, err, out
from agentforge.errors import AgentforgeError, BudgetExceeded


class _EvolveDisplay:
    """Generation, best val score, spend against the budget, accepted/rejected counts with reasons."""

    def __init__(self, *, live: bool, budget: Any) -> None:
        self.live_enabled = live
        self.budget = budget
        self.live: Any = None
        self.generation = 0
        self.best_val: float | None = None
        self.seed_val: float | None = None
        self.accepted = 0
        self.rejected: dict[str, int] = {}
        self.last_reasons: list[str] = []
        self.spent: dict[str, Any] = {}
        self.preflight = ""
        self.lines: list[str] = []
        self.summaries: dict[str, str] = {}

    def __enter__(self) -> _EvolveDisplay:
        if self.live_enabled:
            from rich.live import Live

            self.live = Live(self._render(), console=err, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def __call__(self, event: Any) -> None:
        kind = event.type
        if kind == "preflight":
            self.preflight = event.text
            self._say(f"preflight: {event.text}")
        elif kind == "run_started":
            sizes = ", ".join(f"{k} {v}" for k, v in event.splits.items())
            self._say(f"{'resumed' if event.resumed else 'started'} {event.run_id} in {event.folder} ({sizes})")
        elif kind == "seed_scored":
            self.seed_val = self.best_val = event.score
            self._say(f"seed val score {event.score:.3f}")
        elif kind == "generation_started":
            self.generation = event.generation
            self._say(f"generation {event.generation}: parent {event.parent[:8]} (val {event.parent_score:.3f})")
        elif kind == "candidate_proposed":
            self.summaries[event.spec_hash] = event.summary
        elif kind == "candidate_accepted":
            self.accepted += 1
            self.best_val = max(self.best_val or 0.0, event.val_score)
            self._say(f"  accepted {event.spec_hash[:8]} {self._what(event.spec_hash)}: val {event.val_score:.3f} "
                      f"({event.comparison})")
        elif kind == "candidate_rejected":
            self.rejected[event.stage] = self.rejected.get(event.stage, 0) + 1
            reason = " ".join(event.reason.replace("\n  - ", "; ").split())
            self.last_reasons = [f"{event.stage}: {reason[:110]}", *self.last_reasons][:3]
            self._say(f"  rejected {event.spec_hash[:8]} {self._what(event.spec_hash)} ({event.stage}): {reason[:200]}")
        elif kind == "proposal_failed":
            self._say(f"  optimizer {event.optimizer} failed: {event.error[:160]}")
        elif kind == "budget":
            self.spent = event.spent
        if self.live is not None:
            self.live.update(self._render())

    def _what(self, spec_hash: str) -> str:
        summary = self.summaries.get(spec_hash, "")
        return f"{summary[:70]}{'...' if len(summary) > 70 else ''}" if summary else ""

    def _say(self, line: str) -> None:
        self.lines.append(line)
        if self.live is None:
            err.print(line, markup=False, highlight=False, soft_wrap=True)

    def _render(self) -> Any:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        best = f"{self.best_val:.3f}" if self.best_val is not None else "-"
        seed = f" (seed {self.seed_val:.3f})" if self.seed_val is not None else ""
        table.add_row("generation", f"{self.generation} / {self.budget.generations}")
        table.add_row("best val", best + seed)
        total = self.spent.get("total", {})
        limits = self.budget.total
        calls = f"{total.get('calls', 0)}" + (f" / {limits.calls}" if limits.calls is not None else "")
        table.add_row("spent", f"{calls} calls ({total.get('fresh_calls', 0)} fresh), "
                               f"{total.get('tokens', 0):,} tokens, ${total.get('usd', 0.0):.4f}, "
                               f"{total.get('seconds', 0.0) / 60:.1f} min")
        rej = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        table.add_row("candidates", f"{self.accepted} accepted; rejected: {rej}")
        for reason in self.last_reasons:
            table.add_row("", Text(reason))
        for line in self.lines[-6:]:
            table.add_row("", Text(line[:140]))
        return table


@app.command()
def evolve(
    workflow: Annotated[Path | None, typer.Argument(help="The seed workflow YAML (omit with --resume).")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Environment: a name in envs/ or a YAML path.")] = None,
    optimizer: Annotated[str, typer.Option("--optimizer", "-o", help="Comma-separated: reflect, textgrad, mipro.")]
    = "reflect",
    budget: Annotated[str, typer.Option(
        "--budget", help="e.g. generations=5,calls=2000,usd=1,minutes=30; executor.calls=, optimizer.calls= cap "
                         "one role.")] = "",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Run the workflow's LLM nodes on this model.")]
    = None,
    optimizer_model: Annotated[str, typer.Option("--optimizer-model", help="The model optimizers ask.")] = "local",
    seed: Annotated[int, typer.Option("--seed", help="Seeds every random choice: same seed, same lineage.")] = 0,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
    minibatch: Annotated[int, typer.Option("--minibatch", min=1, help="Train tasks per generation.")] = 8,
    candidates: Annotated[int, typer.Option("--candidates", min=1, help="Candidates per optimizer per generation.")]
    = 3,
    train: Annotated[int | None, typer.Option("--train", min=1, help="Use the first N train tasks.")] = None,
    val: Annotated[int | None, typer.Option("--val", min=1, help="Use the first N val tasks.")] = None,
    test: Annotated[int | None, typer.Option("--test", min=1, help="Use the first N test tasks.")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Evaluations per task of a sampling workflow.")]
    = 3,
    level: Annotated[float, typer.Option("--level", min=0.51, max=0.999, help="Acceptance confidence level.")] = 0.9,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory preset or YAML (default: one in the run "
                                                                "folder).")] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Where run folders go (default: runs/).")]
    = None,
    plain: Annotated[bool, typer.Option("--plain", help="One line per event instead of a live panel.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Evolve a workflow on an environment: propose, gate, evaluate and keep what is better beyond noise;
    then score the seed and the best once on the held-out test split. Writes runs/<id>/ (run store, pool
    YAML, best.yaml, report.html). Exit 0 ok, 1 the run failed, 2 bad input (also a budget too small)."""
    from agentforge._sync import run_sync
    from agentforge.evolve.config import AcceptanceConfig, EvolveConfig, SplitConfig, parse_budget
    from agentforge.evolve.loop import aevolve

    _start_logging()
    if resume is None and (workflow is None or env is None):
        raise _fail("give a WORKFLOW and --env ENV, or --resume RUN_FOLDER", BAD_INPUT)
    try:
        config = EvolveConfig(
            optimizers=tuple(o.strip() for o in optimizer.split(",") if o.strip()), model=model,
            optimizer_model=optimizer_model, seed=seed, minibatch=minibatch, candidates_per_generation=candidates,
            splits=SplitConfig(train=train, val=val, test=test), repeats=repeats,
            acceptance=AcceptanceConfig(level=level), budget=parse_budget(budget), memory=memory, runs_dir=runs_dir)
        display = _EvolveDisplay(live=not plain and not as_json and err.is_terminal, budget=config.budget)
        with display:
            result = run_sync(aevolve(workflow if resume is None else None, env if resume is None else None,  # type: ignore[arg-type]
                                      config if resume is None else None, on_event=display, resume=resume))
        report = result.folder / "report.html"
    except BudgetExceeded as exc:
        raise _fail(str(exc), BAD_INPUT) from None
    except AgentforgeError as exc:
        raise _fail(str(exc), _exit_code(exc)) from None
    if as_json:
        out.print_json(data={"run_id": result.run_id, "folder": str(result.folder), "best": result.best.hash,
                             "seed_val": result.seed_val, "best_val": result.best_val, "seed_test": result.seed_test,
                             "best_test": result.best_test, "test_comparison": result.test_comparison.describe(),
                             "stop_reason": result.stop_reason, "rejected": result.rejected,
                             "accepted": result.accepted, "malformed": result.malformed, "spent": result.spent,
                             "new_calls": result.new_calls,
                             "report": str(report)})
        return
    c = result.test_comparison
    out.print(f"seed vs best on {c.n} held-out test tasks: {result.seed_test:.3f} -> {result.best_test:.3f} "
              f"(difference {c.mean_diff:+.3f}, {c.level:.0%} CI [{c.ci_low:+.3f}, {c.ci_high:+.3f}])",
              highlight=False, soft_wrap=True)
    out.print(f"val: {result.seed_val:.3f} -> {result.best_val:.3f}; {result.generations} generation(s), "
              f"{result.accepted} accepted, rejected {result.rejected or 'none'}, {result.malformed} malformed "
              "optimizer replies", highlight=False, soft_wrap=True)
    spent = result.spent["total"]
    out.print(f"stopped: {result.stop_reason}; spent {spent['calls']} calls ({spent['fresh_calls']} fresh, "
              f"{result.new_calls} of them in this session), "
              f"{spent['tokens']:,} tokens, ${spent['usd']:.4f}, {spent['seconds'] / 60:.1f} min "
              f"(executor {result.spent['executor']['calls']} calls, optimizer {result.spent['optimizer']['calls']})",
              highlight=False, soft_wrap=True)
    out.print(f"best: {result.folder / 'best.yaml'}", highlight=False, soft_wrap=True)
    out.print(f"report: {report}", highlight=False, soft_wrap=True)


@app.command()
def report(run: Annotated[Path, typer.Argument(help="An evolve run folder.")]) -> None:
    """Write the run's self-contained HTML report (plots, lineage, diffs, verdicts, budget) and print its path."""
    from agentforge.evolve.report import write_report

    try:
        path = write_report(run)
    except AgentforgeError as exc:
        raise _fail(str(exc), _exit_code(exc)) from None
    out.print(str(path), highlight=False, soft_wrap=True)


@app.command()
def versions(run: Annotated[Path, typer.Argument(help="An evolve run folder.")],
             as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List every candidate of a run: version hash, parent, generation, optimizer, status and scores."""
    from rich.markup import escape

    from agentforge.evolve.store import RunStore

    try:
        store = RunStore.open(run)
    except AgentforgeError as exc:
        raise _fail(str(exc), _exit_code(exc)) from None
    try:
        rows = store.candidates()
    finally:
        store.close()
    if as_json:
        out.print_json(data=[{k: v for k, v in r.items() if k not in ("yaml",)} for r in rows])
        return
    table = Table(show_edge=False)
    for col in ("version", "parent", "gen", "optimizer", "status", "minibatch", "val", "test"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary", overflow="ellipsis", no_wrap=True, min_width=20)

    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in rows:
        status = r["status"] + (f" ({r['stage']})" if r["stage"] else "")
        table.add_row(r["hash"][:8], (r["parent"] or "-")[:8], str(r["generation"]), r["optimizer"], status,
                      num(r["mb_score"]), num(r["val_score"]), num(r["test_score"]), escape((r["summary"] or "")[:64]))
    if out.is_terminal:
        out.print(table)
    else:  # a pipe or file gets the whole row, not a table squeezed to 80 columns
        from rich.console import Console

        Console(width=170, no_color=True).print(table)


@app.command("export")
def export_version(run: Annotated[Path, typer.Argument(help="An evolve run folder.")],
                   version: Annotated[str, typer.Option("--version", "-v", help="A version hash (a unique prefix "
                                                                              "is enough), or 'best' or 'seed'.")]
                   = "best",
                   output: Annotated[Path | None, typer.Option("--output", "-O", help="Write here (default: stdout).")]
                   = None) -> None:
    """Print (or write) one version of a run as workflow YAML."""
    from agentforge.evolve.store import RunStore

    try:
        store = RunStore.open(run)
    except AgentforgeError as exc:
        raise _fail(str(exc), _exit_code(exc)) from None
    try:
        meta = store.meta()
        rows = store.candidates()
    finally:
        store.close()
    if version == "best":
        finished = json.loads(meta.get("finished", "null") or "null")
        if not finished:
            raise _fail(f"{run} has not finished, so it has no best yet; name a version (agentforge versions {run})",
                        RUN_FAILED)
        version = finished["best"]
    elif version == "seed":
        version = meta.get("seed_hash", "")
    matches = [r for r in rows if r["hash"].startswith(version)]
    if len(matches) != 1:
        known = ", ".join(r["hash"][:12] for r in rows[:10])
        raise _fail(f"version '{version}' matches {len(matches)} candidates of {run} (known: {known})", BAD_INPUT)
    text = matches[0]["yaml"]
    if output is None:
        out.print(text, markup=False, highlight=False, end="")
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}", highlight=False, soft_wrap=True)
    raise typer.Exit(OK)
