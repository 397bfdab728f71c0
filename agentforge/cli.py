"""The ``agentforge`` command line: a thin layer over the public API.

Exit codes: 0 ok, 1 the run failed, 2 bad input (invalid workflow, bad inputs, usage, unknown model).
Heavy libraries load only inside the commands that need them.
"""

from __future__ import annotations

import json
import sys
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
    ModelNotFound,
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
_BAD_INPUT_ERRORS = (SpecError, InputError, ModelNotFound, ConfigError, RunNotFound, WeightsError)


@app.callback()
def _main(
    log_json: Annotated[bool, typer.Option("--log-json", help="Write logs as JSON lines to stderr.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "warning",
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
    files: Annotated[list[Path], typer.Argument(help="Workflow YAML files.", show_default=False)],
) -> None:
    """Check workflows statically (types, prompt variables, tools, models, reachability, loop bounds).
    Makes no LLM calls. Exit 0 if all are valid, 2 otherwise."""
    from agentforge.workflow.loader import load_spec
    from agentforge.workflow.validate import find_problems

    bad = 0
    for file in files:
        try:
            spec = load_spec(file)
            problems = find_problems(spec)
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
    err.print(f"total {trace.latency_s:.2f}s, {trace.llm_calls} LLM calls ({trace.cached_calls} cached), "
              f"{trace.prompt_tokens}+{trace.completion_tokens} tokens, ${trace.cost:.4f}; "
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
    """Run a workflow and print its outputs. Exit 0 ok, 1 the run failed, 2 bad input."""
    from agentforge.runtime.workflow import Workflow

    _start_logging()
    if file is None and resume is None:
        raise _fail("give a workflow FILE to run, or --resume RUN_ID", BAD_INPUT)
    try:
        if model is not None:
            from agentforge.config import get_settings
            from agentforge.llm.gateway import resolve_model

            resolve_model(model, get_settings().aliases())
        if resume is not None:
            with _progress(as_json, f"resuming run {resume}"):
                result = Workflow.resume(resume)
        else:
            assert file is not None
            values = _parse_inputs(inputs, input_json)
            wf = Workflow.from_yaml(file)
            with _progress(as_json, f"running {wf.spec.name}"):
                result = wf.run(values, model=model)
    except AgentforgeError as exc:
        code = _exit_code(exc)
        run_id = exc.fields.get("run_id")
        if as_json:
            out.print_json(data={"status": "failed", "error": str(exc), "code": exc.code, "run_id": run_id})
        hint = f"\n  resume with: agentforge run --resume {run_id}" if run_id and code == RUN_FAILED else ""
        raise _fail(f"{exc}{hint}", code) from None
    if as_json:
        trace = result.trace
        out.print_json(data={
            "status": "succeeded", "run_id": result.run_id, "outputs": result.outputs, "cost": trace.cost,
            "tokens": {"prompt": trace.prompt_tokens, "completion": trace.completion_tokens},
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
        raise _fail("drawing pictures needs matplotlib: pip install 'agentforge[viz]'", BAD_INPUT) from None
    out.print(f"wrote {target}", highlight=False)


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
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="Evaluate only the first N tasks.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Episodes at once.")] = 8,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Run every LLM node on this model.")] = None,
    executor: Annotated[str, typer.Option(
        "--executor", help="asyncio (this process), processes (worker processes on this machine) or ray.")] = "asyncio",
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Worker processes for --executor processes or ray (default: one per CPU).")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Join this Ray cluster.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap interval.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full EvalReport as JSON.")] = False,
) -> None:
    """Evaluate a workflow on an environment's split: a progress bar with running score and cost, then a
    summary. Exit 0 ok, 1 if every task failed, 2 bad input."""
    from agentforge.envs.registry import load_env
    from agentforge.evaluation.evaluator import aevaluate
    from agentforge.evaluation.executors import AsyncioExecutor, Executor, ProcessExecutor, RayExecutor
    from agentforge.runtime.workflow import Workflow, run_sync

    _start_logging()
    if executor not in ("asyncio", "processes", "ray"):
        raise _fail(f"--executor must be asyncio, processes or ray, not '{executor}'", BAD_INPUT)
    if split not in ("train", "val", "test"):
        raise _fail(f"--split must be train, val or test, not '{split}'", BAD_INPUT)
    try:
        if model is not None:
            from agentforge.config import get_settings
            from agentforge.llm.gateway import resolve_model

            resolve_model(model, get_settings().aliases())
        wf = Workflow.from_yaml(workflow)
        try:
            environment = load_env(env)
        except EnvError as exc:  # the environment cannot be built: bad input, not a failed run
            raise _fail(str(exc), BAD_INPUT) from None
        environment.ref = env  # type: ignore[attr-defined]  # lets worker processes rebuild it
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
                                            on_start=progress.start))
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
    summary = report.summary()
    table = Table(title=f"{report.workflow} on {report.env} ({report.split})", title_justify="left", show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    low, high = summary["ci95"]
    rows = [
        ("tasks", str(summary["tasks"])),
        ("mean score", f"{summary['mean_score']:.3f}  (95% CI {low:.3f} to {high:.3f})"),
        ("errors", str(summary["errors"])),
        ("LLM calls", f"{summary['llm_calls']} ({summary['cached_calls']} cached)"),
        ("tokens in/out", f"{summary['prompt_tokens']}/{summary['completion_tokens']}"),
        ("cost", f"${summary['cost']:.4f} (p50 ${summary['cost_p50']:.4f}/task, p90 ${summary['cost_p90']:.4f})"),
        ("latency p50/p90/p99", f"{summary['latency_p50_s']:.2f}s / {summary['latency_p90_s']:.2f}s / "
                                f"{summary['latency_p99_s']:.2f}s"),
        ("wall", f"{summary['wall_s']:.1f}s ({summary['tasks_per_s']} tasks/s)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    err.print(table)
    failed = [r for r in report.results if r.error][:5]
    for result in failed:
        err.print(f"  task {result.task_id}: {result.error}", markup=False, highlight=False, soft_wrap=True)
    if report.traces_path:
        err.print(f"report: {Path(report.traces_path).parent / 'report.json'}", markup=False, highlight=False)


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
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (loopback by default).")] = "127.0.0.1",
    session_ttl: Annotated[float, typer.Option("--session-ttl", help="Idle seconds before a session expires.")] = 600,
) -> None:
    """Serve a local environment over the AgentGym HTTP protocol (textcraft dialect, strict errors)."""
    from agentforge.envs.registry import load_env
    from agentforge.envs.server import serve

    _start_logging()
    try:
        environment = load_env(env)
    except AgentforgeError as exc:
        raise _fail(str(exc), BAD_INPUT) from None
    err.print(f"serving {environment.name} on http://{host}:{port} ({len(environment.tasks())} tasks)",
              markup=False, highlight=False)
    serve(environment, host=host, port=port, session_ttl=session_ttl)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
