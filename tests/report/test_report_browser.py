"""report.html in a real headless Chromium (Debian's ``chromium``), driven over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: commands on fd 3, replies on fd 4, each JSON
message ended by a NUL byte), so no extra Python package is needed.

The page is loaded from a file:// URL; the test asserts that the browser logged no console
error, exception or failed load, that every section is rendered with a non-zero size, that
every image decoded, and saves a full-page screenshot as a test artifact
(``$TRAINLAB_ARTIFACTS`` or ``test-artifacts/`` at the repository root, ignored by git). A
control page with a deliberate console error and a missing image checks that the error
capture itself works. Chromium is installed with apt-get when missing and we are root;
otherwise the test is skipped, saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from trainlab.report import SECTIONS
from trainlab.run.config import validate_recipe
from trainlab.run.runner import train_recipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    recipe = {
        "name": "browser-test", "runs_dir": str(tmp_path_factory.mktemp("runs")),
        "data": {"name": "digits", "batch_size": 64, "normalize": "global"},
        "model": {"name": "mlp", "widths": [32, 32]},
        "optimizer": {"name": "sgd", "lr": 0.5}, "schedule": {"name": "constant"},
        "train": {"epochs": 2, "early_stopping": None, "log_every": 5, "channels_last": False,
                  "threads": 1},
        "diagnose": {"interval": 5},
    }  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = train_recipe(validate_recipe(recipe), quiet=True).run_dir
    torch.set_num_threads(threads)
    return run_dir / "report.html"


def artifacts() -> Path:
    path = Path(os.environ.get("TRAINLAB_ARTIFACTS", ROOT / "test-artifacts")) / "report"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_report_renders_in_chromium_without_errors(browser, report) -> None:
    browser.open(report.as_uri())
    assert browser.errors() == []
    sections = browser.sections(list(SECTIONS))
    for sid in SECTIONS:
        state = sections[sid]
        assert state is not None, f"section {sid} missing"
        assert state["shown"] and state["height"] > 20 and state["width"] > 500, (sid, state)
    images = browser.images()
    assert len(images) >= 6 and all(i["ok"] for i in images), images
    assert browser.evaluate("document.title").startswith("trainlab run ")
    shot = browser.screenshot(artifacts() / "report-screenshot.png")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert 1200 <= width <= 1280 and height > 2000  # the full page (less a scroll bar)


def test_error_capture_sees_a_broken_page(browser, tmp_path) -> None:
    """Control: the capture used above does report a console error and a missing image."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="missing.png"><script>console.error("boom");'
                    "undefinedFunction();</script></body></html>")  # fmt: skip
    browser.open(page.as_uri())
    errors = browser.errors()
    assert any("console.error" in e and "boom" in e for e in errors), errors
    assert any(e.startswith("exception:") for e in errors), errors
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in errors), errors
