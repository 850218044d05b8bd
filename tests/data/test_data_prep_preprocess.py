"""Centering, PCA, PCA/ZCA whitening: fitted on train only, checked against formulas and
scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SkPCA

from trainlab.data import (
    PCA,
    Centerer,
    Standardizer,
    TensorSplit,
    load_preprocessor,
    make_preprocessor,
)


def correlated_gaussian(n: int, d: int, seed: int) -> torch.Tensor:
    """Rows ~ N(m, A Aᵀ) with A = Q diag(s), s in [1, 3]: full rank, eigenvalues in [1, 9]."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    a = q * torch.linspace(1.0, 3.0, d, dtype=torch.float64)
    m = torch.randn(d, generator=g, dtype=torch.float64) * 5
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ a.T + m).float()


def cov(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(len(x), -1).double()
    flat = flat - flat.mean(0)
    return flat.T @ flat / len(flat)


def digits() -> torch.Tensor:
    return torch.tensor(load_digits().data, dtype=torch.float32)


@pytest.mark.parametrize("mode", ["pca_whiten", "zca_whiten"])
def test_whitened_training_covariance_is_identity(mode: str) -> None:
    x = correlated_gaussian(4000, 24, seed=0)
    white = PCA.fit(x, mode, eps=1e-5).apply(x)
    assert white.dtype == torch.float32
    assert (cov(white) - torch.eye(24, dtype=torch.float64)).abs().max() < 1e-3
    assert white.double().mean(0).abs().max() < 1e-4


def test_whitened_images_covariance_identity_and_zca_keeps_shape() -> None:
    # 3 x 4 x 4 "images" (D = 48) from a full-rank correlated Gaussian
    x = correlated_gaussian(6000, 48, seed=1).reshape(-1, 3, 4, 4)
    zca = PCA.fit(x, "zca_whiten", eps=1e-5)
    out = zca.apply(x)
    assert out.shape == x.shape
    assert (cov(out) - torch.eye(48, dtype=torch.float64)).abs().max() < 1e-3
    pw = PCA.fit(x, "pca_whiten", k=20, eps=1e-5).apply(x)
    assert pw.shape == (6000, 20)
    assert (cov(pw) - torch.eye(20, dtype=torch.float64)).abs().max() < 1e-3


def test_zca_matrix_is_symmetric_and_formula() -> None:
    x = correlated_gaussian(500, 10, seed=2)
    zca = PCA.fit(x, "zca_whiten", eps=0.1)
    w = zca.matrix.double()
    assert torch.allclose(w, w.T, atol=1e-6)
    # W = Σ^(-1/2) regularised: U diag(1/sqrt(λ+ε)) Uᵀ from numpy's eigh of the same covariance
    c = cov(x).numpy()
    lam, u = np.linalg.eigh(c)
    expected = u @ np.diag(1 / np.sqrt(lam + 0.1)) @ u.T
    np.testing.assert_allclose(w.numpy(), expected, atol=1e-5)


def test_pca_matches_sklearn_up_to_sign() -> None:
    x = digits()
    ours = PCA.fit(x, "pca", k=12)
    sk = SkPCA(n_components=12).fit(x.numpy())
    n = len(x)
    # sklearn's explained_variance_ uses ddof 1; ours is the population covariance (ddof 0)
    np.testing.assert_allclose(
        ours.eigenvalues.numpy(), sk.explained_variance_ * (n - 1) / n, rtol=1e-6
    )
    np.testing.assert_allclose(
        ours.explained_variance_ratio.numpy(), sk.explained_variance_ratio_, rtol=1e-6
    )
    proj, sk_proj = ours.apply(x).double().numpy(), sk.transform(x.numpy())
    signs = np.sign((proj * sk_proj).sum(0))
    assert set(signs) == {1.0} or set(signs) == {-1.0, 1.0}
    np.testing.assert_allclose(proj * signs, sk_proj, atol=1e-3)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.95])
def test_variance_fraction_picks_sklearn_count(fraction: float) -> None:
    x = digits()
    ours = PCA.fit(x, "pca", variance=fraction)
    assert ours.k == SkPCA(n_components=fraction).fit(x.numpy()).n_components_
    assert float(ours.explained_variance_ratio.sum()) >= fraction
    assert PCA.fit(x, "pca", variance=1.0).k == 64


def test_fitted_on_train_only() -> None:
    x = correlated_gaussian(2000, 8, seed=3)
    train, test = x[:1000], x[1000:] * 2 + 1
    fitted = PCA.fit(train, "pca_whiten")
    assert not torch.allclose(fitted.mean, PCA.fit(test, "pca_whiten").mean)
    # applying to test uses train statistics: the test covariance is not the identity
    assert (cov(fitted.apply(test)) - torch.eye(8, dtype=torch.float64)).abs().max() > 0.5
    center = Centerer.fit(train)
    torch.testing.assert_close(center.mean, train.mean(0, keepdim=True))
    assert not torch.allclose(center.mean, Centerer.fit(test).mean)


@pytest.mark.parametrize("mode", ["mean_image", "per_channel"])
def test_centering_gives_zero_training_mean(mode: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 5, 5, generator=g) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    c = Centerer.fit(x, mode)
    out = c.apply(x)
    dims = (0,) if mode == "mean_image" else (0, 2, 3)
    assert out.double().mean(dim=dims).abs().max() < 1e-6
    assert c.mean.shape == ((1, 3, 5, 5) if mode == "mean_image" else (1, 3, 1, 1))
    # centering leaves the spread alone (unlike Standardizer)
    torch.testing.assert_close(out.std(dim=dims), x.std(dim=dims))


def test_centering_uint8_images_gives_float() -> None:
    x = torch.tensor([[[[0, 255]]], [[[3, 0]]]], dtype=torch.uint8)  # (2, 1, 1, 2)
    out = Centerer.fit(x, "mean_image").apply(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[[[-1.5, 127.5]]], [[[1.5, -127.5]]]]))


def test_make_preprocessor_by_name_and_fit_apply() -> None:
    x = correlated_gaussian(300, 6, seed=4)
    train, val = TensorSplit(x[:200], torch.arange(200)), TensorSplit(x[200:], torch.arange(100))
    kinds = {
        "center_mean_image": Centerer,
        "center_per_channel": Centerer,
        "standardize": Standardizer,
        "pca": PCA,
        "pca_whiten": PCA,
        "zca_whiten": PCA,
    }
    for name, kind in kinds.items():
        fitted, (tr, va) = make_preprocessor(name).fit_apply(train, val)
        assert isinstance(fitted, kind)
        torch.testing.assert_close(tr.y, train.y)
        torch.testing.assert_close(va.x, fitted.apply(val.x))
        again = load_preprocessor(fitted.state_dict())
        torch.testing.assert_close(again.apply(val.x), va.x)
    assert make_preprocessor("pca", k=3).fit(x).apply(x).shape == (300, 3)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make_preprocessor("zca"), "unknown preprocessor 'zca' (did you mean 'pca'?)"),
        (
            lambda: make_preprocessor("pca_whiten", variance=0.0),
            "pca variance must be a fraction in (0, 1]",
        ),
        (
            lambda: make_preprocessor("pca", variance=1.5),
            "pca variance must be a fraction in (0, 1]",
        ),
        (lambda: make_preprocessor("zca_whiten", eps=-1e-3), "whitening eps must be a float >= 0"),
        (lambda: make_preprocessor("pca", k=0), "pca k must be an int >= 1"),
        (lambda: make_preprocessor("pca", k=2, variance=0.5), "pca takes k or variance, not both"),
        (lambda: make_preprocessor("pca", kk=2), "unknown option 'kk'"),
        (lambda: make_preprocessor("standardize", mode="pixel"), "standardize mode must be one of"),
        (
            lambda: make_preprocessor("pca", k=65).fit(digits()),
            "pca k must be in 1..64 (the feature count), got 65",
        ),
        (
            lambda: PCA.fit(digits(), "pca").apply(torch.zeros(3, 63)),
            "cannot apply to x of shape (3, 63)",
        ),
        (
            lambda: Centerer.fit(digits(), "global"),
            "center mode must be one of mean_image, per_channel",
        ),
    ],
)
def test_bad_input_is_one_line(build, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build()
    text = str(info.value)
    assert message in text and "\n" not in text
