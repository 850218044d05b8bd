"""Batched, seeded data augmentation on image tensors (N, C, H, W), without torchvision.

Each op draws its random numbers for the whole batch from an explicit `torch.Generator` and
transforms the whole batch at once (no per-sample Python loop), so the same generator state
gives the same batch. Ops never reorder or drop samples and never see labels: the i-th output
is a transform of the i-th input, so labels stay aligned by construction.

- random crop with padding and horizontal flip: Krizhevsky et al. 2012 (AlexNet), the
  "data augmentation" slide of seed 000; crop = pad by p, cut an H x W window at a random
  offset in [0, 2p]^2 (one gather over the padded batch).
- translation, rotation, zoom, shear: one batched affine warp per consecutive group of these
  ops (`F.affine_grid` + `F.grid_sample`, a single interpolation), the transformations of
  Keras' ImageDataGenerator shown in seed 003.
- random erasing: Zhong et al. 2020, "Random Erasing Data Augmentation" (AAAI).

`Augment([{"name": "crop", "padding": 4}, {"name": "hflip"}])` builds a pipeline from recipe
specs; `augment(x, generator)` returns a new tensor of x's shape and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from trainlab.names import closest_name_error

Step = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

AFFINE_OPS = ("translate", "rotate", "zoom", "shear")
# name -> accepted options with their defaults
AUGMENTATIONS: dict[str, dict[str, object]] = {
    "crop": {"padding": 4, "mode": "zero"},
    "hflip": {"p": 0.5},
    "vflip": {"p": 0.5},
    "translate": {"pixels": 2, "fill": "zeros", "interpolation": "bilinear"},
    "rotate": {"degrees": 15.0, "fill": "zeros", "interpolation": "bilinear"},
    "zoom": {"scale": (0.9, 1.1), "fill": "zeros", "interpolation": "bilinear"},
    "shear": {"degrees": 10.0, "fill": "zeros", "interpolation": "bilinear"},
    "erasing": {"p": 0.5, "area": (0.02, 0.4), "ratio": (0.3, 1 / 0.3), "value": 0.0},
}
CROP_MODES = ("zero", "reflect")
FILL_MODES = ("zeros", "border", "reflection")  # grid_sample padding modes
INTERPOLATIONS = ("bilinear", "nearest")
ERASING_ATTEMPTS = 10


def _check_images(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"augmentation needs images of shape (N, C, H, W), got {tuple(x.shape)}")


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """n draws from U(lo, hi) in float64 on x's device, generated on the generator's device."""
    u = torch.rand(n, generator=g, device=g.device, dtype=torch.float64)
    return (lo + (hi - lo) * u).to(like.device)


def _coin(n: int, p: float, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """(n,) bool, True with probability p."""
    return torch.rand(n, generator=g, device=g.device).to(like.device) < p


def _numpy(x: torch.Tensor) -> np.ndarray | None:
    """x as a numpy array sharing memory, or None off-CPU, for autograd or for dtypes numpy lacks.

    Why numpy for crop, flip and erasing on CPU: each is one pass over memory, and torch runs a
    pass over a 256-image batch as an OpenMP parallel region; on a loaded 2-core machine each
    region can wait a scheduler slice for its second thread (the reason `InMemoryLoader` uses
    np.take). Same draws, same result: the torch path is tested equal.
    """
    if x.device.type != "cpu" or x.requires_grad:
        return None
    try:
        return x.numpy()
    except TypeError:  # e.g. bfloat16
        return None


def random_flip(x: torch.Tensor, generator: torch.Generator, *, p: float, dim: int) -> torch.Tensor:
    """Flip each image along `dim` (-1 horizontal, -2 vertical) with probability p."""
    _check_images(x)
    chosen = _coin(x.shape[0], p, generator, x)
    a = _numpy(x)
    if a is None:
        return torch.where(chosen.view(-1, 1, 1, 1), x.flip(dim), x)
    out, rows = a.copy(), chosen.numpy()
    out[rows] = np.flip(a[rows], axis=dim)
    return torch.from_numpy(out)


def random_crop(
    x: torch.Tensor, generator: torch.Generator, *, padding: int, mode: str = "zero"
) -> torch.Tensor:
    """Pad each side by `padding` (zeros or reflection), then cut an H x W window whose top-left
    corner is uniform on {0..2p}^2, independently per image (Krizhevsky et al. 2012).

    out[n, :, i, j] = padded[n, :, oy_n + i, ox_n + j]: one strided view of all (2p+1)^2
    windows of the padded batch, indexed by (n, oy_n, ox_n), so only the output is copied.
    """
    _check_images(x)
    n, c, h, w = x.shape
    if mode == "reflect" and not (padding < h and padding < w):
        raise ValueError(f"crop padding must be < the image size {h}x{w} for mode 'reflect'")
    k = 2 * padding + 1
    offsets = torch.randint(0, k, (2, n), generator=generator, device=generator.device)
    a = _numpy(x)
    if a is None:
        padded = F.pad(x, (padding,) * 4, mode="constant" if mode == "zero" else "reflect")
        s = padded.stride()
        windows = padded.as_strided((n, k, k, c, h, w), (s[0], s[2], s[3], s[1], s[2], s[3]))
        oy, ox = offsets.to(x.device)
        return windows[torch.arange(n, device=x.device), oy, ox]
    pad = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    padded_np = np.pad(a, pad, mode="constant" if mode == "zero" else "reflect")
    s = padded_np.strides
    windows_np = np.lib.stride_tricks.as_strided(
        padded_np, (n, k, k, c, h, w), (s[0], s[2], s[3], s[1], s[2], s[3]), writeable=False
    )
    oy, ox = offsets.cpu().numpy()
    return torch.from_numpy(np.ascontiguousarray(windows_np[np.arange(n), oy, ox]))


@dataclass(frozen=True)
class AffineRanges:
    """Ranges of a combined random affine warp; None leaves that part out (draws nothing).

    degrees: rotation angle range, counter-clockwise as displayed (torch.rot90's direction).
    shear: x-shear angle range in degrees, x' = x + tan(φ)·y. scale: zoom factor range
    (> 1 enlarges). pixels: integer shifts uniform on {-pixels..pixels} in x and y, exact on
    the pixel grid.
    """

    degrees: tuple[float, float] | None = None
    shear: tuple[float, float] | None = None
    scale: tuple[float, float] | None = None
    pixels: int | None = None
    fill: str = "zeros"
    interpolation: str = "bilinear"


def affine_theta(
    angle: torch.Tensor,
    shear: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """(N, 2, 3) `F.affine_grid` matrices for per-image angle, shear (radians), scale, shift (N, 2)
    in pixels (x, y).

    Forward map on pixel coordinates centred on the image (y down):
    p_out = R(angle) · Sh(shear) · diag(scale) · p_in + shift, R = [[c, s], [-s, c]] (CCW as
    displayed), Sh = [[1, tan φ], [0, 1]]. affine_grid needs the inverse (output -> input) in
    normalized coordinates n = D p, D = diag(2/W, 2/H) (align_corners=False), so
    theta = [D A D⁻¹ | -D A shift] with A = (R · Sh · diag(scale))⁻¹.
    """
    h, w = size
    c, s, t = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # forward M = R @ Sh @ diag(scale) = [[c, c t + s], [-s, -s t + c]] * scale
    m = (
        torch.stack([torch.stack([c, c * t + s], -1), torch.stack([-s, c - s * t], -1)], -2)
        * scale[:, None, None]
    )
    a = torch.linalg.inv(m)  # (N, 2, 2)
    d = torch.tensor([2.0 / w, 2.0 / h], dtype=a.dtype, device=a.device)
    linear = a * d[:, None] / d[None, :]
    offset = -(a @ shift[:, :, None])[:, :, 0] * d
    return torch.cat([linear, offset[:, :, None]], dim=2)


def random_affine(
    x: torch.Tensor, generator: torch.Generator, ranges: AffineRanges
) -> torch.Tensor:
    """Rotate, shear, zoom and translate each image by its own random amounts in one warp.

    Draws (in this order, only for the parts set) angle, shear, scale, then x and y shifts.
    Outside the image: `fill` zeros, border (Keras' "nearest") or reflection. Integer dtypes
    are warped in float32 and rounded back.
    """
    _check_images(x)
    n, _, h, w = x.shape
    zeros = torch.zeros(n, dtype=torch.float64, device=x.device)

    def draw(bounds: tuple[float, float] | None, default: float) -> torch.Tensor:
        return zeros + default if bounds is None else _uniform(n, *bounds, generator, x)

    angle = torch.deg2rad(draw(ranges.degrees, 0.0))
    shear = torch.deg2rad(draw(ranges.shear, 0.0))
    scale = draw(ranges.scale, 1.0)
    if ranges.pixels is None:
        shift = torch.zeros(n, 2, dtype=torch.float64, device=x.device)
    else:
        p = ranges.pixels
        shift = torch.randint(-p, p + 1, (n, 2), generator=generator, device=generator.device)
        shift = shift.to(device=x.device, dtype=torch.float64)
    work = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
    theta = affine_theta(angle, shear, scale, shift, (h, w)).to(work.dtype)
    grid = F.affine_grid(theta, list(work.shape), align_corners=False)
    out = F.grid_sample(
        work, grid, mode=ranges.interpolation, padding_mode=ranges.fill, align_corners=False
    )
    if out.dtype == x.dtype:
        return out
    return (out.round() if not x.dtype.is_floating_point else out).to(x.dtype)


def random_erasing(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    p: float,
    area: tuple[float, float],
    ratio: tuple[float, float],
    value: float | str = 0.0,
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): with probability p, fill one rectangle per image.

    Rectangle area S_e = U(area)·H·W, aspect ratio r_e = U(ratio) (uniform, as the paper),
    H_e = round(√(S_e·r_e)), W_e = round(√(S_e/r_e)); a size that does not fit is redrawn, up
    to 10 attempts, as the paper's loop (torchvision's cap), then the image is left unerased.
    The top-left corner is uniform over the positions where the rectangle fits. The same
    rectangle covers all channels; `value` is a constant or "random" (standard normal per
    pixel, for standardized inputs).
    """
    _check_images(x)
    n, _, h, w = x.shape
    t = ERASING_ATTEMPTS
    erase = _coin(n, p, generator, x)
    target = _uniform(n * t, *area, generator, x).view(n, t) * (h * w)
    aspect = _uniform(n * t, *ratio, generator, x).view(n, t)
    eh = torch.sqrt(target * aspect).round().long()
    ew = torch.sqrt(target / aspect).round().long()
    fits = (eh >= 1) & (eh <= h) & (ew >= 1) & (ew <= w)
    first = fits.long().argmax(dim=1, keepdim=True)  # first attempt that fits (0 if none)
    eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
    erase = erase & fits.any(dim=1)
    top = (_uniform(n, 0.0, 1.0, generator, x) * (h - eh + 1)).floor().long().clamp_max(h - eh)
    left = (_uniform(n, 0.0, 1.0, generator, x) * (w - ew + 1)).floor().long().clamp_max(w - ew)
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None]) & erase[:, None]  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (N, W)
    if value == "random":
        noise = torch.randn(x.shape, generator=generator, device=generator.device)
        fill = noise.to(device=x.device, dtype=x.dtype)
    else:
        fill = torch.tensor(value, dtype=x.dtype, device=x.device)
    a, fill_np = _numpy(x), _numpy(fill)
    if a is None or fill_np is None:
        return torch.where(in_rows[:, None, :, None] & in_cols[:, None, None, :], fill, x)
    mask = in_rows.numpy()[:, None, :, None] & in_cols.numpy()[:, None, None, :]
    return torch.from_numpy(np.where(mask, fill_np, a))


# ---- recipe specs -> steps -------------------------------------------------------------------


def _field(name: str, key: str) -> str:
    return f"augment {name!r} {key}"


def _number(name: str, key: str, value: object, lo: float, hi: float, what: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi
    if not ok:
        raise ValueError(f"{_field(name, key)} must be {what}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _pair(
    name: str, key: str, value: object, lo: float, hi: float, what: str
) -> tuple[float, float]:
    """A (low, high) range with lo <= low <= high <= hi."""
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and lo <= value[0] <= value[1] <= hi
    )
    if not ok:
        raise ValueError(f"{_field(name, key)} must be a pair low <= high {what}, got {value!r}")
    return float(value[0]), float(value[1])  # type: ignore[index]


def _symmetric(name: str, key: str, value: object) -> tuple[float, float]:
    """Degrees: d >= 0 means U(-d, d); a pair (low, high) is used as given."""
    if isinstance(value, list | tuple):
        return _pair(name, key, value, -360.0, 360.0, "in [-360, 360] degrees")
    d = _number(name, key, value, 0.0, 360.0, "a number of degrees in [0, 360] or a pair")
    return -d, d


def _choice(name: str, key: str, value: object, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ValueError(f"{_field(name, key)} must be one of {', '.join(valid)}, got {value!r}")
    return str(value)


def _int(name: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{_field(name, key)} must be an int >= 0 (pixels), got {value!r}")
    return value


def normalize_spec(spec: Mapping[str, object]) -> dict[str, object]:
    """The spec with defaults filled in and every option range-checked (one-line errors)."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"augment spec must be a mapping with a 'name', got {spec!r}")
    name = spec["name"]
    if not isinstance(name, str) or name not in AUGMENTATIONS:
        raise closest_name_error("augmentation", str(name), AUGMENTATIONS)
    defaults = AUGMENTATIONS[name]
    unknown = sorted(set(spec) - set(defaults) - {"name"})
    if unknown:
        raise ValueError(
            f"augment {name!r}: unknown option {unknown[0]!r}; valid: {', '.join(defaults)}"
        )
    opts = {**defaults, **{k: v for k, v in spec.items() if k != "name"}}
    checked: dict[str, object] = {"name": name}
    for key, value in opts.items():
        if key == "p":
            checked[key] = _number(name, key, value, 0.0, 1.0, "a probability in [0, 1]")
        elif key in ("padding", "pixels"):
            checked[key] = _int(name, key, value)
        elif key == "mode":
            checked[key] = _choice(name, key, value, CROP_MODES)
        elif key == "fill":
            checked[key] = _choice(name, key, value, FILL_MODES)
        elif key == "interpolation":
            checked[key] = _choice(name, key, value, INTERPOLATIONS)
        elif key == "degrees":
            checked[key] = _symmetric(name, key, value)
        elif key == "scale":
            checked[key] = _pair(name, key, value, 1e-3, 1e3, "in (0, 1000]")
        elif key == "area":
            checked[key] = _pair(name, key, value, 1e-9, 1.0, "in (0, 1] (fraction of the image)")
        elif key == "ratio":
            checked[key] = _pair(name, key, value, 1e-3, 1e3, "in (0, 1000] (height / width)")
        elif key == "value":
            if value != "random":
                checked[key] = _number(
                    name, key, value, -math.inf, math.inf, 'a number or "random"'
                )
            else:
                checked[key] = value
    return checked


def _affine_ranges(group: list[dict[str, object]]) -> AffineRanges:
    parts: dict[str, object] = {
        "fill": group[0]["fill"],
        "interpolation": group[0]["interpolation"],
    }
    for spec in group:
        key = {"rotate": "degrees", "shear": "shear", "zoom": "scale", "translate": "pixels"}[
            str(spec["name"])
        ]
        source = "degrees" if spec["name"] in ("rotate", "shear") else key
        parts[key] = spec[source]
    return AffineRanges(**parts)  # type: ignore[arg-type]


def _fuses(group: list[dict[str, object]], spec: dict[str, object]) -> bool:
    """An affine spec joins the current group unless its kind is there already or its fill or
    interpolation differs (then it starts a new warp)."""
    return (
        bool(group)
        and spec["name"] not in {g["name"] for g in group}
        and (spec["fill"], spec["interpolation"]) == (group[0]["fill"], group[0]["interpolation"])
    )


def _plain_step(spec: dict[str, object]) -> Step:
    name = spec["name"]
    if name == "crop":
        return partial(random_crop, padding=spec["padding"], mode=spec["mode"])
    if name in ("hflip", "vflip"):
        return partial(random_flip, p=spec["p"], dim=-1 if name == "hflip" else -2)
    return partial(
        random_erasing, p=spec["p"], area=spec["area"], ratio=spec["ratio"], value=spec["value"]
    )


class Augment:
    """A pipeline of augmentations built from recipe specs, applied in the listed order.

    Consecutive translate/rotate/zoom/shear specs (same fill and interpolation) are one warp:
    p_out = R · Sh · S · p_in + shift, whatever their order in the list. `augment(x, g)` takes
    images (N, C, H, W) and a `torch.Generator` and returns a new tensor of the same shape and
    dtype; the same generator state gives the same output.
    """

    def __init__(self, specs: Sequence[Mapping[str, object]]) -> None:
        if isinstance(specs, Mapping | str):
            raise ValueError(f"augment must be a list of specs, got {specs!r}")
        self.specs: tuple[dict[str, object], ...] = tuple(normalize_spec(s) for s in specs)
        self.steps: list[Step] = []
        group: list[dict[str, object]] = []
        for spec in self.specs:
            if spec["name"] in AFFINE_OPS and (not group or _fuses(group, spec)):
                group.append(spec)
                continue
            if group:
                self.steps.append(partial(random_affine, ranges=_affine_ranges(group)))
                group = []
            if spec["name"] in AFFINE_OPS:
                group = [spec]
            else:
                self.steps.append(_plain_step(spec))
        if group:
            self.steps.append(partial(random_affine, ranges=_affine_ranges(group)))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_images(x)
        out = x
        for step in self.steps:
            out = step(out, generator)
        return out if self.steps else x.clone()

    def __repr__(self) -> str:
        return f"Augment({list(self.specs)!r})"


__all__ = [
    "AUGMENTATIONS",
    "AffineRanges",
    "Augment",
    "affine_theta",
    "normalize_spec",
    "random_affine",
    "random_crop",
    "random_erasing",
    "random_flip",
]
