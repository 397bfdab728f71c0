"""The evolve report in a real browser: headless Chromium (Debian's ``chromium`` package) parses the file,
renders it without network, and the screenshot shows the plots and the lineage drawn."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agentforge.config import Settings, use_settings
from agentforge.evolve.report import write_report
from tests.unit.test_evolve_report import make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")

WIDTH, HEIGHT = 1280, 2400


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False)


def _has_colour(pixels: object, hex_colour: str, tolerance: float = 0.04) -> int:
    import numpy as np

    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    image = np.asarray(pixels)[..., :3]
    return int((np.abs(image - rgb).max(axis=-1) < tolerance).sum())


@pytest.fixture
def report(tmp_path: Path) -> Path:
    with use_settings(Settings(home=tmp_path / "home")):
        folder = make_run(tmp_path / "runs", "browser", kill_at=None)
    return write_report(folder)


def test_chromium_renders_the_report_with_its_plots_and_lineage(report: Path, tmp_path: Path) -> None:
    import matplotlib.image
    import numpy as np

    png = tmp_path / "report.png"
    done = _chromium(tmp_path / "profile", f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}",
                     report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.is_file() and png.stat().st_size > 50_000
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    # Not one colour: rows across the page differ, and each band of the page holds many colours.
    for top in range(0, HEIGHT - 200, 400):
        band = np.asarray(pixels[top:top + 200, :, :3])
        assert len(np.unique(band.reshape(-1, 3), axis=0)) > 20, f"rows {top}-{top + 200} are (nearly) blank"
    # Drawn, not only written: the plots' seed blue and best pink markers (absent from a page whose plots
    # are missing: 0 pixels of either) and the pool green of the lineage, plot and badges are on screen.
    assert _has_colour(pixels, "#1565c0") > 200
    assert _has_colour(pixels, "#d81b60") > 150
    assert _has_colour(pixels, "#2e7d32") > 500


def test_chromium_parses_every_section_and_runs_no_script(report: Path, tmp_path: Path) -> None:
    done = _chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    for section in ("summary", "budget", "scores", "pareto", "lineage", "diff", "verdicts"):
        assert f'<section id="{section}">' in dom
    assert dom.count("<svg") >= 3
    assert "<script" not in dom  # the markup a model wrote stayed text
    assert "&lt;script&gt;" in dom
