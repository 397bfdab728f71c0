"""Logging setup for the command line. The library only calls ``structlog.get_logger``; it never
configures handlers itself, so an embedding application keeps control of its own logging."""

from __future__ import annotations

import logging
import sys
from typing import Any


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now, so a swapped stream (tests, pipes) is never stale."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _LazyLogger:
    """A structlog logger that imports structlog on first use, keeping start-up paths such as
    ``agentforge validate`` free of its import cost."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        import structlog

        if structlog.is_configured():
            if self._logger is None:
                self._logger = structlog.get_logger(self._name)
            return getattr(self._logger, attr)
        return getattr(_quiet_logger(), attr)


_QUIET: Any = None


def _quiet_logger() -> Any:
    """Until an application configures structlog, the library says only warnings and errors,
    on stderr: a library must not fill its host's stdout with info lines."""
    global _QUIET
    if _QUIET is None:
        import structlog

        _QUIET = structlog.wrap_logger(
            structlog.PrintLogger(file=_CurrentStderr()),  # type: ignore[arg-type]
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            processors=[structlog.processors.add_log_level, structlog.dev.ConsoleRenderer(colors=False)],
        )
    return _QUIET


def get_logger(name: str) -> Any:
    return _LazyLogger(name)


def configure_logging(*, json: bool = False, level: str = "warning") -> None:
    import structlog

    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
