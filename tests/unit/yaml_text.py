"""Helpers for tests that write small workflow YAML texts and check the lines problems point at."""

from __future__ import annotations

HEAD = """\
version: 1
kind: workflow
name: t
inputs:
  question: str
outputs:
  answer: str
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the ``nth`` occurrence of ``needle`` in ``text``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == nth:
                return number
    raise AssertionError(f"{needle!r} occurs fewer than {nth} time(s) in the YAML")
