"""Packaging a new user meets: the licence is an SPDX string (no deprecation warning on install), and
PNG/SVG graphs have matplotlib installed by `make setup` (the `viz` extra), or say how to get it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

from tests.conftest import REPO, WORKFLOWS

PYPROJECT = REPO / "pyproject.toml"


def test_license_is_an_spdx_expression_that_setuptools_reads_without_warning() -> None:
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert data["project"]["license"] == "Apache-2.0"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the table form raises SetuptoolsDeprecationWarning here
        dist = apply_configuration(Distribution(), PYPROJECT)
    assert dist.metadata.license_expression == "Apache-2.0"


def test_build_requires_a_setuptools_that_understands_spdx_licences() -> None:
    requires = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["build-system"]["requires"]
    (setuptools,) = [r for r in requires if re.match(r"setuptools\b", r)]
    match = re.search(r">=\s*(\d+)", setuptools)
    assert match and int(match.group(1)) >= 77, setuptools


def make_recipe(target: str) -> str:
    """The recipe lines of one Makefile target."""
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.M)
    assert match, f"no '{target}' target in the Makefile"
    return match.group(1)


def test_make_setup_and_demo_install_the_viz_extra() -> None:
    extras = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(r.startswith("matplotlib") for r in extras["viz"])
    for target in ("setup", "setup-dev"):
        installs = [line for line in make_recipe(target).splitlines() if "pip install" in line and "-e" in line]
        assert installs and all(re.search(r"\.\[[^\]]*\bviz\b", line) for line in installs), (target, installs)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"pip install 'agentforge\[[a-z,]*\bviz\b[a-z,]*\]'", readme) and "matplotlib" in readme


def graph(fmt: str, out: Path, *, hide_matplotlib: bool) -> subprocess.CompletedProcess[str]:
    # Absent for real in the child: `import matplotlib` raises ImportError as on a machine without it.
    prelude = "import sys; sys.modules['matplotlib'] = None; " if hide_matplotlib else "import sys; "
    code = prelude + "from agentforge.cli import main; sys.argv[0] = 'agentforge'; main()"
    return subprocess.run([sys.executable, "-c", code, "graph", str(WORKFLOWS / "debate.yaml"), "--format", fmt,
                           "-o", str(out)], capture_output=True, text=True, timeout=120, env=os.environ.copy())


def test_graph_png_without_matplotlib_exits_2_with_the_install_command(tmp_path: Path) -> None:
    proc = graph("png", tmp_path / "debate.png", hide_matplotlib=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "matplotlib" in proc.stderr
    assert "pip install 'agentforge[viz]'" in proc.stderr and "make setup" in proc.stderr
    assert not (tmp_path / "debate.png").exists()


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_graph_draws_a_picture_when_matplotlib_is_installed(tmp_path: Path, fmt: str, magic: bytes) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / f"debate.{fmt}"
    proc = graph(fmt, target, hide_matplotlib=False)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes().startswith(magic)
