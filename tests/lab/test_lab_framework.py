"""The lab's frame: `trainlab lab list | run | all | book`, findings on disk, the book's HTML
in a real Chromium (no console error, every section and figure rendered), a failing
experiment recorded as an error while the others still run, and an unknown name in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainlab.cli import main
from trainlab.lab import EXPERIMENTS, Finding
from trainlab.lab.book import BOOK
from trainlab.lab.registry import LabExperiment, load_all


def test_list_names_every_experiment_with_its_deck_and_claim(capsys) -> None:  # noqa: ANN001
    assert main(["lab", "list"]) == 0
    out = capsys.readouterr().out
    experiments = load_all()
    assert len(experiments) >= 1
    for e in experiments.values():
        assert e.name in out and e.deck and e.claim and e.minutes > 0


def test_run_writes_a_finding_and_the_book(tmp_path: Path) -> None:
    assert main(["lab", "run", "adagrad-decay", "--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "adagrad-decay" / "finding.json").read_text())
    assert record["verdict"] in ("holds", "does not hold", "inconclusive")
    assert record["rule"] and record["numbers"] and record["figures"]
    assert all((tmp_path / f).is_file() for f in record["figures"])
    html = (tmp_path / BOOK).read_text()
    assert record["claim"].replace("'", "&#x27;") in html and "data:image/png;base64," in html


def test_a_failing_experiment_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    def broken(out: Path, quick: bool, seed: int) -> Finding:
        raise RuntimeError("boom")

    load_all()
    monkeypatch.setitem(
        EXPERIMENTS, "zz-broken", LabExperiment("zz-broken", "none", "fails", 0.1, broken)
    )
    code = main(["lab", "run", "zz-broken", "adagrad-decay", "--quick", "--out", str(tmp_path)])
    assert code == 1
    broken_record = json.loads((tmp_path / "zz-broken" / "finding.json").read_text())
    assert broken_record["verdict"] == "error" and "RuntimeError: boom" in broken_record["note"]
    assert (tmp_path / "adagrad-decay" / "finding.json").is_file()
    assert "zz-broken" in (tmp_path / BOOK).read_text()


def test_unknown_experiment_is_one_line(capsys) -> None:  # noqa: ANN001
    assert main(["lab", "run", "adagrad-decai", "--quick"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "adagrad-decay" in err


def test_the_book_renders_in_chromium(browser, tmp_path: Path) -> None:  # noqa: ANN001
    assert main(["lab", "run", "adagrad-decay", "--quick", "--out", str(tmp_path)]) == 0
    browser.open((tmp_path / BOOK).as_uri())
    assert browser.errors() == []
    names = [e for e in sorted(load_all()) if (tmp_path / e / "finding.json").is_file()]
    heights = (
        "(() => { const ids = IDS; return ids.map(id => { const el = document.getElementById(id);"
        " return el ? el.getBoundingClientRect().height : 0; }); })()"
    )
    state = browser.evaluate(heights.replace("IDS", json.dumps(names)))
    assert all(h > 50 for h in state), dict(zip(names, state, strict=True))
    images = browser.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
    assert images and all(images)
    assert "1 holds" in browser.evaluate("document.getElementById('tally').textContent") or (
        "does not hold" in browser.evaluate("document.getElementById('tally').textContent")
    )


@pytest.mark.parametrize("name", ["adagrad-decay"])
def test_quick_versions_predict_the_claimed_direction(name: str, tmp_path: Path) -> None:
    """AdaGrad: the fitted exponent with stationary gradients is near -1/2, and flatter when the
    run starts far from the optimum (the early gradients dominate the sum)."""
    from trainlab.lab.runner import run_experiment

    record = run_experiment(load_all()[name], tmp_path, quick=True, seed=0)
    numbers = record["numbers"]
    assert abs(numbers["fitted_exponent_mean"] + 0.5) < 0.1
    assert numbers["fitted_exponent_from_zero"] > numbers["fitted_exponent_mean"]


def test_lab_all_quick_writes_a_book_that_renders_in_chromium(browser, tmp_path: Path) -> None:  # noqa: ANN001
    """`trainlab lab all --quick`: every experiment runs without error and the book shows a
    section per experiment, each with its figures decoded (PNG and GIF)."""
    assert main(["lab", "all", "--quick", "--out", str(tmp_path)]) == 0
    names = sorted(load_all())
    for name in names:
        record = json.loads((tmp_path / name / "finding.json").read_text())
        assert record["verdict"] in ("holds", "does not hold", "inconclusive"), (name, record)
        assert record["figures"], name
    browser.open((tmp_path / BOOK).as_uri())
    assert browser.errors() == []
    heights = (
        "(() => { const ids = IDS; return ids.map(id => { const el = document.getElementById(id);"
        " return el ? el.getBoundingClientRect().height : 0; }); })()"
    )
    state = browser.evaluate(heights.replace("IDS", json.dumps(names)))
    assert all(h > 100 for h in state), dict(zip(names, state, strict=True))
    images = browser.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
    assert len(images) >= len(names) and all(images)
    rows = browser.evaluate("document.querySelectorAll('#summary tr').length")
    assert rows == len(names) + 1
