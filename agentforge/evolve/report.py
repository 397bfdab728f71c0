"""The evolve run report: one self-contained HTML file, ``<run folder>/report.html``.

It is read from the run store alone (meta, candidates, events, per-task scores), so it can be written
for a finished run, a running one or one that was killed. The file needs nothing else: styles are
inline, plots are inline SVG drawn by matplotlib (imported only here, and only when a report is
written) and the lineage tree is SVG laid out here. Everything that came from a user, a model or a
workflow is HTML-escaped.

The events are the run's history; the candidates table is each candidate's latest row. Outcomes
(accepted, rejected at which stage, and why) are read from the events, so a row that was later
overwritten does not rewrite what happened.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cached_property
from pathlib import Path
from statistics import fmean
from typing import Any

from agentforge.errors import SpecError
from agentforge.evolve.events import (
    BudgetUpdate,
    CandidateAccepted,
    CandidateProposed,
    CandidateRejected,
    Event,
    Preflight,
    ProposalFailed,
    RunFinished,
    RunStarted,
    SeedScored,
)
from agentforge.evolve.store import RunStore
from agentforge.logs import get_logger
from agentforge.workflow.edits import diff
from agentforge.workflow.loader import spec_from_text
from agentforge.workflow.spec import WorkflowSpec

__all__ = ["REPORT_FILE", "write_report"]

log = get_logger(__name__)

REPORT_FILE = "report.html"
SHORT = 8  # characters of a hash shown

STAGE_COLOURS = {
    "seed": "#1565c0", "pool": "#2e7d32", "novelty": "#9e9e9e", "gate": "#c62828", "minibatch": "#ef6c00",
    "noise": "#c9a400", "invalid": "#6a1b9a", "budget": "#5d4037", "proposed": "#90a4ae",
}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short(spec_hash: str | None) -> str:
    return (spec_hash or "")[:SHORT]


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# -- what the report reads --------------------------------------------------------------------------

@dataclass
class _Outcome:
    generation: int
    spec_hash: str
    optimizer: str
    stage: str  # accepted, one of the rejection stages, or "proposal failed"
    reason: str
    summary: str = ""


@dataclass
class _Run:
    folder: Path
    meta: dict[str, str]
    config: dict[str, Any]
    candidates: dict[str, dict[str, Any]]
    events: list[Event]
    scores: list[tuple[str, str, int, str, float, int, float]]
    outcomes: list[_Outcome] = field(default_factory=list)

    @property
    def seed_hash(self) -> str:
        return self.meta.get("seed_hash", "")

    def last(self, kind: type[Event]) -> Any:
        return next((e for e in reversed(self.events) if isinstance(e, kind)), None)

    @property
    def finished(self) -> RunFinished | None:
        found: RunFinished | None = self.last(RunFinished)
        return found

    def generations(self) -> int:
        return max((e.generation for e in self.events), default=0)

    @cached_property
    def accepted(self) -> frozenset[str]:
        return frozenset(e.spec_hash for e in self.events if isinstance(e, CandidateAccepted))

    @cached_property
    def _val_results(self) -> dict[str, list[tuple[float, int]]]:
        out: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for spec_hash, _task, _repeat, split, _score, calls, cost in self.scores:
            if split == "val":
                out[spec_hash].append((cost, calls))
        return out

    def status(self, spec_hash: str) -> str:
        """seed, pool, a rejection stage, or proposed (no outcome yet)."""
        if spec_hash == self.seed_hash:
            return "seed"
        if spec_hash in self.accepted:
            return "pool"
        stages = [o.stage for o in self.outcomes if o.spec_hash == spec_hash and o.stage in STAGE_COLOURS]
        if stages:
            return stages[0]
        row = self.candidates.get(spec_hash, {})
        return str(row.get("stage") or ("pool" if row.get("status") == "pool" else "proposed"))

    def best_hash(self) -> str | None:
        if self.finished is not None:
            return self.finished.best
        pool = [c for c in self.candidates.values()
                if self.status(c["hash"]) in ("seed", "pool") and c.get("val_score") is not None]
        if not pool:
            return None
        return sorted(pool, key=lambda c: (-c["val_score"], c.get("cost") or 0.0, c["hash"]))[0]["hash"]

    def per_task(self, spec_hash: str) -> tuple[float, float] | None:
        """(mean USD, mean LLM calls) per val task of ``spec_hash``, from the stored results."""
        rows = self._val_results.get(spec_hash)
        if not rows:
            return None
        return fmean(r[0] for r in rows), fmean(r[1] for r in rows)


def _outcomes(events: list[Event]) -> list[_Outcome]:
    proposed: dict[str, CandidateProposed] = {}
    out: list[_Outcome] = []
    for event in events:
        if isinstance(event, CandidateProposed):
            proposed[event.spec_hash] = event
        elif isinstance(event, CandidateRejected | CandidateAccepted):
            p = proposed.get(event.spec_hash)
            optimizer, summary = (p.optimizer, p.summary) if p else ("", "")
            stage, why = (("accepted", event.comparison) if isinstance(event, CandidateAccepted)
                          else (event.stage, event.reason))
            out.append(_Outcome(event.generation, event.spec_hash, optimizer, stage, why, summary))
        elif isinstance(event, ProposalFailed):
            out.append(_Outcome(event.generation, "", event.optimizer, "proposal failed", event.error))
    return out


def _read(folder: Path) -> _Run:
    store = RunStore.open(folder)
    try:
        meta = store.meta()
        try:
            config = json.loads(meta.get("config", "{}"))
        except ValueError:
            config = {}
        run = _Run(folder=folder, meta=meta, config=config if isinstance(config, dict) else {},
                   candidates={c["hash"]: c for c in store.candidates()}, events=store.events(),
                   scores=store.scores())
    finally:
        store.close()
    run.outcomes = _outcomes(run.events)
    return run


def _spec(run: _Run, spec_hash: str | None) -> WorkflowSpec | None:
    if spec_hash is None:
        return None
    row = run.candidates.get(spec_hash) or {}
    text = run.meta.get("seed_yaml") if spec_hash == run.seed_hash else row.get("yaml")
    return spec_from_text(text) if text else None


# -- header and budget ------------------------------------------------------------------------------

def _env_name(run: _Run) -> str:
    if run.meta.get("env_name"):
        return run.meta["env_name"]
    try:
        ref = json.loads(run.meta.get("env", "null"))
    except ValueError:
        ref = run.meta.get("env")
    return str(ref) if ref else "(an environment object; not named in the run store)"


def _header(run: _Run, seed: WorkflowSpec | None) -> str:
    cfg = run.config
    started: RunStarted | None = run.last(RunStarted)
    fin = run.finished
    rows: list[tuple[str, str]] = [
        ("run", _e(run.meta.get("run_id", run.folder.name))),
        ("folder", _e(run.folder)),
        ("workflow", f"{_e(seed.name if seed else '?')} <code>{_e(_short(run.seed_hash))}</code>"
                     + (f" ({_e(run.meta['workflow_file'])})" if run.meta.get("workflow_file") else "")
                     + (f"<br>{_e(seed.description)}" if seed and seed.description else "")),
        ("environment", _e(_env_name(run))),
        ("seed", _e(cfg.get("seed", "?"))),
        ("optimizers", _e(", ".join(cfg.get("optimizers", ()))) + f" (optimizer model {_e(cfg.get('optimizer_model'))}"
                       f", executor model {_e(cfg.get('model') or 'as the workflow says')})"),
    ]
    if started is not None and started.splits:
        rows.append(("splits", _e(", ".join(f"{k} {v}" for k, v in started.splits.items()))))
    with contextlib.suppress(ValueError):
        created = time.localtime(float(run.meta.get("created", "")))
        rows.append(("created", _e(time.strftime("%Y-%m-%d %H:%M:%S", created))))
    limit = cfg.get("budget", {}).get("generations", "?")
    rows.append(("generations", f"{_e(run.generations())} of at most {_e(limit)}"))
    preflight: Preflight | None = run.last(Preflight)
    if preflight is not None:
        rows.append(("preflight", _e(preflight.text)))
    if fin is not None:
        status = f'<span class="ok">finished</span>: {_e(fin.stop_reason)}'
        best = fin.best
        rows += [
            ("test (held out)", f"seed <b>{fin.seed_test:.3f}</b> → best <b>{fin.best_test:.3f}</b>; paired: "
                                f"{_e(fin.comparison)}"),
            ("val", f"seed {fin.seed_val:.3f} → best {fin.best_val:.3f}"),
        ]
    else:
        last = run.events[-1] if run.events else None
        status = ('<span class="warn">in progress / stopped early</span>: no run_finished event yet; this shows '
                  f"what the run store holds after {len(run.events)} events"
                  + (f" (the last: {_e(last.type)} in generation {last.generation})" if last else "")
                  + ". Test scores come at the end.")
        best = run.best_hash()
        seed_val = (run.candidates.get(run.seed_hash) or {}).get("val_score")
        best_val = (run.candidates.get(best or "") or {}).get("val_score")
        rows.append(("val so far", f"seed {_num(seed_val)} → best so far {_num(best_val)}"))
    rows.append(("best", f"<code>{_e(_short(best)) if best else '–'}</code>"
                         + (" (the seed)" if best and best == run.seed_hash else "")))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<p class="status">{status}</p><table class="kv">{body}</table>'


def _budget(run: _Run) -> str:
    update: BudgetUpdate | None = run.last(BudgetUpdate)
    spent: dict[str, Any] = update.spent if update is not None else {}
    limits: dict[str, Any] = spent.get("limits") or run.config.get("budget") or {}
    head = ("<tr><th>role</th><th>calls (spent / cap)</th><th>fresh calls</th><th>tokens (spent / cap)</th>"
            "<th>USD (spent / cap)</th><th>minutes (spent / cap)</th></tr>")

    def cell(value: Any, cap: Any, fmt: str) -> str:
        shown = "–" if value is None else format(value, fmt)
        return _e(shown + ("" if cap is None else f" / {format(cap, fmt)}"))

    body = []
    for role in ("executor", "optimizer", "total"):
        s: dict[str, Any] = spent.get(role) or {}
        cap: dict[str, Any] = limits.get(role) or {}
        # Time is counted for the run as a whole; a role's minute cap applies to the run's wall time.
        minutes = s.get("seconds", 0) / 60 if role == "total" and s else None
        body.append(f"<tr><th>{role}</th><td>{cell(s.get('calls'), cap.get('calls'), ',')}</td>"
                    f"<td>{cell(s.get('fresh_calls'), None, ',')}</td>"
                    f"<td>{cell(s.get('tokens'), cap.get('tokens'), ',')}</td>"
                    f"<td>{cell(s.get('usd'), cap.get('usd'), '.4f')}</td>"
                    f"<td>{cell(minutes, cap.get('minutes'), '.1f')}</td></tr>")
    note = ("" if update is not None else
            "<p class=\"note\">No budget update recorded yet: the caps are from the run's config.</p>")
    extra = (f'<p class="note">Generations: {_e(run.generations())} of at most {_e(limits.get("generations", "?"))}. '
             "Calls count every call asked for, cached or not; fresh calls reached a model. Time is the run's "
             "wall time over all its sessions.</p>")
    return f"{note}<table class=\"grid\">{head}{''.join(body)}</table>{extra}"


# -- plots ----------------------------------------------------------------------------------------

def _svg_of(fig: Any, prefix: str) -> str:
    """The figure as inline SVG: no XML prolog, ids made unique to this figure, text kept as text."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
                bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    return re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # lazy: only a report draws

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot()


def _rc() -> Any:
    import matplotlib

    return matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "agentforge-report",
                                  "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def _unit_range(ax: Any, values: Iterable[float]) -> None:
    """Scores that are shares (0..1) get the whole 0..1 axis, so one run's plot reads like another's."""
    values = list(values)
    if values and min(values) >= 0 and max(values) <= 1:
        ax.set_ylim(-0.04, 1.04)


def _score_plot(run: _Run) -> str:
    best_at: dict[int, float] = {}
    best = None
    for event in run.events:
        value = None
        if isinstance(event, SeedScored) and event.split == "val":
            value = event.score
        elif isinstance(event, CandidateAccepted):
            value = event.val_score
        if value is not None:
            best = value if best is None else max(best, value)
            best_at[event.generation] = best
    last = run.generations()
    fin = run.finished
    rows = [c for h, c in run.candidates.items() if h != run.seed_hash]
    if best is None and not rows:
        return '<p class="note">Nothing scored yet.</p>'
    with _rc():
        fig, ax = _figure(10, 4.2)
        if best_at:
            xs, ys, current = [], [], None
            for g in range(0, last + 1):
                current = best_at.get(g, current)
                if current is not None:
                    xs.append(g)
                    ys.append(current)
            ax.step(xs, ys, where="post", color="#2e7d32", linewidth=2, label="best val so far", zorder=2)
        by_gen: dict[int, int] = defaultdict(int)
        mb_x, mb_y, val_x, val_y, val_c = [], [], [], [], []
        for row in sorted(rows, key=lambda r: r["seq"]):
            g = int(row["generation"])
            k = by_gen[g]
            by_gen[g] += 1
            x = g + ((k % 7) - 3) * 0.04  # spread a generation's candidates a little
            if row.get("mb_score") is not None:
                mb_x.append(x)
                mb_y.append(row["mb_score"])
            if row.get("val_score") is not None:
                val_x.append(x)
                val_y.append(row["val_score"])
                val_c.append(STAGE_COLOURS.get(run.status(row["hash"]), "#607d8b"))
        if mb_x:
            ax.scatter(mb_x, mb_y, marker="o", s=22, facecolors="none", edgecolors="#455a64", linewidths=1,
                       label="candidate, train minibatch", zorder=3)
        if val_x:
            ax.scatter(val_x, val_y, marker="s", s=30, c=val_c, label="candidate, val (green: accepted)", zorder=4)
        if fin is not None:
            ax.scatter([0], [fin.seed_test], marker="*", s=160, color="#1565c0", label="seed, test", zorder=5)
            ax.scatter([last], [fin.best_test], marker="D", s=60, color="#d81b60", label="best, test", zorder=5)
        _unit_range(ax, [*best_at.values(), *mb_y, *val_y,
                         *((fin.seed_test, fin.best_test) if fin is not None else ())])
        ax.set_xlabel("generation")
        ax.set_ylabel("score (mean over tasks)")
        ax.set_xticks(list(range(0, last + 1)))
        ax.set_xlim(-0.5, last + 0.5)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.set_title("Score per generation")
        return _svg_of(fig, "scores")


def _dominated(point: tuple[float, float], others: Iterable[tuple[float, float]]) -> bool:
    cost, score = point
    return any(c <= cost and s >= score and (c, s) != (cost, score) for c, s in others)


def _pareto_plot(run: _Run) -> str:
    points: list[tuple[str, float, float, float, str]] = []  # hash, usd, calls, val, status
    for h, row in run.candidates.items():
        per = run.per_task(h)
        if row.get("val_score") is None or per is None:
            continue
        points.append((h, per[0], per[1], float(row["val_score"]), run.status(h)))
    if not points:
        return '<p class="note">No candidate has a val score yet.</p>'
    use_usd = any(p[1] > 0 for p in points)
    label = "USD per val task" if use_usd else "LLM calls per val task (no dollar cost was recorded)"
    xy = [((p[1] if use_usd else p[2]), p[3]) for p in points]
    front = sorted({xy[i] for i in range(len(points)) if not _dominated(xy[i], xy)})
    best = run.best_hash()
    with _rc():
        fig, ax = _figure(10, 4.2)
        groups = {"seed": ("seed", "o", "#1565c0"), "pool": ("pool member", "o", "#2e7d32")}
        for status in sorted({p[4] for p in points}):
            name, marker, colour = groups.get(status, (f"rejected ({status})", "x", STAGE_COLOURS.get(status, "#777")))
            sel = [xy[i] for i, p in enumerate(points) if p[4] == status]
            ax.scatter([s[0] for s in sel], [s[1] for s in sel], marker=marker, s=40, color=colour, label=name,
                       zorder=3)
        ax.step([f[0] for f in front], [f[1] for f in front], where="post", color="#d81b60", linewidth=1.5,
                label="Pareto front", zorder=2)
        ax.scatter([f[0] for f in front], [f[1] for f in front], s=140, facecolors="none", edgecolors="#d81b60",
                   linewidths=1.5, zorder=4)
        labels: dict[tuple[float, float], list[str]] = defaultdict(list)  # points at one spot share a label
        for i, p in enumerate(points):
            if xy[i] in front or p[0] == best:
                labels[xy[i]].append(_short(p[0]) + (" (best)" if p[0] == best else ""))
        for spot, names in labels.items():
            ax.annotate(", ".join(names), spot, xytext=(6, 6), textcoords="offset points", fontsize=8)
        _unit_range(ax, [p[1] for p in xy])
        ax.set_xlabel(label)
        ax.set_ylabel("val score")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.set_title("Val score vs cost (front: nothing both cheaper and better)")
        return _svg_of(fig, "pareto")


def _plots(run: _Run) -> tuple[str, str]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        note = ('<p class="note">Plots need matplotlib, which is not installed: '
                "<code>pip install 'agentforge[viz]'</code>, then <code>agentforge report RUN</code>.</p>")
        return note, note
    return _score_plot(run), _pareto_plot(run)


# -- lineage ----------------------------------------------------------------------------------------

def _tree(run: _Run) -> tuple[dict[str, str | None], list[tuple[str, int]]]:
    """Each candidate's parent in the tree (None for a root) and the nodes in pre-order, each with its
    column: its generation, or one right of its parent if a corrupt store says otherwise."""
    rows = sorted(run.candidates.values(), key=lambda r: r["seq"])
    parent: dict[str, str | None] = {}
    for r in rows:
        p = r.get("parent")
        parent[r["hash"]] = p if p in run.candidates and p != r["hash"] else None
    for h in list(parent):  # cut any cycle a corrupt store might hold
        seen, p = {h}, parent[h]
        while p is not None:
            if p in seen:
                parent[h] = None
                break
            seen.add(p)
            p = parent[p]
    children: dict[str | None, list[str]] = defaultdict(list)
    for r in rows:
        children[parent[r["hash"]]].append(r["hash"])
    order: list[tuple[str, int]] = []

    def visit(h: str, min_col: int) -> None:
        col = max(int(run.candidates[h]["generation"]), min_col)
        order.append((h, col))
        for child in children[h]:
            visit(child, col + 1)

    for root in sorted(children[None], key=lambda h: (h != run.seed_hash, run.candidates[h]["seq"])):
        visit(root, 0)
    return parent, order


def _legend_name(status: str) -> str:
    return status if status in ("seed", "pool", "proposed") else f"rejected: {status}"


def _lineage(run: _Run) -> str:
    """The lineage tree as SVG: one row per candidate, its column its generation, an elbow to its parent."""
    if not run.candidates:
        return '<p class="note">No candidate recorded yet.</p>'
    parent, order = _tree(run)
    col_w, row_h, left, top = 120, 26, 24, 56
    pos = {h: (left + col * col_w, top + i * row_h) for i, (h, col) in enumerate(order)}
    best = run.best_hash()
    parts: list[str] = []
    for h, (x, y) in pos.items():
        p = parent[h]
        if p is not None:
            px, py = pos[p]
            parts.append(f'<path d="M{px},{py} V{y} H{x}" class="edge"/>')
    width = 0.0
    for h, (x, y) in pos.items():
        row = run.candidates[h]
        status = run.status(h)
        colour = STAGE_COLOURS.get(status, "#607d8b")
        ring = ' stroke="#d81b60" stroke-width="3"' if h == best else ' stroke="#fff" stroke-width="1"'
        label = f"{_short(h)}  val {_num(row.get('val_score'))}"
        tag = "best" if h == best else status
        summary = str(row.get("summary") or "")
        shown = summary if len(summary) <= 90 else summary[:89] + "…"
        # Rough text widths (monospace label, proportional tag and summary) to size the picture.
        width = max(width, x + 12 + 7.3 * len(label) + 10 + 7 * len(tag) + 10 + 6.2 * len(shown) + 16)
        tip = (f"{h}\ngeneration {row['generation']}, {row.get('optimizer')}, {status}\n{summary}\n"
               f"minibatch {_num(row.get('mb_score'))}, val {_num(row.get('val_score'))}, "
               f"test {_num(row.get('test_score'))}\n{row.get('reason') or ''}")
        parts.append(f'<g><title>{_e(tip)}</title><circle cx="{x}" cy="{y}" r="7" fill="{colour}"{ring}/>'
                     f'<text x="{x + 12}" y="{y + 4}" class="lbl">{_e(label)}'
                     f'<tspan dx="10" class="tag" fill="{colour}">{_e(tag)}</tspan>'
                     f'<tspan dx="10" class="sum">{_e(shown)}</tspan></text></g>')
    legend, lx = [], left
    for status, colour in STAGE_COLOURS.items():
        name = _legend_name(status)
        legend.append(f'<circle cx="{lx}" cy="14" r="6" fill="{colour}"/>'
                      f'<text x="{lx + 10}" y="18" class="lbl">{_e(name)}</text>')
        lx += 38 + 7 * len(name)
    axis = "".join(f'<text x="{left + c * col_w}" y="{top - 18}" class="gen">gen {c}</text>'
                   for c in range(max(c for _, c in order) + 1))
    width = round(max(width, lx + 20))
    height = top + len(order) * row_h
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(legend)}{axis}{"".join(parts)}</svg>')


# -- the diff of seed vs best ----------------------------------------------------------------------

def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def _word_diff(before: str, after: str) -> tuple[str, str]:
    """Both texts, escaped, with removed words in <del> and added ones in <ins>."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = _e("".join(a[i1:i2])), _e("".join(b[j1:j2]))
        if op == "equal":
            left.append(old)
            right.append(new)
            continue
        if old:
            left.append(f"<del>{old}</del>")
        if new:
            right.append(f"<ins>{new}</ins>")
    return "".join(left), "".join(right)


def _lineage_path(run: _Run, best: str) -> list[str]:
    path, seen = [best], {best}
    while True:
        p = (run.candidates.get(path[-1]) or {}).get("parent")
        if not p or p in seen or p not in run.candidates:
            return path[::-1]
        path.append(p)
        seen.add(p)


def _diff_section(run: _Run, seed: WorkflowSpec | None) -> str:
    best_hash = run.best_hash()
    best = _spec(run, best_hash)
    if seed is None or best is None or best_hash is None:
        return '<p class="note">No best candidate yet.</p>'
    if best.hash == seed.hash or best_hash == run.seed_hash:
        return '<p class="note">The best is the seed: nothing changed.</p>'
    edits = diff(seed, best)
    note = ""
    try:
        edits = list(seed.apply(edits).change.edits)  # type: ignore[union-attr]
    except SpecError as exc:
        note = f'<p class="note">The before values could not be recovered ({_e(str(exc)[:300])}).</p>'
    steps = []
    for h in _lineage_path(run, best_hash):
        row = run.candidates.get(h) or {}
        steps.append(f"<li><code>{_e(_short(h))}</code> gen {_e(row.get('generation', '?'))}, "
                     f"{_e(row.get('optimizer') or '')}: {_e(row.get('summary') or '')} "
                     f"(val {_num(row.get('val_score'))})</li>")
    groups: dict[str, list[Any]] = defaultdict(list)
    for edit in edits:
        groups[", ".join(edit.nodes()) or "(workflow)"].append(edit)
    blocks = []
    for node, node_edits in groups.items():
        items = []
        for edit in node_edits:
            before, after = _word_diff(_text(edit.before), _text(edit.after))
            items.append(f'<div class="edit"><div class="target">{_e(edit.op)} <code>{_e(edit.target())}</code></div>'
                         f'<div class="pair"><div><div class="side">seed</div><pre>{before or "<i>(unset)</i>"}</pre>'
                         f'</div><div><div class="side">best</div><pre>{after or "<i>(unset)</i>"}</pre></div></div>'
                         "</div>")
        blocks.append(f"<h3>node <code>{_e(node)}</code></h3>{''.join(items)}")
    return (f"<p>Seed <code>{_e(_short(seed.hash))}</code> → best <code>{_e(_short(best.hash))}</code>, "
            f"{len(edits)} edit(s). The path:</p><ol class=\"path\">{''.join(steps)}</ol>{note}{''.join(blocks)}")


# -- verdicts ---------------------------------------------------------------------------------------

def _verdicts(run: _Run) -> str:
    if not run.outcomes:
        return '<p class="note">No candidate has an outcome yet.</p>'
    counts: dict[str, int] = defaultdict(int)
    for o in run.outcomes:
        counts[o.stage] += 1
    summary = ", ".join(f"{_e(k)} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    rows = []
    for o in run.outcomes:
        colour = "#2e7d32" if o.stage == "accepted" else STAGE_COLOURS.get(o.stage, "#607d8b")
        verdict = (run.candidates.get(o.spec_hash) or {}).get("verdict") or {}
        gate = ""
        if o.stage != "gate" and verdict.get("reasons"):
            gate = "<br><span class=\"note\">gate: " + _e("; ".join(
                f"[{r.get('monitor')}] {r.get('message')}" for r in verdict["reasons"])) + "</span>"
        rows.append(f"<tr><td><code title=\"{_e(o.spec_hash)}\">{_e(_short(o.spec_hash)) or '–'}</code></td>"
                    f"<td>{o.generation}</td><td>{_e(o.optimizer)}</td>"
                    f'<td><span class="badge" style="background:{colour}">{_e(o.stage)}</span></td>'
                    f'<td class="reason">{_e(o.reason)}{gate}<div class="note">{_e(o.summary)}</div></td></tr>')
    return (f"<p>{len(run.outcomes)} outcomes: {summary}.</p><table class=\"grid verdicts\"><tr><th>candidate</th>"
            f"<th>gen</th><th>optimizer</th><th>stage</th><th>reason (and the change)</th></tr>{''.join(rows)}</table>")


# -- the page ---------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#212121;margin:0;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;background:#fff}
.kv th{text-align:left;padding:3px 14px 3px 0;vertical-align:top;color:#555;font-weight:600;white-space:nowrap}
.kv td{padding:3px 0}
.grid th,.grid td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
.grid th{background:#f0f0f0}
.verdicts td.reason{white-space:pre-wrap;max-width:760px;font-size:13px}
.badge{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px;white-space:nowrap}
.status{font-size:15px}.ok{color:#2e7d32;font-weight:700}.warn{color:#c62828;font-weight:700}
.note{color:#666;font-size:12.5px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eee;padding:0 3px;border-radius:3px}
.plot svg{max-width:100%;height:auto;background:#fff}
.scroll{overflow-x:auto;background:#fff;border:1px solid #ddd}
svg.lineage .edge{fill:none;stroke:#9e9e9e;stroke-width:1.3}
svg.lineage .lbl{font:12px ui-monospace,Menlo,monospace;fill:#212121}
svg.lineage .tag{font:11px system-ui,sans-serif;font-weight:700}
svg.lineage .sum{font:11px system-ui,sans-serif;fill:#666}
svg.lineage .gen{font:11px system-ui,sans-serif;fill:#888}
.edit{margin:6px 0 14px}.target{font-size:13px;margin-bottom:4px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.pair pre{white-space:pre-wrap;word-break:break-word;background:#fff;border:1px solid #ddd;padding:8px;margin:0;
 font:12.5px/1.4 ui-monospace,Menlo,monospace;max-height:420px;overflow:auto}
.side{font-size:12px;color:#666}
del{background:#ffcdd2;text-decoration:line-through}ins{background:#c8e6c9;text-decoration:none}
ol.path{margin:4px 0;font-size:13px}
"""


def _page(run: _Run) -> str:
    try:
        seed: WorkflowSpec | None = _spec(run, run.seed_hash)
    except SpecError:
        seed = None
    scores, pareto = _plots(run)
    title = f"agentforge evolve report: {run.meta.get('run_id', run.folder.name)}"
    sections = [
        ("summary", "Summary", _header(run, seed)),
        ("budget", "Budget spent", _budget(run)),
        ("scores", "Score per generation", f'<div class="plot">{scores}</div>'),
        ("pareto", "Pareto front: val score vs cost", f'<div class="plot">{pareto}</div>'),
        ("lineage", "Lineage", '<p class="note">Each candidate under its parent, in the column of the generation '
                               'that proposed it; hover a node for its change and scores.</p>'
                               f'<div class="scroll">{_lineage(run)}</div>'),
        ("diff", "Seed vs best, per node", _diff_section(run, seed)),
        ("verdicts", "Gate verdicts and rejections", _verdicts(run)),
    ]
    body = "".join(f'<section id="{sid}"><h2>{name}</h2>{content}</section>' for sid, name, content in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body><main><h1>{_e(title)}</h1>{body}"
            f'<p class="note">Written {_e(time.strftime("%Y-%m-%d %H:%M:%S"))} from {_e(run.folder)}.</p>'
            "</main></body></html>")


def write_report(folder: Path) -> Path:
    """Write ``<folder>/report.html`` for the evolve run in ``folder`` (finished or not) and return its path.

    A folder that is not an evolve run raises ``RunFolderError`` and nothing is written.
    """
    folder = Path(folder)
    run = _read(folder)
    path = folder / REPORT_FILE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(_page(run), encoding="utf-8")
    tmp.replace(path)
    log.info("evolve.report_written", path=str(path), candidates=len(run.candidates), events=len(run.events),
             finished=run.finished is not None)
    return path
