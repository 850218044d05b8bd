"""Resume repairs what a kill (or a user) damaged instead of dying, and is idempotent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainlab.cli import main
from trainlab.run.config import RecipeError, load_recipe
from trainlab.run.runner import train_recipe
from trainlab.train.metrics_log import read_jsonl

RECIPE = """
name: repair
seed: 5
data: {name: digits, batch_size: 64, normalize: per_channel}
model: {name: mlp, widths: [32]}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
schedule: {name: cosine}
train: {epochs: 3, checkpoint_every_steps: 8, log_every: 4, keep_checkpoints: 3}
diagnose: {interval: 4, report: false}
"""
TIMING = {"seconds", "samples_per_s"}


def _metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING}
            for r in read_jsonl(run / "metrics.jsonl")]  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished run and its recipe file."""
    root = tmp_path_factory.mktemp("repair")
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE)
    train_recipe(load_recipe(recipe), quiet=True, run_dir=root / "whole")
    return root / "whole", recipe


def _unfinished(finished: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the finished run as if killed after its last checkpoint: no result yet."""
    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    for name in ("result.json", "verdicts.json", "model.safetensors", "curves.png"):
        (run / name).unlink()
    return run


def _resume(run: Path, capsys) -> tuple[int, str, str]:
    code = main(["train", "--resume", str(run), "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_damaged_newest_checkpoint_falls_back_to_the_one_before(finished, tmp_path, capsys):
    run = _unfinished(finished, tmp_path)
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated safetensors
    code, _, err = _resume(run, capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and newest.name in warnings[0] and "damaged" in warnings[0]
    assert _metrics(run) == _metrics(finished[0])
    assert (run / "checkpoints" / f"damaged-{newest.name}").is_dir()


def test_missing_optimizer_file_falls_back_too(finished, tmp_path, capsys):
    run = _unfinished(finished, tmp_path)
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    (newest / "optimizer.pt").unlink()
    code, _, err = _resume(run, capsys)
    assert code == 0 and "optimizer.pt: missing" in err
    assert _metrics(run) == _metrics(finished[0])


def test_no_usable_checkpoint_starts_over_and_says_so(finished, tmp_path, capsys):
    run = _unfinished(finished, tmp_path)
    for ckpt in (run / "checkpoints").glob("step-*"):
        (ckpt / "state.pt").write_bytes(b"")
    code, _, err = _resume(run, capsys)
    assert code == 0, err
    assert "no usable checkpoint; starting the run over" in err
    assert _metrics(run) == _metrics(finished[0])


def test_empty_probes_file_costs_one_warning_not_the_run(finished, tmp_path, capsys):
    run = _unfinished(finished, tmp_path)
    oldest, *newer = sorted((run / "checkpoints").glob("step-*"))
    for ckpt in newer:  # resume mid-run, from the oldest kept checkpoint
        shutil.rmtree(ckpt)
    step = int(oldest.name.split("-")[1])
    (run / "probes.json").write_text("")
    code, _, err = _resume(run, capsys)
    assert code == 0
    assert [ln for ln in err.splitlines() if ln.startswith("warning:")] == [
        f"warning: probes.json is missing or damaged: the probes restart at step {step}"
    ]  # fmt: skip
    assert _metrics(run) == _metrics(finished[0])
    assert json.loads((run / "probes.json").read_text())["steps"][0] > step


def test_finished_run_prints_its_recorded_result_and_exits_0(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    before = (run / "metrics.jsonl").read_text()
    code, out, err = _resume(run, capsys)
    assert code == 0 and "had already finished" in err
    result = json.loads((run / "result.json").read_text())
    assert out.splitlines()[-1].startswith(f"test accuracy {100 * result['test_acc']:.2f}%")
    assert (run / "metrics.jsonl").read_text() == before  # nothing trained, nothing appended
    assert main(["train", "--resume", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_acc"] == result["test_acc"]


def test_finished_run_rebuilds_missing_verdicts(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    expected = (run / "verdicts.json").read_text()
    (run / "verdicts.json").write_text("[{")
    code, _, err = _resume(run, capsys)
    assert code == 0 and "verdicts.json is missing or damaged: rebuilt" in err
    assert (run / "verdicts.json").read_text() == expected


def test_run_dir_starts_then_resumes_then_reports(finished, tmp_path, capsys):
    run, recipe = tmp_path / "job", finished[1]
    assert main(["train", str(recipe), "--run-dir", str(run), "--quiet"]) == 0
    first = capsys.readouterr().out.splitlines()[-1]
    assert main(["train", str(recipe), "--run-dir", str(run), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == first and "had already finished" in err
    assert not (run / "RUNNING").exists()  # the marker goes when the process is done
    assert _metrics(run) == _metrics(finished[0])


def test_run_dir_of_another_recipe_is_one_line_error(finished, tmp_path, capsys):
    code = main(["train", str(finished[1]), "--run-dir", str(finished[0]), "--set", "seed=6"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "holds a run of another recipe" in err
    (tmp_path / "f").write_text("x")
    assert main(["train", str(finished[1]), "--run-dir", str(tmp_path / "f")]) == 1
    assert "a file, expected a directory" in capsys.readouterr().err


def _signal_before_finish(monkeypatch, times: int) -> None:
    """Send SIGINT `times` times to this process right after the last training step."""
    import os
    import signal

    import trainlab.run.runner as runner

    real = runner.finish_run

    def finish(*args, **kwargs):
        for _ in range(times):
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "finish_run", finish)


def test_ctrl_c_after_the_last_step_finishes_the_run_and_exits_0(
    finished, tmp_path, capsys, monkeypatch
):
    _signal_before_finish(monkeypatch, times=1)
    code = main(["train", str(finished[1]), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    assert (tmp_path / "run" / "result.json").is_file()
    assert _metrics(tmp_path / "run") == _metrics(finished[0])


def test_second_ctrl_c_stops_with_one_line_and_the_run_resumes(
    finished, tmp_path, capsys, monkeypatch
):
    _signal_before_finish(monkeypatch, times=2)
    run = tmp_path / "run"
    assert main(["train", str(finished[1]), "--run-dir", str(run), "--quiet"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("stopped: interrupted") and "\n" not in err
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert _metrics(run) == _metrics(finished[0])


def test_load_run_gives_the_model_that_scored_the_recorded_result(finished):
    import trainlab
    from trainlab.train import evaluate

    run = trainlab.load_run(finished[0])
    assert run.weights == "final" and not run.model.training
    loss, acc = evaluate(run.model, run.test, run.experiment.loss_fn)
    assert acc == run.result["test_acc"] and loss == pytest.approx(run.result["test_loss"], 1e-12)
    assert run.recipe == load_recipe(finished[0] / "recipe.yaml")


def test_load_run_of_an_unfinished_run_takes_its_newest_checkpoint(finished, tmp_path):
    import trainlab

    run_dir = _unfinished(finished, tmp_path)
    run = trainlab.load_run(run_dir)
    newest = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    assert run.weights == newest.name and run.result is None
    with pytest.raises(RecipeError, match="expected a run directory"):
        trainlab.load_run(tmp_path)


def test_predict_on_its_test_split_reproduces_the_recorded_accuracy(finished, capsys):
    import numpy as np

    assert main(["predict", str(finished[0]), "test"]) == 0
    saved = np.load(finished[0] / "predictions-test.npz")
    recorded = json.loads((finished[0] / "result.json").read_text())["test_acc"]
    assert float((saved["pred"] == saved["labels"]).mean()) == recorded
    assert f"accuracy {100 * recorded:.2f}%" in capsys.readouterr().out
    assert np.allclose(saved["probs"].sum(1), 1.0)


def test_predict_on_raw_examples_applies_the_runs_normalization(finished, tmp_path, capsys):
    """Raw digits (as the dataset gives them) through predict give the predictions of the
    prepared test split: the run's fitted normalization is applied to new inputs."""
    import numpy as np

    from trainlab.data import load_dataset
    from trainlab.run.load import load_run

    run = load_run(finished[0])
    raw = load_dataset("digits").test.x  # the digits test split is the run's test split
    np.save(tmp_path / "new.npy", raw.reshape(len(raw), -1).numpy())  # flat rows are fine
    assert main(["predict", str(finished[0]), str(tmp_path / "new.npy"),
                 "--out", str(tmp_path / "p.npz")]) == 0  # fmt: skip
    ours = np.load(tmp_path / "p.npz")["logits"]
    expected = run.model(run.test.x).detach().numpy()
    assert np.allclose(ours, expected, atol=1e-5)
    np.save(tmp_path / "bad.npy", raw[:, :, :4].numpy())
    assert main(["predict", str(finished[0]), str(tmp_path / "bad.npy")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "expected float examples of shape (N, 1, 8, 8)" in err
