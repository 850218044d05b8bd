"""Kill a real `trainlab train` process mid-way, resume it, and get the uninterrupted numbers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainlab.train.metrics_log import read_jsonl

RECIPE = """
name: resume-test
seed: 7
data: {name: digits, batch_size: 16, normalize: per_channel}
model: {name: mlp, widths: [128, 128], dropout: 0.2}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
schedule: {name: cosine}
train: {epochs: EPOCHS, checkpoint_every_steps: 25, log_every: 10}
"""
TIMING = {"seconds", "samples_per_s"}


def trainlab(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "trainlab.cli", "train", *args, "--quiet"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def only_run(root: Path) -> Path:
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    return run


def comparable(run: Path) -> list[dict]:
    """metrics.jsonl without wall-time fields."""
    return [
        {k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(run / "metrics.jsonl")
    ]


def wait_for_checkpoint(run_root: Path, min_step: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        latest = list(run_root.glob("*/checkpoints/LATEST"))
        if latest and int(latest[0].read_text().split("-")[1]) >= min_step:
            return
        time.sleep(0.005)
    pytest.fail(f"the run finished or stalled before a checkpoint at step >= {min_step}")


def run_pair(tmp_path: Path, epochs: int) -> tuple[Path, Path, Path]:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.replace("EPOCHS", str(epochs)))
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    return recipe, whole, cut


def test_killed_run_resumes_to_identical_metrics(tmp_path):
    recipe, whole, cut = run_pair(tmp_path, epochs=40)
    reference = trainlab(str(recipe), "--set", f"runs_dir={whole}", cwd=tmp_path)
    victim = trainlab(str(recipe), "--set", f"runs_dir={cut}", cwd=tmp_path)
    wait_for_checkpoint(cut, 100, victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run = only_run(cut)
    assert not (run / "result.json").exists(), "killed after finishing: nothing was tested"
    resumed = trainlab("--resume", str(run), cwd=tmp_path)
    assert resumed.wait() == 0, resumed.stderr.read()
    assert reference.wait() == 0, reference.stderr.read()
    expected = comparable(only_run(whole))
    assert comparable(run) == expected
    assert expected[-1]["kind"] == "test" and expected[-1]["test_acc"] > 0.9


def test_ctrl_c_saves_a_checkpoint_and_resume_matches(tmp_path):
    recipe, whole, cut = run_pair(tmp_path, epochs=40)
    reference = trainlab(str(recipe), "--set", f"runs_dir={whole}", cwd=tmp_path)
    victim = trainlab(
        str(recipe),
        "--set",
        f"runs_dir={cut}",
        "--set",
        "train.checkpoint_every_steps=null",
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 180  # generous: the first line waits for imports and data
    while (
        not list(cut.glob("*/metrics.jsonl"))
        or not list(cut.glob("*/metrics.jsonl"))[0].read_text()
    ):
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.005)
    victim.send_signal(signal.SIGINT)
    assert victim.wait() == 130
    assert "Resume with: trainlab train --resume" in victim.stderr.read()
    run = only_run(cut)
    step = int((run / "checkpoints" / "LATEST").read_text().split("-")[1])
    assert step % 90 != 0, "the Ctrl-C checkpoint should fall mid-epoch (90 steps per epoch)"
    resumed = trainlab("--resume", str(run), cwd=tmp_path)
    assert resumed.wait() == 0, resumed.stderr.read()
    assert reference.wait() == 0
    assert comparable(run) == comparable(only_run(whole))
    summary = json.loads((run / "result.json").read_text())
    assert summary == {**json.loads((only_run(whole) / "result.json").read_text()),
                       "run_dir": str(run), "train_seconds": summary["train_seconds"]}  # fmt: skip


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    recipe = tmp_path / "nan.yaml"
    recipe.write_text(RECIPE.replace("EPOCHS", "5").replace("lr: 0.05", "lr: 1.0e+9"))
    proc = trainlab(str(recipe), "--set", f"runs_dir={tmp_path}/runs",
                    "--set", "train.checkpoint_every_steps=1", cwd=tmp_path)  # fmt: skip
    assert proc.wait() == 3
    err = proc.stderr.read().strip()
    assert "loss became" in err and "at step" in err and "last good checkpoint" in err
    from safetensors.torch import load_file

    (run,) = (tmp_path / "runs").iterdir()
    kept = run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text()
    weights = load_file(str(kept / "model.safetensors"))
    assert all(t.isfinite().all() for t in weights.values())
    assert not (run / "result.json").exists()
