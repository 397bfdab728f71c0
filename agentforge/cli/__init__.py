"""The ``agentforge`` command line: a thin layer over the public API.

Exit codes: 0 ok, 1 the run failed, 2 bad input (invalid workflow, bad inputs, usage, unknown model).
Heavy libraries load only inside the commands that need them.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agentforge.errors import (
    AgentforgeError,
    ConfigError,
    EnvError,
    InputError,
    MemoryStoreError,
    ModelNotFound,
    RunFolderError,
    RunNotFound,
    SpecError,
    WeightsError,
)

app = typer.Typer(
    name="agentforge",
    help="Typed multi-agent workflows from YAML, run on LangGraph against any LLM (a local model by default).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

OK, RUN_FAILED, BAD_INPUT = 0, 1, 2
_BAD_INPUT_ERRORS = (SpecError, InputError, ModelNotFound, ConfigError, RunNotFound, WeightsError, RunFolderError,
                     MemoryStoreError)


_LOG_LEVELS = ("debug", "info", "warning", "error")


def _check_log_level(value: str) -> str:
    if value.lower() not in _LOG_LEVELS:
        raise typer.BadParameter(f"'{value}' is not a log level; use one of {', '.join(_LOG_LEVELS)}")
    return value.lower()


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("agentforge")
        except PackageNotFoundError:
            number = "unknown (not installed)"
        out.print(f"agentforge {number}", highlight=False)
        raise typer.Exit(OK)


@app.callback()
def _main(
    log_json: Annotated[bool, typer.Option("--log-json", help="Write logs as JSON lines to stderr.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", callback=_check_log_level,
                                           help="debug, info, warning or error.")] = "warning",
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    _LOGGING.update(json=log_json, level=log_level)


_LOGGING: dict[str, Any] = {"json": False, "level": "warning"}


def _start_logging() -> None:
    """Configure structlog for commands that run things (validate never logs, so it skips the import)."""
    from agentforge.logs import configure_logging

    configure_logging(json=_LOGGING["json"], level=_LOGGING["level"])


def _fail(message: str, code: int) -> typer.Exit:
    err.print("[bold red]error:[/] ", end="", highlight=False)
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _exit_code(exc: AgentforgeError) -> int:
    return BAD_INPUT if isinstance(exc, _BAD_INPUT_ERRORS) else RUN_FAILED


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Workflow YAML files, or folders of them.", show_default=False)],
) -> None:
    """Check workflows statically (types, prompt variables, tools, models, reachability, loop bounds).
    A folder checks every *.yaml / *.yml in it (other kinds of YAML are skipped with a note).
    Makes no LLM calls. Exit 0 if all are valid, 2 otherwise."""
    from agentforge.tools import default_registry
    from agentforge.workflow.loader import other_kind, read_source, spec_from_data
    from agentforge.workflow.validate import find_problems

    tool_names = default_registry().names()
    bad = 0
    listed: list[tuple[Path, bool]] = []  # (file, found in a folder)
    checked = 0
    for file in files:
        if file.is_dir():
            found = sorted(p for p in file.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise _fail(f"{file}: no workflow files (*.yaml, *.yml) in this folder", BAD_INPUT)
            listed += [(p, True) for p in found]
        else:
            listed.append((file, False))
    for file, in_folder in listed:
        try:
            source = read_source(file)
            skipped = other_kind(source.data) if in_folder else None
            if skipped:
                err.print(f"- {file}: skipped, not a workflow ({skipped})", markup=False, highlight=False,
                          soft_wrap=True)
                continue
            checked += 1
            spec = spec_from_data(source.data, source)
            problems = find_problems(spec, tool_names=tool_names)
        except SpecError as exc:
            problems = exc.problems
        except ConfigError as exc:
            raise _fail(str(exc), BAD_INPUT) from None
        if problems:
            bad += 1
            err.print("[red]✗[/] ", end="", highlight=False)
            err.print(f"{file}: {len(problems)} problem(s)", markup=False, highlight=False)
            for problem in problems:
                err.print(f"  {problem.render()}", markup=False, highlight=False, soft_wrap=True)
        else:
            out.print("[green]✓[/] ", end="", highlight=False)
            out.print(f"{file}: workflow '{spec.name}' ({len(spec.nodes)} nodes, {spec.hash})", markup=False,
                      highlight=False, soft_wrap=True)
    if bad:
        raise typer.Exit(BAD_INPUT)
    if not checked:
        raise _fail("no workflow among the files given (every one was skipped)", BAD_INPUT)


def _parse_inputs(pairs: list[str], json_file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if json_file is not None:
        try:
            data = json.loads(json_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _fail(f"--input-json: file not found: {json_file}", BAD_INPUT) from None
        except json.JSONDecodeError as exc:
            raise _fail(f"--input-json {json_file}: not valid JSON (line {exc.lineno}): {exc.msg}", BAD_INPUT) from None
        if not isinstance(data, dict):
            raise _fail(f"--input-json {json_file}: must hold a JSON object of input values", BAD_INPUT)
        values.update(data)
    for pair in pairs:
        if "=" not in pair:
            raise _fail(f"--input '{pair}' must look like key=value", BAD_INPUT)
        key, value = pair.split("=", 1)
        values[key.strip()] = value
    return values


def _reused(trace: Any) -> str:
    """The prompt tokens a prefix cache spared the model, when there are any."""
    return f" ({trace.reused_prompt_tokens} prompt reused)" if trace.reused_prompt_tokens else ""


def _print_trace(result: Any) -> None:
    trace = result.trace
    table = Table(title=f"run {result.run_id}", title_justify="left", show_edge=False)
    for col in ("node", "kind", "latency", "calls", "cached", "tokens in/out", "cost", "status"):
        table.add_column(col, justify="right" if col in ("latency", "calls", "cached", "cost") else "left")
    for node in trace.nodes:
        table.add_row(node.node, node.kind, f"{node.latency_s:.2f}s", str(node.calls), str(node.cached_calls),
                      f"{node.prompt_tokens}/{node.completion_tokens}", f"${node.cost:.4f}",
                      "[red]error[/]" if node.error else "ok")
    err.print(table)
    cached = (f" (+{trace.cached_prompt_tokens}+{trace.cached_completion_tokens} cached)"
              if trace.cached_calls else "")
    err.print(f"total {trace.latency_s:.2f}s, {trace.llm_calls} LLM calls ({trace.cached_calls} cached), "
              f"{trace.prompt_tokens}+{trace.completion_tokens} tokens{_reused(trace)}{cached}, "
              f"${trace.cost:.4f}; "
              f"trace: {result.trace_path}", highlight=False)


@app.command()
def run(
    file: Annotated[Path | None, typer.Argument(help="Workflow YAML file (omit with --resume).")] = None,
    inputs: Annotated[list[str], typer.Option("--input", "-i", help="An input as key=value; repeatable.")] = [],  # noqa: B006
    input_json: Annotated[Path | None, typer.Option("--input-json", help="A JSON file of inputs.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Run every LLM node on this model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print outputs, cost, tokens, latency as JSON.")] = False,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue a failed or interrupted run.")] = None,
) -> None:
    """Run a workflow and print its outputs. Exit 0 ok, 1 the run failed, 2 bad input, 130 interrupted
    (Ctrl-C), 143 terminated (SIGTERM); an interrupted run says how to resume it."""
    if file is None and resume is None:
        raise _fail("give a workflow FILE to run, or --resume RUN_ID", BAD_INPUT)
    run_id = resume
    with _Interruptible() as stop:
        try:
            from agentforge.runtime.workflow import Workflow, new_run_id

            run_id = run_id or new_run_id()
            _start_logging()
            result = _run(Workflow, file, inputs, input_json, model, as_json, resume, run_id)
        except KeyboardInterrupt:
            raise stop.exit(run_id, as_json) from None
    if as_json:
        trace = result.trace
        out.print_json(data={
            "status": "succeeded", "run_id": result.run_id, "outputs": result.outputs, "cost": trace.cost,
            "tokens": {"prompt": trace.prompt_tokens, "completion": trace.completion_tokens,
                       "reused_prompt": trace.reused_prompt_tokens,
                       "cached_prompt": trace.cached_prompt_tokens,
                       "cached_completion": trace.cached_completion_tokens},
            "cached_cost": trace.cached_cost,
            "llm_calls": trace.llm_calls, "cached_calls": trace.cached_calls,
            "latency_s": round(trace.latency_s, 4), "trace_path": str(result.trace_path),
        })
        return
    for name, value in result.outputs.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(result.outputs) > 1:
            out.print(f"[bold]{name}[/]: ", end="", highlight=False)
        out.print(shown, markup=False, highlight=False, soft_wrap=True)
    _print_trace(result)


class _Interruptible:
    """SIGTERM stops ``run`` the way Ctrl-C does: the running step is cancelled, the finished nodes are
    saved, and one line says how to resume. Exit 128 + the signal: 130 for SIGINT, 143 for SIGTERM."""

    reported = False  # the one line is printed; ``main`` must not add another

    def __init__(self) -> None:
        self.signum = signal.SIGINT
        self.saved: tuple[Any, Any] | None = None

    def __enter__(self) -> _Interruptible:
        # A cancel can land while LangGraph has queued (not started) a checkpoint write; its pending writes
        # are saved, so nothing is lost, but the dropped coroutine warns on stderr. Kept on: it may warn late.
        warnings.filterwarnings("ignore", category=RuntimeWarning,
                                message=r"coroutine 'AsyncPregelLoop\._checkpointer_put_after_previous' was never")
        if threading.current_thread() is threading.main_thread():
            self.saved = (signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, self._on_term))
        return self

    def _on_term(self, signum: int, frame: Any) -> None:
        self.signum = signal.SIGTERM
        handler = signal.getsignal(signal.SIGINT)  # asyncio's while a run's loop is up: it cancels the run
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    def exit(self, run_id: str | None, as_json: bool) -> typer.Exit:
        if threading.current_thread() is threading.main_thread():  # a second Ctrl-C must not cut this short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        status = _mark_interrupted(run_id) if run_id else None
        if status is None:
            line = "interrupted before the run started; nothing to resume"
        else:
            line = f"interrupted; resume with: agentforge run --resume {run_id}"
        if as_json:
            out.print_json(data={"status": "interrupted", "run_id": run_id if status else None})
        err.print(line, markup=False, highlight=False, soft_wrap=True)
        _Interruptible.reported = True
        return typer.Exit(128 + int(self.signum))

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved[0])
            signal.signal(signal.SIGTERM, self.saved[1])


def _mark_interrupted(run_id: str) -> str | None:
    """The saved run's status, now ``interrupted`` if it was stopped while running; None if never saved."""
    from agentforge.config import get_settings
    from agentforge.runtime.store import RunStore

    try:
        return RunStore(get_settings().runs_dir).mark_interrupted(run_id)
    except (AgentforgeError, OSError, ValueError):  # an unreadable run.json: nothing to resume from
        return None


def _check_models(names: Iterable[str]) -> None:
    """An unknown model or provider is bad input, found before anything runs (raises ``ModelNotFound``)."""
    from agentforge.config import get_settings
    from agentforge.llm.gateway import check_model

    aliases = get_settings().aliases()
    for name in sorted(set(names)):
        check_model(name, aliases)


def _run(workflow: Any, file: Path | None, inputs: list[str], input_json: Path | None, model: str | None,
         as_json: bool, resume: str | None, run_id: str) -> Any:
    try:
        if model is not None:
            _check_models([model])
        if resume is not None:
            with _progress(as_json, f"resuming run {resume}"):
                return workflow.resume(resume)
        assert file is not None
        values = _parse_inputs(inputs, input_json)
        wf = workflow.from_yaml(file)
        if model is None:  # the workflow's own models, checked before the run is saved
            _check_models(wf.spec.models_used())
        with _progress(as_json, f"running {wf.spec.name}"):
            return wf.run(values, model=model, run_id=run_id)
    except AgentforgeError as exc:
        code = _exit_code(exc)
        failed_id = exc.fields.get("run_id")
        if as_json:
            out.print_json(data={"status": "failed", "error": str(exc), "code": exc.code, "run_id": failed_id})
        hint = f"\n  resume with: agentforge run --resume {failed_id}" if failed_id and code == RUN_FAILED else ""
        raise _fail(f"{exc}{hint}", code) from None


class _progress:
    """A spinner on stderr while a run works, only on a terminal and not with --json."""

    def __init__(self, quiet: bool, message: str) -> None:
        self.status = None if quiet or not sys.stderr.isatty() else err.status(message)

    def __enter__(self) -> None:
        if self.status is not None:
            self.status.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the workflow format (for editor completion)."""
    from agentforge.workflow.schema import workflow_json_schema

    sys.stdout.write(json.dumps(workflow_json_schema(), indent=2) + "\n")


@app.command()
def graph(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="mermaid, png or svg.")] = "mermaid",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write a png/svg.")] = None,
) -> None:
    """Draw a workflow: Mermaid text on stdout, or a PNG/SVG picture."""
    from agentforge.workflow.loader import load_spec
    from agentforge.workflow.render import draw, to_mermaid

    if fmt not in ("mermaid", "png", "svg"):
        raise _fail(f"--format must be mermaid, png or svg, not '{fmt}'", BAD_INPUT)
    try:
        spec = load_spec(file)
    except SpecError as exc:
        raise _fail(str(exc), BAD_INPUT) from None
    if fmt == "mermaid":
        sys.stdout.write(to_mermaid(spec))
        return
    target = output or Path(f"{spec.name}.{fmt}")
    try:
        draw(spec, target, fmt)
    except ImportError:
        raise _fail(f"--format {fmt} draws with matplotlib, which is not installed. Install the viz extra: "
                    "pip install 'agentforge[viz]' (in a checkout: make setup, or .venv/bin/pip install -e '.[viz]'); "
                    "or use --format mermaid, which needs nothing", BAD_INPUT) from None
    out.print(f"wrote {target}", highlight=False)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The workflow YAML before.")],
    new: Annotated[Path, typer.Argument(help="The workflow YAML after.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the typed edits and the RFC 6902 patch.")] = False,
) -> None:
    """Show what changed between two workflows, grouped by node and field. Exit 0 whether they are equal
    or differ, 2 if a file cannot be read or is not a valid workflow."""
    from agentforge.workflow.edits import annotate, json_patch
    from agentforge.workflow.edits import diff as spec_diff
    from agentforge.workflow.loader import load_spec

    try:
        a, b = load_spec(old), load_spec(new)
    except SpecError as exc:
        raise _fail(str(exc), BAD_INPUT) from None
    edits = annotate(a, spec_diff(a, b))
    if as_json:
        payload = {"from": a.hash, "to": b.hash, "edits": [e.model_dump(mode="json", by_alias=True) for e in edits],
                   "patch": json_patch(a, b)}
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    out.print(f"[bold]{old}[/] ({a.hash}) → [bold]{new}[/] ({b.hash})", highlight=False)
    if not edits:
        out.print("no differences", highlight=False)
        return
    for group, rows in _diff_rows(edits).items():
        out.print(f"[bold cyan]{group}[/]", highlight=False)
        for sign, name, before, after in rows:
            colour = {"+": "green", "-": "red", "~": "yellow"}[sign]
            text = {"+": _show(after), "-": _show(before), "~": f"{_show(before)} → {_show(after)}"}[sign]
            out.print(f"  [{colour}]{sign} {name}[/]: ", end="", highlight=False)
            out.print(text, markup=False, highlight=False, soft_wrap=True)


def _show(value: Any, limit: int = 300) -> str:
    def set_only(v: Any) -> Any:  # unset fields are noise in a diff
        if isinstance(v, dict):
            return {k: set_only(x) for k, x in v.items() if x is not None}
        return [set_only(x) for x in v] if isinstance(v, list) else v

    text = "unset" if value is None else json.dumps(set_only(value), ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def _diff_rows(edits: list[Any]) -> dict[str, list[tuple[str, str, Any, Any]]]:
    """(sign, field, before, after) rows grouped under 'workflow', 'node <id> (<kind>)' or 'edges'."""
    groups: dict[str, list[tuple[str, str, Any, Any]]] = {}

    def row(group: str, sign: str, name: str, before: Any, after: Any) -> None:
        groups.setdefault(group, []).append((sign, name, before, after))

    for e in edits:
        if e.op == "set_field":
            row("workflow", "~", e.field, e.before, e.after)
        elif e.op in ("set_component", "set_sampling", "set_tools"):
            node, _, name = e.target().partition(".")
            row(f"node {node}", "~", name, e.before, e.after)
        elif e.op == "add_node":
            row(f"node {e.target()} ({e.node.get('kind')})", "+", "added", None, e.node)
        elif e.op == "remove_node":
            row(f"node {e.target()} ({e.before.get('kind')})", "-", "removed", e.before, None)
        elif e.op == "replace_node":
            before, after = e.before or {}, e.after or {}
            for key in dict.fromkeys([*before, *after]):
                if before.get(key) != after.get(key):
                    row(f"node {e.target()}", "~", key, before.get(key), after.get(key))
        elif e.op == "add_edge":
            row("edges", "+", e.target(), None, e.after)
        elif e.op == "remove_edge":
            row("edges", "-", e.target(), e.before, None)
        elif e.op == "rewire_edge":
            row("edges", "~", e.target(), e.before, e.after)
    return groups


@app.command()
def models() -> None:
    """List model aliases and whether the local model is installed."""
    import importlib.util

    _start_logging()
    from agentforge.config import get_settings

    try:
        settings = get_settings()
    except ConfigError as exc:
        raise _fail(str(exc), BAD_INPUT) from None
    table = Table(show_edge=False)
    table.add_column("alias")
    table.add_column("model")
    table.add_column("api base")
    for name, alias in sorted(settings.aliases().items()):
        table.add_row(name, alias.model, alias.api_base or "")
    out.print(table)
    from agentforge.llm.weights import weights_status

    status = weights_status(settings.local, settings.models_dir)
    llama = importlib.util.find_spec("llama_cpp") is not None
    out.print(f"local model runtime (llama-cpp-python): {'installed' if llama else 'missing'}", highlight=False)
    for key, value in status.items():
        out.print(f"  {key}: {value}", highlight=False)
    if not llama or not status.get("packages_installed", True):
        out.print("install it with: pip install 'agentforge[local]'  (or: make demo)", highlight=False)


@app.command("eval")
def eval_command(
    workflow: Annotated[Path, typer.Argument(help="Workflow YAML file (the policy or the solver).")],
    env: Annotated[str, typer.Option("--env", "-e", help="Environment: a name in envs/, a YAML path, or built-in.")],
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "val",
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Evaluate only the first N tasks.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Episodes at once.")] = 8,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Run every LLM node on this model.")] = None,
    executor: Annotated[str, typer.Option(
        "--executor", help="asyncio (this process), processes (worker processes on this machine) or ray.")] = "asyncio",
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Worker processes for --executor processes or ray (default: one per CPU).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Join this Ray cluster.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed recorded in the report.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full EvalReport as JSON.")] = False,
    profile: Annotated[str | None, typer.Option(
        "--profile", help="With --env http://host:port: the server's dialect (textcraft, babyai, ...; "
                          "default: agentforge's own server).")] = None,
) -> None:
    """Evaluate a workflow on an environment's split: a progress bar with running score and cost, then a
    summary. Exit 0 ok, 1 if every task failed, 2 bad input."""
    from agentforge._sync import run_sync
    from agentforge.envs.registry import load_env
    from agentforge.evaluation.evaluator import TraceSink, aevaluate
    from agentforge.evaluation.executors import AsyncioExecutor, Executor, ProcessExecutor, RayExecutor
    from agentforge.runtime.workflow import Workflow

    _start_logging()
    if executor not in ("asyncio", "processes", "ray"):
        raise _fail(f"--executor must be asyncio, processes or ray, not '{executor}'", BAD_INPUT)
    if split not in ("train", "val", "test"):
        raise _fail(f"--split must be train, val or test, not '{split}'", BAD_INPUT)
    try:
        if model is not None:
            from agentforge.config import get_settings
            from agentforge.llm.gateway import check_model

            check_model(model, get_settings().aliases())
        wf = Workflow.from_yaml(workflow)
        if model is None:  # the workflow's own models: an unknown provider is bad input, not a task failure
            from agentforge.config import get_settings
            from agentforge.llm.gateway import check_model

            for name in sorted(wf.spec.models_used()):
                check_model(name, get_settings().aliases())
        try:
            environment = _remote_env_from_url(env, profile, executor) if _is_url(env) else load_env(env)
        except EnvError as exc:  # the environment cannot be built: bad input, not a failed run
            raise _fail(str(exc), BAD_INPUT) from None
        if profile is not None and not _is_url(env):
            raise _fail("--profile applies to --env http://host:port only; an environment file sets `profile:` "
                        "under `source:` (see docs/remote-envs.md)", BAD_INPUT)
        runner: Executor
        if executor == "ray":
            runner = RayExecutor(address=ray_address, num_workers=workers)
        elif executor == "processes":
            runner = ProcessExecutor(workers=workers)
        else:
            runner = AsyncioExecutor()
        try:
            if isinstance(runner, ProcessExecutor):
                runner.start()  # before the clock starts: the report times the evaluation, not the start-up
            with _EvalProgress(enabled=not as_json) as progress:
                report = run_sync(aevaluate(wf, environment, split=split, limit=limit, concurrency=concurrency,
                                            model=model, executor=runner, seed=seed, on_result=progress.update,
                                            on_start=progress.start, env_ref=None if _is_url(env) else env,
                                            sink=TraceSink(wf.settings.runs_dir)))
        finally:
            if isinstance(runner, ProcessExecutor):
                runner.close()
    except AgentforgeError as exc:
        raise _fail(str(exc), _exit_code(exc)) from None
    if as_json:
        out.print_json(data=report.to_json())
    else:
        _print_report(report)
    if report.results and report.errors == len(report.results):
        raise typer.Exit(RUN_FAILED)


_REMOTE_ENV_FILE = """a remote environment file looks like this (see docs/remote-envs.md):
  version: 1
  kind: env
  name: my_server
  source: {{type: remote, url: "{url}", profile: {profile}}}"""


def _is_url(env: str) -> bool:
    """``scheme:/...``: meant as a server URL (``http:/host`` with a slash lost included), not a file path."""
    scheme, sep, _ = env.partition(":/")
    return bool(sep) and scheme.isalpha() and len(scheme) > 1


def _remote_env_from_url(url: str, profile: str | None, executor: str) -> Any:
    """``--env http://host:port``: a RemoteEnv on that server (agentforge's protocol unless ``--profile``)."""
    from agentforge.envs.remote.client import RemoteEnv
    from agentforge.envs.remote.profiles import PROFILES

    example = _REMOTE_ENV_FILE.format(url=url, profile=profile or "textcraft")
    if not url.startswith(("http://", "https://")):
        raise EnvError(f"--env '{url}': a server URL is http://host:port or https://host:port; {example}")
    if executor != "asyncio":
        raise EnvError(f"--env with a URL runs with --executor asyncio only (worker processes load the "
                       f"environment from a file); {example}")
    if profile is not None and profile not in PROFILES:
        raise EnvError(f"--profile '{profile}' is not a known server profile; known: {', '.join(PROFILES)}")
    return RemoteEnv(url, profile or "agentforge")


class _EvalProgress:
    """A rich progress bar whose description shows the running mean score and cost."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Any = None
        self.task_id: Any = None
        self.done = 0
        self.score = 0.0
        self.cost = 0.0
        self.errors = 0

    def __enter__(self) -> _EvalProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=err, transient=False)
            self.progress.__enter__()
        return self

    def start(self, total: int) -> None:
        if self.progress is not None:
            self.task_id = self.progress.add_task("evaluating", total=total)

    def update(self, result: Any) -> None:
        self.done += 1
        self.score += result.score
        self.cost += result.cost
        self.errors += 1 if result.error else 0
        if self.progress is not None and self.task_id is not None:
            text = f"score {self.score / self.done:.3f}  cost ${self.cost:.4f}  errors {self.errors}"
            self.progress.update(self.task_id, advance=1, description=text)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)


def _print_report(report: Any) -> None:
    """The summary goes to stdout (so `> report.txt` keeps it); progress went to stderr."""
    summary = report.summary()
    table = Table(title=f"{report.workflow} on {report.env} ({report.split})", title_justify="left", show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    low, high = summary["ci95"]
    codes = ", ".join(f"{code}: {count}" for code, count in sorted(summary["error_codes"].items()))
    rows = [
        ("tasks", str(summary["tasks"])),
        ("mean score", f"{summary['mean_score']:.3f} [{low:.3f}, {high:.3f}] (n={summary['n']}, 95% CI)"),
        ("errors", str(summary["errors"]) + (f" ({codes})" if codes else "")),
        ("LLM calls", f"{summary['llm_calls']} ({summary['cached_calls']} cached)"),
        ("tokens in/out", f"{summary['prompt_tokens']}/{summary['completion_tokens']} fresh, "
                          f"{summary['cached_prompt_tokens']}/{summary['cached_completion_tokens']} cached"),
        ("prompt tokens", f"{summary['processed_prompt_tokens']:,} processed, "
                          f"{summary['reused_prompt_tokens']:,} reused (from a prefix cache)"),
        ("cost", f"${summary['cost']:.4f} (p50 ${summary['cost_p50']:.4f}/task, p90 ${summary['cost_p90']:.4f})"
                 + (f", cached calls first cost ${summary['cached_cost']:.4f}" if summary["cached_cost"] else "")),
        ("latency p50/p90/p99", f"{summary['latency_p50_s']:.2f}s / {summary['latency_p90_s']:.2f}s / "
                                f"{summary['latency_p99_s']:.2f}s"),
        ("wall", f"{summary['wall_s']:.1f}s ({summary['tasks_per_s']} tasks/s)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    failed = [r for r in report.results if r.error][:5]
    for result in failed:
        out.print(f"  task {result.task_id}: {result.error}", markup=False, highlight=False, soft_wrap=True)
    if report.traces_path:
        out.print(f"report: {Path(report.traces_path).parent / 'report.json'}", markup=False, highlight=False)


env_app = typer.Typer(help="Environments: list them, serve one over HTTP.", no_args_is_help=True)
app.add_typer(env_app, name="env")


@env_app.command("list")
def env_list() -> None:
    """List the environment definitions found in envs/ and the built-in environment classes."""
    from agentforge.envs.builtin import BUILTIN_ENVS
    from agentforge.envs.registry import env_files

    table = Table(show_edge=False)
    table.add_column("name")
    table.add_column("file")
    for name, path in sorted(env_files().items()):
        table.add_row(name, str(path))
    out.print(table)
    out.print(f"built-in classes: {', '.join(BUILTIN_ENVS)}", highlight=False)


@env_app.command("serve")
def env_serve(
    env: Annotated[str, typer.Argument(help="Environment: a name in envs/, a YAML path, or built-in.")],
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (loopback by default).")] = "127.0.0.1",
    session_ttl: Annotated[float, typer.Option(
        "--session-ttl", min=1, help="Idle seconds before a session expires.")] = 600,
) -> None:
    """Serve a local environment over the AgentGym HTTP protocol (textcraft dialect, strict errors)."""
    from agentforge.envs.registry import load_env
    from agentforge.envs.remote.server import serve

    _start_logging()
    try:
        environment = load_env(env)
    except AgentforgeError as exc:
        raise _fail(str(exc), BAD_INPUT) from None
    err.print(f"serving {environment.name} on http://{host}:{port} ({len(environment.tasks())} tasks)",
              markup=False, highlight=False)
    serve(environment, host=host, port=port, session_ttl=session_ttl)


runs_app = typer.Typer(help="Saved runs, newest first: id, workflow, status, started, latency. "
                             "`agentforge runs show ID` shows one, node by node.")
app.add_typer(runs_app, name="runs")


def _run_store() -> Any:
    from agentforge.config import get_settings
    from agentforge.runtime.store import RunStore

    try:
        return RunStore(get_settings().runs_dir)
    except ConfigError as exc:
        raise _fail(str(exc), BAD_INPUT) from None


def _when(epoch: float, sep: str = " ") -> str:
    """Local time; with ``sep="T"`` (for JSON) ISO 8601 with the UTC offset."""
    from datetime import datetime

    moment = datetime.fromtimestamp(epoch)
    return (moment.astimezone() if sep == "T" else moment).isoformat(sep=sep, timespec="seconds")


_STATUS_STYLE = {"succeeded": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}


@runs_app.callback(invoke_without_command=True)
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show only the newest N runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List saved runs, newest first: id, workflow, status, started, latency. `runs show ID` shows one."""
    if ctx.invoked_subcommand is not None:
        return
    from agentforge.runtime.store import list_runs

    store = _run_store()
    runs = list_runs(store, limit)
    if as_json:
        sys.stdout.write(json.dumps([{**r.model_dump(mode="json"), "started": _when(r.started_at, "T")}
                                     for r in runs], indent=2) + "\n")
        return
    if not runs:
        out.print(f"no runs under {store.root}", markup=False, highlight=False)
        return
    table = Table(show_edge=False)
    for col in ("run id", "workflow", "status", "started", "latency"):
        table.add_column(col, justify="right" if col == "latency" else "left", no_wrap=col != "workflow")
    for r in runs:
        style = _STATUS_STYLE.get(r.status, "magenta")
        table.add_row(r.run_id, r.workflow, f"[{style}]{r.status}[/]", _when(r.started_at),
                      f"{r.latency_s:.2f}s" if r.latency_s is not None else "-")
    out.print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id, as `agentforge runs` lists them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the record, totals and nodes as JSON.")] = False,
) -> None:
    """Show one run: its record (workflow, status, inputs, outputs, error) and a table of its nodes."""
    from agentforge.runtime.store import is_run_id, run_started_at

    store = _run_store()
    try:
        if not is_run_id(run_id):
            raise RunNotFound(f"no run '{run_id}': a run id is a folder name under {store.root}", run_id=run_id)
        record = store.load_record(run_id)
    except RunNotFound as exc:
        raise _fail(str(exc), BAD_INPUT) from None
    except (OSError, ValueError) as exc:  # a record cut short by a killed run
        raise _fail(f"run '{run_id}' cannot be read ({store.run_dir(run_id)}): {exc}", BAD_INPUT) from None
    trace_problem = None
    try:
        trace = store.load_trace(run_id)
    except (OSError, ValueError) as exc:  # the record is still worth showing
        trace, trace_problem = None, f"trace.json cannot be read: {str(exc).splitlines()[0]}"
    started = run_started_at(store, run_id)
    if as_json:
        payload: dict[str, Any] = {
            "run": {**record.model_dump(mode="json", exclude={"spec"}), "started": _when(started, "T")},
            "trace_path": str(store.trace_path(run_id)) if trace is not None else None,
            "trace_error": trace_problem,
            "summary": trace.summary() if trace is not None else None,
            "outputs": trace.outputs if trace is not None else {},
            "nodes": [{"node": n.node, "kind": n.kind, "latency_s": round(n.latency_s, 4), "calls": n.calls,
                       "cached_calls": n.cached_calls, "prompt_tokens": n.prompt_tokens,
                       "reused_prompt_tokens": n.reused_prompt_tokens,
                       "completion_tokens": n.completion_tokens, "cost": n.cost, "error": n.error}
                      for n in (trace.nodes if trace is not None else [])],
        }
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    style = _STATUS_STYLE.get(record.status, "magenta")
    rows = [("run", record.run_id), ("workflow", f"{record.workflow} ({record.workflow_hash})"),
            ("file", record.workflow_file or "-"), ("status", f"[{style}]{record.status}[/]"),
            ("model", record.model or "(the workflow's own)"), ("started", _when(started)),
            ("inputs", _show(record.inputs))]
    if trace is not None:
        cached = (f" (+{trace.cached_prompt_tokens}+{trace.cached_completion_tokens} cached)"
                  if trace.cached_calls else "")
        rows += [("outputs", _show(trace.outputs) if trace.outputs else "-"),
                 ("latency", f"{trace.latency_s:.2f}s" + (" (resumed)" if trace.resumed else "")),
                 ("LLM calls", f"{trace.llm_calls} ({trace.cached_calls} cached)"),
                 ("tokens", f"{trace.prompt_tokens}+{trace.completion_tokens}{_reused(trace)}{cached}"),
                 ("cost", f"${trace.cost:.4f}"), ("trace", str(store.trace_path(run_id)))]
    if record.error:
        rows.append(("error", record.error))
    for name, value in rows:
        out.print(f"[bold]{name:>9}[/]  ", end="", highlight=False)
        out.print(value, markup=name == "status", highlight=False, soft_wrap=True)
    if record.status != "succeeded":
        out.print(f"{'':>9}  resume with: agentforge run --resume {record.run_id}", highlight=False)
    if trace is None:
        out.print(trace_problem or f"no trace.json yet in {store.run_dir(run_id)}", markup=False, highlight=False)
        return
    table = Table(title="nodes", title_justify="left", show_edge=False)
    for col in ("node", "kind", "latency", "calls", "cached", "tokens in/out", "cost", "status"):
        table.add_column(col, justify="right" if col in ("latency", "calls", "cached", "cost") else "left")
    for n in trace.nodes:
        table.add_row(n.node, n.kind, f"{n.latency_s:.2f}s", str(n.calls), str(n.cached_calls),
                      f"{n.prompt_tokens}/{n.completion_tokens}", f"${n.cost:.4f}",
                      "[red]error[/]" if n.error else "ok")
    out.print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C while typer builds the command, before any command runs
        err.print("interrupted", highlight=False)
        raise SystemExit(130) from None
    except SystemExit as exc:  # Ctrl-C before a command could report it (typer exits 130 silently)
        if exc.code == 130 and not _Interruptible.reported:
            err.print("interrupted", highlight=False)
        raise


# Command groups in their own modules, registered on ``app`` when they are imported.
from agentforge.cli import evolve as _evolve  # noqa: E402,F401
from agentforge.cli.memory import memory_app  # noqa: E402

app.add_typer(memory_app, name="memory")
