"""Data-parallel training (issue #17): N processes under torchrun equal one process with the
same global batch, across "nodes" too; SAM's ascent pass; a killed rank; bad input.

The recipe trains in float64 (`train.dtype`) so that the only differences left are summation
orders (~1e-16); 1651 training rows in batches of 100 make the last batch of each epoch 51
rows, split 26/25 over two ranks (the weighted-share rule), and 413 validation rows split
207/206. 3 epochs of 17 steps: 51 steps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainlab.cli import main
from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.data.loader import share_of
from trainlab.run.config import RecipeError, load_recipe
from trainlab.run.distributed import check_world, restore_world
from trainlab.run.experiment import build
from trainlab.train.world import World

RECIPE = """\
name: ddp
seed: 3
data: {name: mnist1d, subset: 2064, val_fraction: 0.2, batch_size: 100}
model: {name: mlp, widths: [32]}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
schedule: {name: constant}
train: {epochs: 3, dtype: float64, early_stopping: null, log_every: 1,
        channels_last: false, threads: 1}
"""
SAM_SYNC = ["--set", "optimizer.sam.policy=sam", "--set", "optimizer.sam.sync_ascent=true"]
TIMING = {"seconds", "samples_per_s", "train_seconds"}
TOL = 1e-10


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "ddp.yaml"
    path.write_text(RECIPE)
    return path


def _cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - a fixed argument list
        [sys.executable, "-m", "trainlab.cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def _train(recipe: Path, run_dir: Path, sets: list[str], nproc: int | None) -> Path:
    """Train `recipe` into `run_dir`: in this process (nproc None) or N torchrun workers."""
    args = ["train", str(recipe), "--run-dir", str(run_dir), "--quiet", *sets]
    if nproc is None:
        assert main(args) == 0
        return run_dir
    done = _cli([*args, "--nproc", str(nproc)], recipe.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir


def _assert_same_run(a: Path, b: Path) -> None:
    """Same final weights to 1e-10 and the same metrics.jsonl (timing aside)."""
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(wa[k].dtype == torch.float64 for k in wa)
    gap = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert gap < TOL, f"weights differ by {gap}"
    rows_a, rows_b = (_rows(r / "metrics.jsonl") for r in (a, b))
    assert [r["kind"] for r in rows_a] == [r["kind"] for r in rows_b]
    assert len([r for r in rows_a if r["kind"] == "step"]) == 51
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra.keys() - TIMING:
            if isinstance(ra[key], float):
                assert ra[key] == pytest.approx(rb[key], abs=TOL), (ra, rb)
            else:
                assert ra[key] == rb[key], (key, ra, rb)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(recipe: Path) -> dict[str, Path]:
    """The single-process reference runs: plain SGD and SAM (ascent on the global batch)."""
    root = recipe.parent
    return {
        "sgd": _train(recipe, root / "one-sgd", [], None),
        "sam": _train(recipe, root / "one-sam", SAM_SYNC, None),
    }


@pytest.mark.parametrize("kind", ["sgd", "sam"])
def test_two_processes_equal_one_process(
    recipe: Path, one_process: dict[str, Path], kind: str
) -> None:
    sets = SAM_SYNC if kind == "sam" else ["--set", "train.threads=null"]
    two = _train(recipe, recipe.parent / f"two-{kind}", sets, 2)
    _assert_same_run(two, one_process[kind])
    notes = json.loads((two / "data.json").read_text())["data_parallel"]
    threads = 1 if kind == "sam" else max(1, len(os.sched_getaffinity(0)) // 2)  # cores / N
    assert notes == {"processes": 2, "nodes": 1, "threads_per_process": threads,
                     "backend": "gloo", "batch_per_process": 50}  # fmt: skip
    assert (two / "checkpoints" / "LATEST").read_text().strip() != ""
    assert (two / "report.html").is_file()


def test_two_nodes_on_loopback_equal_one_process(
    recipe: Path, one_process: dict[str, Path]
) -> None:
    """Two `torchrun --nnodes 2` invocations (one per "node") meet at a c10d rendezvous on
    127.0.0.1 and train one run together."""
    run_dir = recipe.parent / "two-nodes"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "t17",
        "-m", "trainlab.cli", "train", str(recipe), "--run-dir", str(run_dir), "--quiet",
    ]  # fmt: skip
    nodes = [
        subprocess.Popen(
            launch,
            cwd=recipe.parent,
            stdout=subprocess.PIPE,  # noqa: S603
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-1500:] for _, err in outputs]
    _assert_same_run(run_dir, one_process["sgd"])


def _m_sharpness_reference(recipe: Path, rho: float = 0.05) -> dict[str, torch.Tensor]:
    """SAM as two ranks take it without an all-reduce in the ascent pass, written from the
    paper's equations (Foret et al. 2021, m-sharpness with m = each rank's share): per share h
    of the batch, e_h = rho g_h / ||g_h||, g^_h = grad L_h(w + e_h); the descent gradient is
    sum_h (n_h / n) g^_h, then SGD with momentum 0.9 (torch's rule)."""
    r = load_recipe(recipe)
    exp = build(r)
    model, loss_fn = exp.model, torch.nn.functional.cross_entropy
    params = list(model.parameters())
    momentum = [torch.zeros_like(p) for p in params]
    for epoch in range(r.train.epochs):
        for x, y in exp.loader.epoch(epoch):
            descent = [torch.zeros_like(p) for p in params]
            for rank in range(2):
                part = share_of(len(y), rank, 2)
                xh, yh = x[part], y[part]
                g = torch.autograd.grad(loss_fn(model(xh), yh), params)
                norm = torch.sqrt(sum((t * t).sum() for t in g))
                with torch.no_grad():
                    for p, t in zip(params, g, strict=True):
                        p.add_(t, alpha=rho / norm.item())
                g_hat = torch.autograd.grad(loss_fn(model(xh), yh), params)
                with torch.no_grad():
                    for p, t in zip(params, g, strict=True):
                        p.sub_(t, alpha=rho / norm.item())
                    for d, t in zip(descent, g_hat, strict=True):
                        d.add_(t, alpha=len(yh) / len(y))
            with torch.no_grad():
                for p, b, d in zip(params, momentum, descent, strict=True):
                    b.mul_(0.9).add_(d)
                    p.sub_(b, alpha=r.optimizer.lr)
    return {k: v.detach() for k, v in model.state_dict().items()}


def test_sam_ascent_without_all_reduce_is_m_sharpness(
    recipe: Path, one_process: dict[str, Path]
) -> None:
    """The default: each rank perturbs with its own gradient (no all-reduce in pass 1)."""
    run = _train(recipe, recipe.parent / "two-sam-local", ["--set", "optimizer.sam.policy=sam"], 2)
    weights = load_file(str(run / "model.safetensors"))
    reference = _m_sharpness_reference(recipe)
    gap = max((weights[k] - reference[k]).abs().max().item() for k in reference)
    assert gap < TOL, f"2-rank SAM differs from the m-sharpness equations by {gap}"
    global_batch = load_file(str(one_process["sam"] / "model.safetensors"))
    apart = max((weights[k] - global_batch[k]).abs().max().item() for k in weights)
    assert apart > 1e-6  # so the test above could fail: per-rank ascent is another method


def test_killed_rank_stops_the_job_and_resume_continues(recipe: Path, tmp_path: Path) -> None:
    """Rank 1 SIGKILLs itself at its second checkpoint (step 34 of 102; the crash hook of
    `trainlab.durable`, so the instant is the same on any machine): the job exits non-zero
    within 60 s with one line naming the rank; `--resume` with 2 processes then finishes it,
    bit for bit the run that was never killed; another world size is refused in one line."""
    long = ["--set", "train.epochs=6", "--set", "train.checkpoint_every_steps=17"]
    run_dir = tmp_path / "killed"
    args = ["train", str(recipe), "--run-dir", str(run_dir), "--quiet", *long, "--nproc", "2"]
    env = {**os.environ, "TRAINLAB_CRASH_AT": "rank1:checkpoint#2"}
    started = time.monotonic()
    job = subprocess.run(  # noqa: S603 - a fixed argument list
        [sys.executable, "-m", "trainlab.cli", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert time.monotonic() - started < 60
    assert job.returncode != 0
    lines = job.stderr.strip().splitlines()
    assert len(lines) == 1, job.stderr
    assert "rank 1 was killed by SIGKILL" in lines[0] and "--resume" in lines[0]
    assert not (run_dir / "result.json").exists()  # it really stopped mid-run
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "step-000000017"

    refused = _cli(["train", "--resume", str(run_dir)], tmp_path)
    assert refused.returncode == 1
    assert (
        refused.stderr.strip().splitlines()
        == [line for line in refused.stderr.strip().splitlines() if "--nproc 2" in line]
        and "2 process" in refused.stderr
    )

    resumed = _cli(["train", "--resume", str(run_dir), "--quiet", "--nproc", "2"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = _train(recipe, tmp_path / "whole", long, 2)
    a, b = (load_file(str(d / "model.safetensors")) for d in (run_dir, whole))
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run is not bit-identical"


def test_batch_that_does_not_divide_is_refused_before_any_worker(
    recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(recipe), "--nproc", "3", "--run-dir", "/nonexistent/x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "100 does not divide over 3 processes" in err[0]
    assert not Path("/nonexistent/x").exists()


@pytest.mark.parametrize(
    ("sets", "size", "expected"),
    [
        ([], 100, "has 51 example.s., fewer than the 100 processes"),  # 1651 rows
        (["train.sync_batchnorm=true"], 2, "GPUs only"),
        (["optimizer.name=natural_gradient"], 2, "use one process"),
        ([], 3, "does not divide over 3"),
    ],
)
def test_what_cannot_train_across_ranks_is_one_line(
    recipe: Path, sets: list[str], size: int, expected: str
) -> None:
    exp = build(load_recipe(recipe, sets))
    with pytest.raises(RecipeError, match=expected) as err:
        check_world(exp, World(rank=0, size=size))
    assert "\n" not in str(err.value)


def test_resume_with_another_world_size_is_refused() -> None:
    with pytest.raises(RecipeError, match="resume with --nproc 2"):
        restore_world(World(), {"size": 2, "rng": None}, "runs/x")
    with pytest.raises(RecipeError, match="resume with --nproc 1"):
        restore_world(World(0, 2), None, "runs/x")


def test_shards_make_up_each_global_batch() -> None:
    """Every rank draws the same permutation; their shares, in rank order, are the batch."""
    split = TensorSplit(torch.arange(103.0).reshape(-1, 1), torch.arange(103))
    whole = InMemoryLoader(split, 20, seed=5)
    parts = [whole.sharded(r, 3) for r in range(3)]
    for epoch in range(2):
        batches = zip(whole.epoch(epoch), *(p.epoch(epoch) for p in parts), strict=True)
        for (_, y), *shares in batches:
            assert torch.equal(torch.cat([s[1] for s in shares]), y)
            sizes = [len(s[1]) for s in shares]
            assert max(sizes) - min(sizes) <= 1
    assert [share_of(7, r, 3) for r in range(3)] == [slice(0, 3), slice(3, 5), slice(5, 7)]


def _rank_pid(rank: int, run_dir: Path, deadline: float) -> int:
    """The pid of the torchrun worker with RANK=`rank` training in `run_dir`."""
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                env = (proc / "environ").read_bytes().split(b"\0")
            except OSError:  # not a process, or gone
                continue
            if str(run_dir).encode() in cmd and f"RANK={rank}".encode() in env:
                return int(proc.name)
        time.sleep(0.05)
    raise AssertionError(f"no rank {rank} worker appeared")


def test_ctrl_c_on_one_rank_stops_every_rank_at_the_same_step(recipe: Path, tmp_path: Path) -> None:
    """SIGINT to rank 1 alone: the stop flag rides on the step's all-reduce, so rank 0 stops
    after the same step, the checkpoint of that step is written and the job exits 130 with
    rank 0's one line (resume command included)."""
    run_dir = tmp_path / "interrupted"
    # 2000 epochs would take minutes: it is stopped long before
    args = ["train", str(recipe), "--run-dir", str(run_dir), "--quiet", "--nproc", "2",
            "--set", "train.epochs=2000"]  # fmt: skip
    job = subprocess.Popen(  # noqa: S603 - a fixed argument list
        [sys.executable, "-m", "trainlab.cli", *args], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        victim = _rank_pid(1, run_dir, deadline)
        while not (run_dir / "checkpoints" / "LATEST").is_file():
            assert time.monotonic() < deadline and job.poll() is None, "no checkpoint"
            time.sleep(0.05)
        os.kill(victim, signal.SIGINT)
        _, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stopped: interrupted at step "), err
    step = int(lines[0].split("interrupted at step ")[1].split(";")[0])
    assert lines[0].endswith(f"--resume {run_dir} --nproc 2")
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == f"step-{step:09d}"
