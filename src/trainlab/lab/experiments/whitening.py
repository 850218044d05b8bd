"""PCA and ZCA whitening of Fashion-MNIST (seed 000, CS231n "Data preprocessing": decorrelate,
then whiten; Bell & Sejnowski 1997 for ZCA): both give the training data an identity
covariance (up to the eps that keeps tiny eigenvalues from blowing up noise), and ZCA is the
whitening closest to the input, so its images still look like images."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.data import load_dataset
from trainlab.data.preprocess import PCA, covariance
from trainlab.durable import save_figure
from trainlab.lab.registry import Finding, experiment, verdict

EPS = 1e-2


def _whitened(x: torch.Tensor) -> dict[str, tuple[PCA, torch.Tensor]]:
    """PCA- and ZCA-whitening (all components) fitted on ``x``, with their outputs (N, D)."""
    out = {}
    for mode in ("pca_whiten", "zca_whiten"):
        fitted = PCA.fit(x, mode, eps=EPS)
        out[mode] = (fitted, fitted.apply(x).reshape(len(x), -1).double())
    return out


def _figure(x: torch.Tensor, white: dict, path: Path) -> Path:
    fig = Figure(figsize=(9, 5.2))
    FigureCanvasAgg(fig)
    rows = [("original", x.reshape(len(x), -1).double())]
    rows += [(m.replace("_whiten", "-whitened"), w[1]) for m, w in white.items()]
    for r, (name, data) in enumerate(rows):
        for c in range(5):
            ax = fig.add_subplot(4, 6, r * 6 + c + 1)
            ax.imshow(data[c].reshape(28, 28).numpy(), cmap="gray")
            ax.set_axis_off()
            if c == 0:
                ax.set_title(name, fontsize=8, loc="left")
    for c, (name, data) in enumerate(rows):
        ax = fig.add_subplot(4, 3, 10 + c)
        ax.imshow(covariance(data.float())[1][:80, :80].numpy(), cmap="RdBu_r")
        ax.set_axis_off()
        ax.set_title(f"covariance, {name}", fontsize=8)
    return save_figure(fig, path)


@experiment("whitening", deck="seed 000 (CS231n, data preprocessing)",
            claim="PCA and ZCA whitening make the covariance the identity; ZCA stays closest "
                  "to the images", minutes=0.3)  # fmt: skip
def run(out: Path, quick: bool, seed: int) -> Finding:
    n = 3000 if quick else 20000
    data = load_dataset("fashion_mnist").train.x
    g = torch.Generator().manual_seed(seed)
    x = data[torch.randperm(len(data), generator=g)[:n]]
    white = _whitened(x)
    numbers: dict[str, float] = {"examples": n, "eps": EPS}
    for mode, (fitted, w) in white.items():
        predicted = torch.diag(fitted.eigenvalues / (fitted.eigenvalues + EPS))
        rotated = w @ fitted.components if mode == "zca_whiten" else w  # onto the eigenbasis
        cov = covariance(rotated)[1]
        numbers[f"{mode}: max |cov - diag(lam/(lam+eps))|"] = float((cov - predicted).abs().max())
        kept = fitted.eigenvalues > 10 * EPS  # directions eps does not shrink
        numbers[f"{mode}: mean diagonal where lam > 10 eps"] = float(cov.diag()[kept].mean())
    centred = x.reshape(n, -1).double() - white["zca_whiten"][0].mean
    numbers |= {f"{m}: mean squared distance to the centred images":
                float(((w[1] - centred) ** 2).sum(1).mean()) for m, w in white.items()}  # fmt: skip
    pca_d = numbers["pca_whiten: mean squared distance to the centred images"]
    zca_d = numbers["zca_whiten: mean squared distance to the centred images"]
    off = max(numbers[f"{m}: max |cov - diag(lam/(lam+eps))|"] for m in white)
    holds = off < 1e-3 and zca_d < pca_d
    return Finding(
        numbers=numbers,
        verdict=verdict(holds),
        rule="holds if the whitened training covariance equals diag(lam/(lam+eps)) (identity "
             "up to eps) within 1e-3 for both, and ZCA's output is closer to the centred "
             "images than PCA-whitening's (mean squared distance)",
        figures=[_figure(x, white, out / "whitening.png")],
        note=f"mean squared distance to the images: ZCA {zca_d:.3g}, PCA-whitening {pca_d:.3g}.",
    )  # fmt: skip
