"""The kill chain: a real `trainlab train` process is SIGKILLed again and again — inside each
kind of write, during the resume, during the final evaluation and report, and at random
instants of training — relaunched each time with the same command, and must end with the
metrics, result and verdicts of an uninterrupted run.

Kills inside a write are planned, not left to chance: `TRAINLAB_CRASH_AT=LABEL#N` makes the
process kill itself the N-th time it reaches crash point LABEL (`trainlab.durable`), with
the temporary file cut to half its size or the appended line half written.

The default run covers every kind of write with a fixed plan. A long run adds seeded random
chains: `TRAINLAB_KILL_POINTS=60 TRAINLAB_KILL_SEED=1 pytest tests/train/test_kill_chain.py -s`
(the counts per kind are printed and written to test-artifacts/kill-chain.json).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from trainlab.train.metrics_log import read_jsonl

RECIPE = """
name: kill-chain
seed: 3
data: {name: digits, batch_size: 32, normalize: per_channel}
model: {name: mlp, widths: [128, 128], dropout: 0.2}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
schedule: {name: cosine}
train: {epochs: 6, checkpoint_every_steps: 25, log_every: 10}
diagnose: {interval: 10}
"""
TIMING = {"seconds", "samples_per_s", "train_seconds", "run_dir"}
KILLED = -signal.SIGKILL

# Kind of write -> crash point labels (see trainlab.durable and trainlab.train.checkpoint).
KINDS = {
    "run start (recipe.yaml, data.json)": ("write:recipe.yaml", "renamed:data.json"),
    "metrics append (torn line)": ("append:metrics.jsonl",),
    "checkpoint files": ("checkpoint:model.safetensors", "checkpoint:optimizer.pt",
                         "checkpoint:state.pt", "publish:checkpoints", "write:LATEST"),
    "probes.json": ("write:probes.json", "renamed:probes.json"),
    "resume (metrics cut, data.json)": ("write:metrics.jsonl", "write:data.json"),
    "final evaluation": ("final-evaluation",),
    "final files (weights, curves, result)": ("write:model.safetensors", "write:curves.png",
                                              "write:result.json", "renamed:result.json"),
    "verdicts and report": ("write:verdicts.json", "write:report.html", "renamed:report.html"),
}  # fmt: skip
KIND_OF = {label: kind for kind, labels in KINDS.items() for label in labels}

# The default plan: two chains whose planned kills hit every kind above. Each entry is one
# process, killed at LABEL#N (N counted within that process).
PLAN = [
    ["write:recipe.yaml#1", "renamed:data.json#1", "append:metrics.jsonl#4",
     "checkpoint:optimizer.pt#2", "write:metrics.jsonl#1", "write:probes.json#3",
     "publish:checkpoints#2", "write:LATEST#1", "timed"],
    ["checkpoint:state.pt#3", "final-evaluation#1", "write:model.safetensors#1",
     "write:curves.png#1", "write:result.json#1", "write:verdicts.json#1",
     "write:verdicts.json#1", "write:report.html#1"],
]  # fmt: skip


def _launch(recipe: Path, run_dir: Path, crash_at: str | None, resume: bool) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TRAINLAB_CRASH_LOG", None)
    env.pop("TRAINLAB_CRASH_AT", None)
    if crash_at is not None:
        env["TRAINLAB_CRASH_AT"] = crash_at
    how = ["--resume", str(run_dir)] if resume else [str(recipe), "--run-dir", str(run_dir)]
    return subprocess.Popen(
        [sys.executable, "-m", "trainlab.cli", "train", *how, "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _timed_kill(proc: subprocess.Popen, run_dir: Path, rng: random.Random) -> None:
    """SIGKILL at a random instant once training is under way (metrics.jsonl has a line)."""
    metrics, deadline = run_dir / "metrics.jsonl", time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.is_file() and metrics.stat().st_size > 0:
            time.sleep(rng.uniform(0.0, 0.6))
            break
        time.sleep(0.002)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


def _run_link(recipe: Path, run_dir: Path, point: str, rng: random.Random, n: int) -> str | None:
    """One process of a chain; returns what killed it ('timed' or the crash point), or None
    if it ended by itself (exit 0, or a planned point it never reached)."""
    resume = n % 2 == 1 and (run_dir / "recipe.yaml").is_file()  # alternate the two forms
    proc = _launch(recipe, run_dir, None if point == "timed" else point, resume)
    if point == "timed":
        _timed_kill(proc, run_dir, rng)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, KILLED), f"{point}: exit {proc.returncode}\n{err}"
    assert "Traceback" not in err, err
    return point if proc.returncode == KILLED else None


def _finish(recipe: Path, run_dir: Path) -> str:
    proc = _launch(recipe, run_dir, None, resume=False)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return out


def _outcome(run_dir: Path) -> dict:
    """What a finished run keeps, less wall times and paths."""
    metrics = [{k: v for k, v in r.items() if k not in TIMING}
               for r in read_jsonl(run_dir / "metrics.jsonl")]  # fmt: skip
    result = json.loads((run_dir / "result.json").read_text())
    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    report = (run_dir / "report.html").read_text()
    assert report.rstrip().endswith("</html>")
    return {"metrics": metrics, "result": {k: v for k, v in result.items() if k not in TIMING},
            "verdicts": verdicts}  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Counter]:
    """An uninterrupted run, and how often it reached each crash point."""
    root = tmp_path_factory.mktemp("kill-chain")
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE)
    log = root / "crash-points.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRAINLAB_CRASH_LOG": str(log)}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "trainlab.cli", "train", str(recipe), "--run-dir",
         str(root / "whole"), "--quiet"], env=env, check=True, capture_output=True,
    )  # fmt: skip
    reached = Counter(log.read_text().split())
    reached["wall seconds"] = round(time.monotonic() - started, 2)
    return recipe, _outcome(root / "whole"), reached


def _chain(recipe: Path, run_dir: Path, points: list[str], seed: int, kills: Counter) -> dict:
    rng = random.Random(seed)
    for n, point in enumerate(points):
        if (run_dir / "result.json").is_file() and point.split("#")[0] not in KIND_OF:
            break
        killed = _run_link(recipe, run_dir, point, rng, n)
        if killed is not None:
            kills["during training (timed)" if killed == "timed" else
                  KIND_OF[killed.split("#")[0]]] += 1  # fmt: skip
    _finish(recipe, run_dir)
    return _outcome(run_dir)


def test_every_label_of_the_plan_is_a_real_crash_point(reference):
    _, _, reached = reference
    for label in KIND_OF:
        if label not in ("write:metrics.jsonl", "write:data.json"):  # only a resume writes these
            assert reached[label] > 0, f"an uninterrupted run never reaches {label}"


@pytest.mark.parametrize("chain", range(len(PLAN)))
def test_planned_kill_chain_loses_nothing(reference, tmp_path, chain):
    recipe, expected, _ = reference
    kills: Counter = Counter()
    assert _chain(recipe, tmp_path / "run", PLAN[chain], chain, kills) == expected
    assert sum(kills.values()) >= len(PLAN[chain]) - 1, kills  # the plan's points were reached


def _random_chains(reached: Counter, total: int, seed: int) -> list[list[str]]:
    """Chains of up to 8 kills: random crash points (N within what a run reaches) and timed
    kills, until `total` kills are planned."""
    rng = random.Random(seed)
    labels = sorted(label for label in reached if label in KIND_OF)
    labels += ["write:metrics.jsonl", "write:data.json"]  # reached by resumed processes only
    chains, planned = [], 0
    while planned < total:
        chain = []
        for _ in range(rng.randint(2, 8)):
            if rng.random() < 0.25:
                chain.append("timed")
            else:
                label = rng.choice(labels)
                chain.append(f"{label}#{rng.randint(1, max(1, min(reached[label], 4)))}")
        chains.append(chain)
        planned += len(chain)
    return chains


LONG_RUN = "long run: set TRAINLAB_KILL_POINTS (and TRAINLAB_KILL_SEED)"


@pytest.mark.skipif("TRAINLAB_KILL_POINTS" not in os.environ, reason=LONG_RUN)
def test_random_kill_chains_lose_nothing(reference, tmp_path):
    recipe, expected, reached = reference
    total = int(os.environ["TRAINLAB_KILL_POINTS"])
    seed = int(os.environ.get("TRAINLAB_KILL_SEED", "0"))
    kills: Counter = Counter()
    started = time.monotonic()
    chains = _random_chains(reached, total, seed)
    while sum(kills.values()) < total:
        for i, points in enumerate(chains):
            assert _chain(recipe, tmp_path / f"run{i}", points, seed + i, kills) == expected
        seed += 1000  # planned points a resumed process never reached: plan more
        chains = _random_chains(reached, total - sum(kills.values()), seed)
        tmp_path = tmp_path / "more"
    summary = {"kills": sum(kills.values()), "seed": int(os.environ.get("TRAINLAB_KILL_SEED", "0")),
               "by_kind": dict(kills), "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    out = Path(os.environ.get("TRAINLAB_ARTIFACTS", "test-artifacts")) / "kill-chain.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


SCRIPT = Path(sys.executable).parent / "trainlab"  # the console script (trainlab.entry)


@pytest.mark.skipif(not SCRIPT.is_file(), reason="the trainlab console script is not installed")
def test_ctrl_c_at_many_instants_never_shows_a_traceback_and_loses_nothing(reference, tmp_path):
    """SIGINT at seeded instants spread over a run's whole life (imports, build, training,
    final files, printing): exit 0 or 130, never a traceback, and relaunching the same
    command ends with the uninterrupted run's outcome. The first ~0.1 s, before Python has
    run any trainlab code, is left out: there Python itself reports the interrupt."""
    recipe, expected, reached = reference
    points = int(os.environ.get("TRAINLAB_SIGINT_POINTS", "6"))
    rng = random.Random(int(os.environ.get("TRAINLAB_KILL_SEED", "0")))
    span = 1.1 * reached["wall seconds"] - 0.3
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    codes: Counter = Counter()
    for k in range(points):  # one instant in each of `points` equal slices of the run's life
        run_dir = tmp_path / f"run{k}"
        proc = subprocess.Popen(
            [str(SCRIPT), "train", str(recipe), "--run-dir", str(run_dir), "--quiet"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=0.3 + span * (k + rng.random()) / points)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
        codes[proc.returncode] += 1
        assert proc.returncode in (0, 130), err
        assert "Traceback" not in err and "Exception ignored" not in err, err
        _finish(recipe, run_dir)
        assert _outcome(run_dir) == expected, f"instant {k}"
    # One instant surely inside training (the seeded ones depend on the machine's load): as
    # soon as metrics.jsonl has a line, the interrupt must stop the run with 130.
    run_dir = tmp_path / "mid-training"
    proc = subprocess.Popen(
        [str(SCRIPT), "train", str(recipe), "--run-dir", str(run_dir), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    metrics = run_dir / "metrics.jsonl"
    while proc.poll() is None and not (metrics.is_file() and metrics.read_text().count("\n")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (proc.returncode, err, codes)
    _finish(recipe, run_dir)
    assert _outcome(run_dir) == expected
