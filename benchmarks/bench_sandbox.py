"""What confinement costs per run: bubblewrap against the older ``unshare`` path and a bare interpreter.

Two layers, each median of N fresh processes, the variants interleaved round-robin so load drifts hit
them alike:

* start-up alone: the caller's ``python -I -c 'print(1)'`` bare, under ``unshare`` (the flags the
  unconfined fallback uses: user, network and PID namespaces), and under ``bwrap`` with the sandbox's
  full allow-listed view, started as the sandbox starts it (base interpreter, ``-S``, then the caller's
  site-packages);
* a whole ``run_python("print(1)")`` (argument checks, files written, bootstrap with limits and socket
  guard, output read back), confined (``bwrap``, plus the pids cgroup for a root caller) and with
  ``AGENTFORGE_SANDBOX=unconfined``.

    .venv/bin/python benchmarks/bench_sandbox.py [--runs N] [--out PATH]   # default: results/sandbox.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results" / "sandbox.json"

from machine import machine_info  # noqa: E402

from agentforge.sandbox import confinement, run_python  # noqa: E402
from agentforge.sandbox import python as sandbox  # noqa: E402

PAYLOAD = ["-I", "-u", "-X", "utf8", "-c", "print(1)"]


def _timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or proc.stdout.strip() != b"1":
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.decode(errors='replace')[-400:]}")
    return elapsed


def _run_python(mode: str) -> Callable[[], float]:
    def once() -> float:
        os.environ["AGENTFORGE_SANDBOX"] = mode
        started = time.perf_counter()
        result = run_python("print(1)")
        elapsed = time.perf_counter() - started
        if result.stdout != "1\n":
            raise RuntimeError(f"run_python ({mode}) failed: {result.stderr[-400:]}")
        return elapsed
    return once


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 2),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
            "min_ms": round(ordered[0] * 1000, 2), "n": len(ordered)}


def measure(runs: int) -> dict[str, Any]:
    bwrap = confinement.require_bwrap()
    interp = confinement.interpreter()
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        run_dir = Path(tmp)
        work = run_dir / "work"
        work.mkdir()
        bare = [sys.executable, *PAYLOAD]
        unshare = [*sandbox._net_prefix(), *bare]
        # As the sandbox starts it: the base interpreter without site, then the caller's site-packages.
        with_site = f"import site\nfor d in {interp.site_dirs!r}: site.addsitedir(d)\nprint(1)"
        confined = [*confinement.bwrap_argv(bwrap, run_dir=run_dir, workdir=work, tmp_mb=512),
                    interp.executable, "-S", *PAYLOAD[:-1], with_site]
        startup: dict[str, Callable[[], float]] = {
            "bare python -I": lambda: _timed(bare, work),
            "unshare (old path)": lambda: _timed(unshare, work),
            "bwrap (allow-listed view)": lambda: _timed(confined, work),
        }
        whole: dict[str, Callable[[], float]] = {
            "run_python unconfined": _run_python("unconfined"),
            "run_python confined (bwrap)": _run_python("bwrap"),
        }
        samples: dict[str, list[float]] = {name: [] for name in [*startup, *whole]}
        for fn in [*startup.values(), *whole.values()]:
            fn()  # warm the page cache and the probes
        for _ in range(runs):
            for name, fn in [*startup.items(), *whole.items()]:
                samples[name].append(fn())
    os.environ.pop("AGENTFORGE_SANDBOX", None)
    stats = {name: _stats(values) for name, values in samples.items()}
    base = stats["bare python -I"]["median_ms"]
    return {
        "runs": runs,
        "unshare_flags": " ".join(sandbox._net_prefix()[1:]) or None,
        "bwrap_version": subprocess.run([bwrap, "--version"], capture_output=True, text=True,
                                        check=False).stdout.strip(),
        "pids_cgroup": confinement._pids_parent() is not None,
        "startup": stats,
        "added_over_bare_ms": {name: round(stats[name]["median_ms"] - base, 2)
                               for name in ("unshare (old path)", "bwrap (allow-listed view)")},
        "bwrap_minus_unshare_ms": round(stats["bwrap (allow-listed view)"]["median_ms"]
                                        - stats["unshare (old path)"]["median_ms"], 2),
        "run_python_confined_minus_unconfined_ms": round(stats["run_python confined (bwrap)"]["median_ms"]
                                                         - stats["run_python unconfined"]["median_ms"], 2),
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    data = measure(args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for name, row in data["startup"].items():
        sys.stderr.write(f"{name:32s} median {row['median_ms']:7.2f} ms  p90 {row['p90_ms']:7.2f} ms\n")
    sys.stderr.write(f"wrote {args.out}\n")


if __name__ == "__main__":
    main()
