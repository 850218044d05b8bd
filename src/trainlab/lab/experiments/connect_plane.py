"""The mode-connectivity figure (Garipov et al. 2018, "Loss Surfaces, Mode Connectivity, and
Fast Ensembling of DNNs", Figure 1; seed 000): two independently trained networks are joined
by a low-loss quadratic Bezier curve, while the straight segment between them crosses a
barrier. The loss over the plane through the two endpoints and the curve's bend, with the
curve and the segment drawn on it; the library's curve training and plane surface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from trainlab import optim
from trainlab.data import InMemoryLoader, TensorSplit, load_dataset
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict
from trainlab.landscape.curves import evaluate_curve, make_curve, segment, train_curve
from trainlab.landscape.surface import SplitData, plane_surface
from trainlab.nn import mlp
from trainlab.train import fit, get_loss


def _digits() -> tuple[TensorSplit, TensorSplit]:
    data = load_dataset("digits")
    scale = float(data.train.x.max())
    return (TensorSplit(data.train.x / scale, data.train.y),
            TensorSplit(data.test.x / scale, data.test.y))  # fmt: skip


def _endpoint(train: TensorSplit, seed: int, epochs: int) -> nn.Module:
    torch.manual_seed(seed)
    model = mlp((1, 8, 8), 10, widths=(32,))
    opt = optim.Optimizer(model.parameters(), optim.sgd(0.1, momentum=0.9))
    fit(model, InMemoryLoader(train, 32, seed=seed), opt, get_loss("cross_entropy"), epochs=epochs)
    return model.eval()


def _flat(ps: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for p in ps])


def _unflat(v: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    return [c.view_as(p) for c, p in zip(v.split([p.numel() for p in like]), like, strict=True)]


@experiment("connect-plane", deck="seed 000 (mode connectivity); Garipov et al. 2018 Fig. 1",
            claim="two minima are joined by a low-loss curve while the straight segment "
                  "between them crosses a barrier", minutes=1.0)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    epochs, curve_epochs, grid = (10, 10, 15) if quick else (40, 40, 31)
    train, test = _digits()
    loss = get_loss("cross_entropy")
    a, b = _endpoint(train, seed, epochs), _endpoint(train, seed + 1, epochs)
    w1, w2 = [p.detach() for p in a.parameters()], [p.detach() for p in b.parameters()]
    curve = make_curve(w1, w2, "bezier", 1)
    train_curve(a, curve, InMemoryLoader(train, 32, seed=seed), loss, epochs=curve_epochs,
                lr=0.05, seed=seed)  # fmt: skip
    on_curve = evaluate_curve(a, curve, train=train, test=test, loss_fn=loss, points=21)
    straight = evaluate_curve(a, segment(w1, w2), train=train, test=test, loss_fn=loss, points=21)
    u = _flat(w2) - _flat(w1)  # plane: origin w1, d1 = w2 - w1, d2 = bend's part orthogonal
    bend = _flat([p.detach() for p in curve.points[1]]) - _flat(w1)
    alpha_b = float(bend @ u / (u @ u))
    v = bend - alpha_b * u
    alphas, betas = np.linspace(-0.2, 1.2, grid), np.linspace(-0.4, 1.4, grid)
    surface = plane_surface(a, loss, {"train": SplitData([(train.x, train.y)])},
                            (_unflat(u, w1), _unflat(v, w1)), alphas, betas)  # fmt: skip
    t = np.linspace(0, 1, 50)
    fig = Figure(figsize=(5.2, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    levels = np.quantile(surface.loss["train"], np.linspace(0, 0.95, 20))
    cs = ax.contourf(
        alphas, betas, surface.loss["train"], np.unique(levels), cmap="viridis_r", extend="max"
    )
    fig.colorbar(cs, ax=ax, label="training loss")
    ax.plot(2 * t * (1 - t) * alpha_b + t**2, 2 * t * (1 - t), "w-", label="Bezier curve")
    ax.plot([0, 1], [0, 0], "r--", label="segment")
    ax.plot([0, 1, alpha_b], [0, 0, 1], "wo", ms=4)
    ax.set(xlabel="toward w2", ylabel="toward the bend", title="Loss over the plane")
    ax.legend(fontsize=8)
    curve_max, seg_max = float(on_curve.train_loss.max()), float(straight.train_loss.max())
    ends = float(max(straight.train_loss[0], straight.train_loss[-1]))
    return Finding(
        numbers={"max train loss on the segment": seg_max, "max train loss on the curve":
                 curve_max, "endpoint train loss": ends,
                 "max test error on the segment": float(straight.test_error.max()),
                 "max test error on the curve": float(on_curve.test_error.max())},
        verdict=verdict(seg_max > 2 * ends and curve_max < (seg_max + ends) / 2),
        rule="holds if the segment's highest training loss is over twice the endpoints' (a "
             "barrier) and the curve's highest is below halfway between the endpoints' and "
             "the segment's",
        figures=[save_figure(fig, out / "connect_plane.png")],
        note=f"highest training loss: segment {seg_max:.3f}, curve {curve_max:.3f}, "
             f"endpoints {ends:.3f}.",
    )  # fmt: skip
