"""`trainlab compare`: every variant x seed runs, the table's means are the runs' means."""

import json
import statistics

from trainlab.cli import main

BASE = """
data: {name: digits, batch_size: 32, normalize: per_channel}
model: {name: mlp, widths: [32]}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
schedule: {name: constant}
train: {epochs: 2, channels_last: false}
"""


def write_spec(tmp_path, variants: str):
    (tmp_path / "base.yaml").write_text(BASE)
    spec = tmp_path / "cmp.yaml"
    spec.write_text(f"name: t\nrecipe: base.yaml\nseeds: [0, 1]\nvariants:\n{variants}")
    return spec


def test_compare_runs_each_variant_and_seed(tmp_path, capsys):
    spec = write_spec(tmp_path, "  sgd: {}\n  sam: {optimizer.sam: {policy: sam, rho: 0.05}}\n")
    assert main(["compare", str(spec), "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    (study,) = (tmp_path / "runs").iterdir()
    rows = json.loads((study / "results.json").read_text())
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("sgd", 0),
        ("sgd", 1),
        ("sam", 0),
        ("sam", 1),
    ]
    for variant in ("sgd", "sam"):
        accs = [r["test_acc"] for r in rows if r["variant"] == variant]
        mean, std = 100 * statistics.fmean(accs), 100 * statistics.stdev(accs)
        expected = f"| {variant} | {mean:.2f} ± {std:.2f} |"
        assert expected in out and expected in (study / "table.md").read_text()
    assert len({r["test_acc"] for r in rows if r["variant"] == "sgd"}) == 2, "seeds should differ"


def test_bad_variant_fails_before_any_run(tmp_path, capsys):
    spec = write_spec(tmp_path, "  sgd: {}\n  bad: {optimizer.sam: {policy: eg_sam}}\n")
    assert main(["compare", str(spec), "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "variant bad: recipe field optimizer.sam.policy: unknown SAM policy 'eg_sam'" in err
    assert "(did you mean 'eg-sam'?)" in err
    assert not (tmp_path / "runs").exists()


def test_schedule_plot_writes_png(tmp_path, capsys):
    out = tmp_path / "s.png"
    argv = [
        "schedule",
        "plot",
        "step_decay",
        "--set",
        "step_size=10",
        "--set",
        "gamma=0.5",
        "--steps",
        "30",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lr(29)=0.025" in capsys.readouterr().out


def test_cv_summary_is_the_mean_of_the_folds(capsys):
    sets = ["data.name=digits", "model.name=mlp", "model.widths=[32]", "train.epochs=2",
            "data.batch_size=32"]  # fmt: skip
    argv = ["cv", "--folds", "3", *[a for s in sets for a in ("--set", s)]]
    assert main(argv) == 0
    captured = capsys.readouterr()
    accs = [float(line.split("accuracy ")[1].rstrip("%")) for line in captured.err.splitlines()
            if line.startswith("fold ")]  # fmt: skip
    assert len(accs) == 3 and all(a > 80 for a in accs)
    mean = statistics.fmean(accs)
    assert (
        f"accuracy {mean:.2f} ±" in captured.out
        or abs(float(captured.out.split()[1]) - mean) < 0.01
    )


def test_cv_rejects_one_fold(capsys):
    assert main(["cv", "--folds", "1", "--set", "data.name=digits"]) == 1
    assert "--folds 1: kfold k must be in 2.." in capsys.readouterr().err


def test_variant_that_only_fails_when_built_fails_before_any_run(tmp_path, capsys):
    """The third variant passes the schema but cannot be built (a batch bigger than the
    training split): the comparison stops before the first run trains."""
    spec = write_spec(tmp_path, "  a: {}\n  b: {optimizer.lr: 0.05}\n"
                                "  c: {data.batch_size: 100000}\n")  # fmt: skip
    assert main(["compare", str(spec), "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: variant c: recipe field data.batch_size")
    assert not (tmp_path / "runs").exists()


def test_killed_comparison_continues_in_its_study_dir(tmp_path, capsys):
    """Run the study, lose one finished run and half of another, run again in the same
    directory: the table is the same and the intact run is not retrained."""
    import shutil

    spec = write_spec(tmp_path, "  sgd: {}\n  lr: {optimizer.lr: 0.05}\n")
    study = tmp_path / "study"
    assert main(["compare", str(spec), "--study-dir", str(study)]) == 0

    def results() -> list[dict]:  # less the wall times
        rows = json.loads((study / "results.json").read_text())
        return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]

    before = results()
    kept = (study / "sgd-seed0" / "result.json").stat().st_mtime_ns
    shutil.rmtree(study / "lr-seed1")
    (study / "sgd-seed1" / "result.json").unlink()  # as if killed before it was written
    assert main(["compare", str(spec), "--study-dir", str(study)]) == 0
    assert results() == before
    assert (study / "sgd-seed0" / "result.json").stat().st_mtime_ns == kept
