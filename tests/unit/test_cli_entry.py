"""The ``agentforge`` entry point answers Ctrl-C with one line at every moment, imports included."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agentforge import cli

# The child slows one import of the command line's down, so the interrupt lands there every time.
_SLOW_IMPORT = textwrap.dedent("""
    import importlib.abc, sys, time
    class Slow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "typer":
                sys.stdout.write("importing\\n"); sys.stdout.flush(); time.sleep(30)
            return None
    sys.meta_path.insert(0, Slow())
    sys.argv = ["agentforge", "--version"]
    from agentforge.__main__ import main
    main()
""")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_command_line_imports_prints_one_line_and_no_traceback(signum: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", _SLOW_IMPORT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "importing\n"
    started = time.perf_counter()
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=20)
    assert time.perf_counter() - started < 10  # ended by the signal, not by the 30 s sleep
    assert child.returncode == 128 + signum
    assert stderr == "interrupted\n"


def test_an_interrupt_swallowed_by_a_finalizer_is_delivered_again() -> None:
    # Python reports a KeyboardInterrupt raised inside __del__ as "Exception ignored" and carries on; the
    # command's hook re-raises it in the main thread, so the Ctrl-C still stops the command.
    code = textwrap.dedent("""
        import sys, time
        from agentforge.__main__ import _redeliver_interrupt
        sys.unraisablehook = _redeliver_interrupt
        class Finalized:
            def __del__(self):
                raise KeyboardInterrupt
        Finalized()
        try:
            time.sleep(30)
        except KeyboardInterrupt:
            print("stopped")
    """)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert time.perf_counter() - started < 10
    assert done.stdout == "stopped\n"
    assert "Exception ignored" not in done.stderr


def test_other_unraisable_errors_are_still_reported() -> None:
    code = textwrap.dedent("""
        import sys
        from agentforge.__main__ import _redeliver_interrupt
        sys.unraisablehook = _redeliver_interrupt
        class Finalized:
            def __del__(self):
                raise ValueError("boom")
        Finalized()
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert "Exception ignored" in done.stderr and "boom" in done.stderr


def test_ctrl_c_while_typer_builds_the_command_exits_130_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", interrupted)
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted"
