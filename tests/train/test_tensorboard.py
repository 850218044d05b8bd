"""TensorBoardLogger: the event files hold exactly the values `fit` reported, read back with
TensorBoard's own reader and served by a real TensorBoard server; hparams reach the HParams
plugin; a missing tensorboard package gives one clear error."""

from __future__ import annotations

import copy
import importlib
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.nn import mlp
from trainlab.train import Hooks, Position, fit
from trainlab.train.tensorboard import MISSING, TensorBoardLogger, flatten_hparams

EPOCHS, STEPS_PER_EPOCH = 3, 7  # 200 samples in batches of 32
HPARAMS = {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "widths": (16,), "seed": 0}


def blobs(n: int = 200, seed: int = 0) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) + 2.0 * F.one_hot(y, 4).float()
    return TensorSplit(x, y)


class Collect(Hooks):
    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_epoch_end(self, record):
        self.epochs.append(record.as_dict())


def train(log_dir: Path, epochs: int = EPOCHS, **logger_kwargs) -> tuple[list[dict], list[str]]:
    """Train a tiny MLP with a logger; return the epoch records and the parameter names."""
    torch.manual_seed(0)
    model = mlp((4,), 3, widths=(16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    logger = TensorBoardLogger(log_dir, model=model, optimizer=opt, **logger_kwargs)
    collect = Collect()
    loader = InMemoryLoader(blobs(), 32, seed=5)
    fit(model, loader, opt, F.cross_entropy, epochs=epochs, val=blobs(60, seed=1),
        callbacks=[logger, collect])  # fmt: skip
    return collect.epochs, [name for name, _ in model.named_parameters()]


def accumulate(log_dir: Path):
    module = importlib.import_module(
        "tensorboard.backend.event_processing.event_accumulator"
    )  # a dev dependency: fail, never skip
    guidance = {"scalars": 0, "histograms": 0, "tensors": 0}
    acc = module.EventAccumulator(str(log_dir), size_guidance=guidance)
    acc.Reload()
    return acc


def assert_series(points: list[tuple[int, float]], epochs: list[dict], field: str) -> None:
    assert [step for step, _ in points] == [e["step"] for e in epochs]
    for (_, value), e in zip(points, epochs, strict=True):
        assert value == pytest.approx(e[field], rel=1e-6)


def test_event_files_hold_the_values_fit_reported(tmp_path: Path) -> None:
    epochs, names = train(tmp_path)
    acc = accumulate(tmp_path)
    assert [e["step"] for e in epochs] == [7, 14, 21]
    for tag, field in [("train/loss", "train_loss"), ("train/acc", "train_acc"),
                       ("val/loss", "val_loss"), ("val/acc", "val_acc")]:  # fmt: skip
        assert_series([(s.step, s.value) for s in acc.Scalars(tag)], epochs, field)
    steps = list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    for tag in ("train/step_loss", "lr", "momentum"):
        assert [s.step for s in acc.Scalars(tag)] == steps
    assert [s.value for s in acc.Scalars("momentum")] == pytest.approx([0.9] * len(steps))
    histograms = set(acc.Tags()["histograms"])
    for name in names:
        assert {f"weights/{name}", f"grads/{name}"} <= histograms
        assert [h.step for h in acc.Histograms(f"weights/{name}")] == [7, 14, 21]
        assert len(acc.Scalars(f"weight_norm/{name}")) == EPOCHS


def test_hparams_reach_the_hparams_plugin(tmp_path: Path) -> None:
    plugin_data = importlib.import_module(
        "tensorboard.plugins.hparams.plugin_data_pb2"
    )  # a dev dependency: fail, never skip
    epochs, _ = train(tmp_path, hparams=HPARAMS)
    acc = accumulate(tmp_path)
    content = acc.PluginTagToContent("hparams")
    start = plugin_data.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["optim.lr"].number_value == pytest.approx(0.1)
    assert hparams["optim.name"].string_value == "sgd"
    assert hparams["widths"].string_value == "(16,)"
    final = acc.Scalars("hparam/final_val_acc")
    assert final[-1].value == pytest.approx(epochs[-1]["val_acc"], rel=1e-6)
    assert acc.Scalars("hparam/final_val_loss")[-1].value == pytest.approx(
        epochs[-1]["val_loss"], rel=1e-6
    )


def test_flatten_hparams_dots_nested_keys_and_stringifies_other_values() -> None:
    flat = flatten_hparams({"a": {"b": {"c": 1}}, "d": None, "e": True, "f": [1, 2]})
    assert flat == {"a.b.c": 1, "d": "None", "e": True, "f": "[1, 2]"}


def next_second() -> None:
    """Wait until the wall-clock second changes: event file names start with it, and TensorBoard
    reads a directory's files in name order, as it would a resume in a later process."""
    now = int(time.time())
    while int(time.time()) == now:
        time.sleep(0.01)


def test_a_resume_replaces_the_steps_logged_after_its_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = mlp((4,), 3, widths=(16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader, collect = InMemoryLoader(blobs(), 32, seed=5), Collect()

    def run(epochs: int, position: Position | None) -> Position:
        next_second()
        logger = TensorBoardLogger(tmp_path, model=model, histogram_every=2)
        return fit(model, loader, opt, F.cross_entropy, epochs=epochs, position=position,
                   callbacks=[logger, collect])  # fmt: skip

    pos = run(2, None)
    saved = copy.deepcopy((model.state_dict(), opt.state_dict(), pos.state_dict()))
    run(3, pos)  # a second fit continues; say the run then dies before its next checkpoint
    model.load_state_dict(saved[0])
    opt.load_state_dict(saved[1])
    collect.epochs = collect.epochs[:2]
    run(3, Position.from_state_dict(saved[2]))  # resumed from the epoch-2 checkpoint

    acc = accumulate(tmp_path)
    assert [s.step for s in acc.Scalars("train/step_loss")] == list(range(1, 22))
    assert_series([(s.step, s.value) for s in acc.Scalars("train/loss")], collect.epochs,
                  "train_loss")  # fmt: skip
    assert [h.step for h in acc.Histograms("weights/1.weight")] == [14]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def get_json(port: int, path: str, **query: str):
    url = f"http://127.0.0.1:{port}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with OPENER.open(url, timeout=5) as response:
        return json.loads(response.read())


def poll(server: subprocess.Popen, port: int, expected: int, deadline: float) -> list:
    """The served val/loss points, once the server has loaded all `expected` of them."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"tensorboard exited with code {server.returncode}")
        try:
            tags = get_json(port, "/data/plugin/scalars/tags")
            runs = [run for run, run_tags in tags.items() if "val/loss" in run_tags]
            if runs:
                points = get_json(port, "/data/plugin/scalars/scalars", run=runs[0], tag="val/loss")
                if len(points) >= expected:
                    return points
        except (OSError, ValueError):  # not listening yet, or answered while starting up
            pass
        time.sleep(0.5)
    raise TimeoutError(f"tensorboard did not serve {expected} val/loss points in time")


def serve_and_fetch(log_dir: Path, expected: int, log: Path) -> list:
    """Start a TensorBoard server on `log_dir` and return its val/loss points; a port taken
    between choosing and binding (the server exits) means another try on a new port."""
    for _attempt in range(3):
        port = free_port()
        args = [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir),
                "--host", "127.0.0.1", "--port", str(port), "--load_fast=false"]  # fmt: skip
        with log.open("ab") as out:
            server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            return poll(server, port, expected, deadline=time.monotonic() + 60)
        except RuntimeError:
            continue
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
    raise RuntimeError(f"tensorboard did not start; its output:\n{log.read_text()}")


def test_a_real_tensorboard_server_serves_the_logged_values(tmp_path: Path) -> None:
    importlib.import_module("tensorboard.main")  # a dev dependency: fail, never skip
    epochs, _ = train(tmp_path / "logs" / "run1", hparams=HPARAMS)
    points = serve_and_fetch(tmp_path / "logs", len(epochs), tmp_path / "tensorboard.log")
    assert [step for _, step, _ in points] == [e["step"] for e in epochs]
    for (wall_time, _, value), e in zip(points, epochs, strict=True):
        assert wall_time > 0
        assert value == pytest.approx(e["val_loss"], rel=1e-6)


def test_missing_tensorboard_raises_one_clear_line(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError) as info:
        TensorBoardLogger(tmp_path)
    assert str(info.value) == (
        "train.tensorboard needs the tensorboard package: pip install 'trainlab[tensorboard]'"
    )
    assert str(info.value) == MISSING and "\n" not in MISSING
    assert info.value.__suppress_context__
    assert not any(tmp_path.iterdir())


def test_tensorboard_logdir_runs_serves_a_recipe_runs_metrics(tmp_path: Path) -> None:
    """`train.tensorboard: true` in a recipe, then `tensorboard --logdir runs/`: the served
    val/loss points are metrics.jsonl's epoch rows."""
    from trainlab.run.config import validate_recipe
    from trainlab.run.runner import train_recipe

    runs = tmp_path / "runs"
    recipe = validate_recipe({
        "name": "tb", "runs_dir": str(runs),
        "diagnose": {"probes": True, "interval": 5, "report": False},
        "data": {"name": "digits", "batch_size": 64}, "model": {"name": "mlp", "widths": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"name": "constant"}, "train": {"epochs": 3, "threads": 1, "tensorboard": True},
    })  # fmt: skip
    result = train_recipe(recipe, quiet=True)
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    points = serve_and_fetch(runs, len(epochs), tmp_path / "tensorboard.log")
    assert [step for _, step, _ in points] == [e["step"] for e in epochs]
    for (_, _, value), e in zip(points, epochs, strict=True):
        assert value == pytest.approx(e["val_loss"], rel=1e-6)
    # the probes' per-layer statistics and activation histograms, as probes.json has them
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainlab.diagnose.probe_file import read_probes

    probes = read_probes(result.run_dir / "probes.json")
    board = EventAccumulator(str(result.run_dir / "tensorboard"),
                             size_guidance={"scalars": 0, "histograms": 0})  # fmt: skip
    board.Reload()
    layer, stats = next(iter(probes["layers"].items()))
    means = board.Scalars(f"probes/{layer}/mean")
    assert [e.step for e in means] == list(probes["steps"])
    assert [e.value for e in means] == pytest.approx(list(stats["mean"]), rel=1e-6)
    hists = board.Histograms(f"activations/{layer}")
    assert [h.step for h in hists] == list(probes["steps"])
    counts = [sum(h.histogram_value.bucket) for h in hists]
    assert counts == pytest.approx([float(sum(row)) for row in stats["hist"]])
