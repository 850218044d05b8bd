"""`schedule.plateau` in a recipe: the rate follows torch's ReduceLROnPlateau fed the same
validation losses, and the controller's state is checkpointed for resume."""

import json

import pytest
import torch

from trainlab.cli import main


def test_plateau_rates_match_torch_reduce_lr_on_plateau(tmp_path, capsys):
    sets = ["data.name=digits", "model.name=mlp", "model.widths=[64]", "optimizer.lr=0.2",
            "optimizer.momentum=0.9", "schedule.name=constant", "train.epochs=8",
            "schedule.plateau={patience: 0, reduction: 0.5}", "data.batch_size=32",
            f"runs_dir={tmp_path}"]  # fmt: skip
    argv = ["train", "--quiet", *[a for s in sets for a in ("--set", s)]]
    assert main(argv) == 0
    capsys.readouterr()
    (run,) = tmp_path.iterdir()
    epochs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["kind"] == "epoch"]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    for before, after in zip(epochs, epochs[1:], strict=False):
        reference.step(before["val_loss"])
        assert after["lr"] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
    assert epochs[-1]["lr"] < 0.2, "no plateau happened: the test did not test anything"
    state = torch.load(
        run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text() / "state.pt"
    )
    reference.step(epochs[-1]["val_loss"])  # the controller saw the last epoch too
    assert state["plateau"]["factor"] == pytest.approx(opt.param_groups[0]["lr"] / 0.2, rel=1e-12)
