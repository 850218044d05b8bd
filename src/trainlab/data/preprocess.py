"""Preprocessing fitted on the training split: centering, PCA, PCA and ZCA whitening.

Every transform is fitted once on training inputs and then applied unchanged to every split,
so no statistic of validation or test data leaks into training (the rule `Standardizer`
follows; CS231n "Data preprocessing"). Shapes: X is (N, ...) and PCA/whitening work on the
flattened features (N, D), D = prod(x.shape[1:]), as in CS231n where X is [N x D].

The lecture advice (seed 000): for images, center only — subtract the mean image (AlexNet) or
the per-channel mean (VGGNet); PCA and whitening are uncommon for images but are here for the
experiments and for tabular data (seed 003, "statistical whitening transform").

`make_preprocessor(name, **options)` builds one by name for recipes; `.fit(train_x)` returns
the fitted transform, whose `apply(x)` maps any split and whose `state_dict()` records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainlab.names import closest_name_error

from .bundle import TensorSplit
from .standardize import MODES as STANDARDIZE_MODES
from .standardize import Standardizer, _reduce_dims, check_broadcast_shape

CENTER_MODES = {"mean_image": "per_feature", "per_channel": "per_channel"}
PCA_MODES = ("pca", "pca_whiten", "zca_whiten")
_CHUNK_ROWS = 8192  # rows per float64 covariance chunk: bounds the float64 copy of X


def _check_shape(kind: str, fitted: tuple[int, ...], x: torch.Tensor) -> None:
    if tuple(x.shape[1:]) != fitted:
        raise ValueError(
            f"{kind} fitted on samples of shape {fitted} cannot apply to x of shape "
            f"{tuple(x.shape)}"
        )


@dataclass(frozen=True)
class Centerer:
    """x -> x - mean, the mean taken over the training split (CS231n "center only").

    mode "mean_image": one mean per position of x.shape[1:], e.g. a [1, 28, 28] mean image
    (AlexNet). mode "per_channel": one mean per channel, dim 1 (VGGNet); for (N, D) tables
    both are the per-feature mean. Unlike `Standardizer`, the variance is left alone.
    """

    mode: str
    mean: torch.Tensor  # (1, *x.shape[1:]) for mean_image, (1, C, 1, ..., 1) for per_channel

    @classmethod
    def fit(cls, x: torch.Tensor, mode: str = "mean_image") -> Centerer:
        """The mean of `x` (the training split) for `mode`."""
        if mode not in CENTER_MODES:
            raise ValueError(f"center mode must be one of {', '.join(CENTER_MODES)}; got {mode!r}")
        dims = _reduce_dims(x, CENTER_MODES[mode])
        dtype = x.dtype if x.is_floating_point() else torch.float32  # uint8 images -> float
        mean = x.to(torch.float64).mean(dim=dims, keepdim=True).to(dtype)
        return cls(mode, mean)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """x - mean as a new tensor; `x` must have the fitted per-sample shape."""
        check_broadcast_shape(f"Centerer ({self.mode})", self.mean, x)
        return x - self.mean

    def state_dict(self) -> dict:
        """{"kind": "center", "mode", "mean"}."""
        return {"kind": "center", "mode": self.mode, "mean": self.mean.clone()}

    @classmethod
    def from_state_dict(cls, state: dict) -> Centerer:
        """Rebuild a Centerer saved by `state_dict`."""
        if state.get("mode") not in CENTER_MODES:
            raise ValueError(
                f"state_dict mode must be one of {', '.join(CENTER_MODES)}; "
                f"got {state.get('mode')!r}"
            )
        return cls(state["mode"], state["mean"].clone())


def _check_pca_options(k: int | None, variance: float | None, eps: float) -> None:
    """Range checks that need no data: k >= 1, variance in (0, 1], eps >= 0."""
    if k is not None and variance is not None:
        raise ValueError(f"pca takes k or variance, not both; got k={k}, variance={variance}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"pca k must be an int >= 1 (number of components), got {k!r}")
    if variance is not None and (
        isinstance(variance, bool)
        or not isinstance(variance, int | float)
        or not 0.0 < variance <= 1.0
    ):
        raise ValueError(
            f"pca variance must be a fraction in (0, 1] of the total variance, got {variance!r}"
        )
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0.0:
        raise ValueError(f"whitening eps must be a float >= 0, got {eps!r}")


def covariance(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), covariance (D, D)) of the flattened rows of `x`, in float64.

    Cov = Xcᵀ Xc / N with Xc = X - mean (population covariance, ddof 0, as CS231n's
    ``np.dot(X.T, X) / X.shape[0]``). Accumulated over row chunks so only a chunk is held in
    float64 at a time.
    """
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[0]
    mean = flat.sum(dim=0, dtype=torch.float64) / n
    cov = torch.zeros(flat.shape[1], flat.shape[1], dtype=torch.float64, device=x.device)
    for lo in range(0, n, _CHUNK_ROWS):
        chunk = flat[lo : lo + _CHUNK_ROWS].to(torch.float64) - mean
        cov.addmm_(chunk.T, chunk)
    return mean, cov / n


def _num_components(eigenvalues: torch.Tensor, k: int | None, variance: float | None) -> int:
    """k itself, or the fewest leading components whose explained variance exceeds `variance`
    (scikit-learn's rule for a float n_components), or all D components."""
    d = eigenvalues.shape[0]
    if k is not None:
        if k > d:
            raise ValueError(f"pca k must be in 1..{d} (the feature count), got {k}")
        return k
    if variance is None or variance >= 1.0:
        return d
    ratio = torch.cumsum(eigenvalues, 0) / eigenvalues.sum()
    return min(
        int(torch.searchsorted(ratio, torch.tensor(variance, dtype=ratio.dtype), right=True)) + 1, d
    )


@dataclass(frozen=True)
class PCA:
    """PCA projection, PCA whitening or ZCA whitening of flattened features (CS231n).

    With Xc = X - μ, the training covariance Σ = Xcᵀ Xc / N = U diag(λ) Uᵀ (eigh, float64,
    λ descending) and U_k its k leading columns:

    - "pca":         x_rot   = Xc U_k                          -> (N, k)
    - "pca_whiten":  x_white = Xc U_k diag(1/√(λ_k + ε))       -> (N, k)
    - "zca_whiten":  x_zca   = Xc U_k diag(1/√(λ_k + ε)) U_kᵀ  -> x.shape (Bell & Sejnowski
      1997; the whitening closest to the input, so images still look like images)

    ε keeps near-zero eigenvalues from blowing up noise (CS231n uses 1e-5). Whitened training
    data has covariance diag(λ/(λ+ε)) ≈ I. Statistics are float64; `apply` returns float32.
    `matrix` is the (D, k) or (D, D) map applied after centering; for ZCA it is symmetric.
    """

    mode: str
    input_shape: tuple[int, ...]
    mean: torch.Tensor  # (D,) float64
    components: torch.Tensor  # U_k, (D, k) float64, columns = principal axes
    eigenvalues: torch.Tensor  # λ_k, (k,) float64, descending; variance along each axis
    total_variance: float  # trace Σ = Σ all D eigenvalues
    eps: float
    matrix: torch.Tensor = field(repr=False)  # (D, k) or (D, D), float32

    @classmethod
    def fit(
        cls,
        x: torch.Tensor,
        mode: str = "pca",
        *,
        k: int | None = None,
        variance: float | None = None,
        eps: float = 1e-5,
    ) -> PCA:
        """Fit on `x` (the training split): k components, or enough for `variance`, or all."""
        if mode not in PCA_MODES:
            raise closest_name_error("pca mode", mode, PCA_MODES)
        _check_pca_options(k, variance, eps)
        if x.ndim < 2 or x.shape[0] < 2:
            raise ValueError(f"PCA needs an (N, ...) tensor with N >= 2, got {tuple(x.shape)}")
        mean, cov = covariance(x)
        lam, vecs = torch.linalg.eigh(cov)  # ascending
        lam, vecs = lam.flip(0).clamp_min(0.0), vecs.flip(1)
        n = _num_components(lam, k, variance)
        return cls.from_parts(
            mode, tuple(x.shape[1:]), mean, vecs[:, :n], lam[:n], float(lam.sum()), eps
        )

    @classmethod
    def from_parts(
        cls,
        mode: str,
        input_shape: tuple[int, ...],
        mean: torch.Tensor,
        components: torch.Tensor,
        eigenvalues: torch.Tensor,
        total_variance: float,
        eps: float,
    ) -> PCA:
        """Assemble from fitted statistics, computing the applied `matrix`."""
        matrix = components
        if mode != "pca":
            matrix = components / torch.sqrt(eigenvalues + eps)
        if mode == "zca_whiten":
            matrix = matrix @ components.T
        return cls(
            mode,
            tuple(input_shape),
            mean,
            components,
            eigenvalues,
            total_variance,
            float(eps),
            matrix.to(torch.float32),
        )

    @property
    def k(self) -> int:
        """Number of components kept."""
        return int(self.components.shape[1])

    @property
    def explained_variance_ratio(self) -> torch.Tensor:
        """λ_i / trace Σ for the kept components, (k,) float64."""
        return self.eigenvalues / self.total_variance

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(x - μ) @ matrix in float32: (N, k) for pca/pca_whiten, x's shape for zca_whiten."""
        _check_shape(f"PCA ({self.mode})", self.input_shape, x)
        flat = x.reshape(x.shape[0], -1).to(torch.float32)
        out = (flat - self.mean.to(torch.float32)) @ self.matrix
        return out.reshape(x.shape) if self.mode == "zca_whiten" else out

    def state_dict(self) -> dict:
        """Everything `from_state_dict` needs (tensors and plain values)."""
        return {
            "kind": "pca",
            "mode": self.mode,
            "input_shape": list(self.input_shape),
            "mean": self.mean.clone(),
            "components": self.components.clone(),
            "eigenvalues": self.eigenvalues.clone(),
            "total_variance": self.total_variance,
            "eps": self.eps,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> PCA:
        """Rebuild a PCA saved by `state_dict`."""
        if state.get("mode") not in PCA_MODES:
            raise ValueError(
                f"state_dict mode must be one of {', '.join(PCA_MODES)}; got {state.get('mode')!r}"
            )
        return cls.from_parts(
            state["mode"],
            tuple(state["input_shape"]),
            state["mean"].clone(),
            state["components"].clone(),
            state["eigenvalues"].clone(),
            float(state["total_variance"]),
            float(state["eps"]),
        )


Fitted = Centerer | Standardizer | PCA

# name -> (accepted options with defaults)
PREPROCESSORS: dict[str, dict[str, object]] = {
    "center_mean_image": {},
    "center_per_channel": {},
    "standardize": {"mode": "per_channel"},
    "pca": {"k": None, "variance": None},
    "pca_whiten": {"k": None, "variance": None, "eps": 1e-5},
    "zca_whiten": {"k": None, "variance": None, "eps": 1e-5},
}


@dataclass(frozen=True)
class Preprocessor:
    """A named, not yet fitted, preprocessing step: `fit(train_x)` returns the fitted one."""

    name: str
    options: dict[str, object]

    def fit(self, train_x: torch.Tensor) -> Fitted:
        """Statistics from `train_x` only; apply the result to every split."""
        if self.name == "center_mean_image":
            return Centerer.fit(train_x, "mean_image")
        if self.name == "center_per_channel":
            return Centerer.fit(train_x, "per_channel")
        if self.name == "standardize":
            return Standardizer.fit(train_x, str(self.options["mode"]))
        return PCA.fit(train_x, self.name, **self.options)  # type: ignore[arg-type]

    def fit_apply(
        self, train: TensorSplit, *others: TensorSplit
    ) -> tuple[Fitted, list[TensorSplit]]:
        """(fitted, [train', *others']): fit on `train.x`, transform every split's x, keep y."""
        fitted = self.fit(train.x)
        return fitted, [TensorSplit(fitted.apply(s.x), s.y) for s in (train, *others)]


def make_preprocessor(name: str, **options: object) -> Preprocessor:
    """The preprocessing step called `name` with `options`, range-checked now (before any data).

    Names: center_mean_image, center_per_channel, standardize (mode), pca (k or variance),
    pca_whiten and zca_whiten (k or variance, eps). A k above the feature count is caught by
    `fit`, the first moment the feature count is known.
    """
    if not isinstance(name, str) or name not in PREPROCESSORS:
        raise closest_name_error("preprocessor", name, PREPROCESSORS)
    defaults = PREPROCESSORS[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ValueError(f"preprocessor {name!r}: unknown option {unknown[0]!r}; valid: {valid}")
    merged = {**defaults, **options}
    if name == "standardize" and merged["mode"] not in STANDARDIZE_MODES:
        raise ValueError(
            f"standardize mode must be one of {', '.join(STANDARDIZE_MODES)}; "
            f"got {merged['mode']!r}"
        )
    if name in PCA_MODES:
        _check_pca_options(merged["k"], merged["variance"], merged.get("eps", 0.0))  # type: ignore[arg-type]
    return Preprocessor(name, merged)


def load_preprocessor(state: dict) -> Fitted:
    """Rebuild any fitted transform from its `state_dict()` (Standardizer's has no "kind")."""
    kind = state.get("kind")
    if kind == "center":
        return Centerer.from_state_dict(state)
    if kind == "pca":
        return PCA.from_state_dict(state)
    if kind is None:
        return Standardizer.from_state_dict(state)
    raise ValueError(f"preprocessor state kind must be center, pca or absent; got {kind!r}")


__all__ = [
    "CENTER_MODES",
    "PCA",
    "PCA_MODES",
    "PREPROCESSORS",
    "Centerer",
    "Preprocessor",
    "covariance",
    "load_preprocessor",
    "make_preprocessor",
]
