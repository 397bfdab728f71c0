"""The ``agentforge`` command's entry point (also ``python -m agentforge``).

Ctrl-C can land while the command line's libraries are still importing (about a tenth of a second). Until
``cli.main`` takes over, SIGINT and SIGTERM end the process with one line and the usual exit code instead
of an import traceback; nothing has started then, so there is nothing to save or resume.

Later, Python raises Ctrl-C's ``KeyboardInterrupt`` wherever the main thread is, and when that is inside a
finalizer or a weakref callback the interrupt is printed as "Exception ignored" and lost. The command's
unraisable hook sends the signal again a moment later, from a thread, so that it lands outside the
finalizer and stops the run as any Ctrl-C does.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` itself imports enum, ~4 ms more before the handlers
import os
import sys

TYPE_CHECKING = False  # the interpreter's start-up before these handlers is a window: import nothing more
if TYPE_CHECKING:
    from types import FrameType


def _stop_early(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"interrupted\n")
    os._exit(128 + signum)


def _signal_main_later() -> None:
    import threading
    import time

    time.sleep(0.01)  # raised at once, it would land in the same finalizer (or in this hook) again
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def _redeliver_interrupt(unraisable: sys.UnraisableHookArgs) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        import threading

        threading.Thread(target=_signal_main_later, name="redeliver-interrupt", daemon=True).start()
        return
    sys.__unraisablehook__(unraisable)


def main() -> None:
    sys.unraisablehook = _redeliver_interrupt
    previous = {sig: signal.signal(sig, _stop_early) for sig in (signal.SIGINT, signal.SIGTERM)}
    from agentforge.cli import main as cli_main

    for sig, handler in previous.items():
        signal.signal(sig, handler)
    cli_main()


if __name__ == "__main__":
    main()
