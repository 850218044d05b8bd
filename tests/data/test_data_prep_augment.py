"""Batched augmentation: seeded reproducibility, exact cases against torch.flip / torch.rot90 /
hand-written crops and shifts, erased area, dtype/shape kept, labels never reordered."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from trainlab.data import augment as aug_mod
from trainlab.data.augment import (
    AffineRanges,
    Augment,
    random_affine,
    random_crop,
    random_erasing,
    random_flip,
)

ALL_OPS = [
    {"name": "crop", "padding": 2, "mode": "reflect"},
    {"name": "hflip"},
    {"name": "vflip", "p": 0.3},
    {"name": "rotate", "degrees": 20},
    {"name": "zoom", "scale": [0.8, 1.2]},
    {"name": "shear", "degrees": 10},
    {"name": "translate", "pixels": 3},
    {"name": "erasing", "p": 0.7},
]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 16, c: int = 3, h: int = 9, w: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=gen(seed))


@pytest.fixture(params=["numpy", "torch"])
def path(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on the numpy fast path (CPU default) and on the torch path (CUDA, bfloat16)."""
    if request.param == "torch":
        monkeypatch.setattr(aug_mod, "_numpy", lambda x: None)
    return request.param


def test_same_seed_same_output_different_seed_different(path: str) -> None:
    x = images(32)
    augment = Augment(ALL_OPS)
    a, b = augment(x, gen(1)), augment(x, gen(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, augment(x, gen(2)))
    assert not torch.equal(a, x)


def test_numpy_and_torch_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    x = images(32)
    augment = Augment(ALL_OPS + [{"name": "erasing", "p": 1.0, "value": "random"}])
    fast = augment(x, gen(5))
    monkeypatch.setattr(aug_mod, "_numpy", lambda x: None)
    torch.testing.assert_close(augment(x, gen(5)), fast, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
def test_dtype_and_shape_kept(dtype: torch.dtype, path: str) -> None:
    x = (images(8, 2, 7, 11) * 255).to(dtype)
    for spec in ALL_OPS:
        out = Augment([spec])(x, gen(0))
        assert out.dtype == dtype and out.shape == x.shape, spec
    assert Augment([])(x, gen(0)).data_ptr() != x.data_ptr()


def test_labels_stay_aligned(path: str) -> None:
    # image i is constant i + 1: every op keeps sample i at row i, so its maximum stays i + 1
    n = 40
    x = (torch.arange(n, dtype=torch.float32) + 1).view(n, 1, 1, 1).expand(n, 1, 12, 12)
    out = Augment(ALL_OPS)(x.contiguous(), gen(3))
    torch.testing.assert_close(out.amax(dim=(1, 2, 3)), x[:, 0, 0, 0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("dim", [-1, -2])
def test_flips_equal_torch_flip_on_chosen_items(dim: int, path: str) -> None:
    x = images(200)
    out = random_flip(x, gen(7), p=0.5, dim=dim)
    chosen = torch.rand(200, generator=gen(7)) < 0.5  # the draw random_flip makes
    assert 70 < int(chosen.sum()) < 130
    torch.testing.assert_close(out[chosen], torch.flip(x[chosen], dims=[dim]), rtol=0, atol=0)
    torch.testing.assert_close(out[~chosen], x[~chosen], rtol=0, atol=0)
    torch.testing.assert_close(random_flip(x, gen(7), p=1.0, dim=dim), x.flip(dim))
    torch.testing.assert_close(random_flip(x, gen(7), p=0.0, dim=dim), x)


@pytest.mark.parametrize("mode", ["zero", "reflect"])
def test_crop_equals_hand_written_per_sample_crop(mode: str, path: str) -> None:
    x, p = images(12, 2, 8, 10), 3
    out = random_crop(x, gen(11), padding=p, mode=mode)
    oy, ox = torch.randint(0, 2 * p + 1, (2, 12), generator=gen(11))  # the same draw
    padded = F.pad(x, (p, p, p, p), mode="constant" if mode == "zero" else "reflect")
    for i in range(12):
        expected = padded[i, :, oy[i] : oy[i] + 8, ox[i] : ox[i] + 10]
        torch.testing.assert_close(out[i], expected, rtol=0, atol=0)
    assert len(set(zip(oy.tolist(), ox.tolist(), strict=True))) > 6
    torch.testing.assert_close(random_crop(x, gen(0), padding=0), x)


@pytest.mark.parametrize("size", [6, 7])
@pytest.mark.parametrize(("degrees", "k"), [(90.0, 1), (-90.0, -1), (180.0, 2), (270.0, 3)])
def test_rotation_by_right_angles_equals_rot90(size: int, degrees: float, k: int) -> None:
    x = images(5, 2, size, size)
    out = random_affine(x, gen(0), AffineRanges(degrees=(degrees, degrees)))
    torch.testing.assert_close(out, torch.rot90(x, k, dims=(2, 3)), atol=1e-5, rtol=0)


def test_identity_warps_and_integer_translation_are_exact() -> None:
    x = images(6, 1, 8, 8)
    identity = AffineRanges(degrees=(0.0, 0.0), shear=(0.0, 0.0), scale=(1.0, 1.0), pixels=0)
    torch.testing.assert_close(random_affine(x, gen(0), identity), x, atol=1e-6, rtol=0)
    out = random_affine(x, gen(4), AffineRanges(pixels=3))
    shift = torch.randint(-3, 4, (6, 2), generator=gen(4))  # the same draw: (dx, dy)
    assert shift.abs().sum() > 0
    for i, (dx, dy) in enumerate(shift.tolist()):
        expected = torch.zeros(1, 8, 8)
        src = x[i, :, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)]
        expected[:, max(0, dy) : 8 - max(0, -dy), max(0, dx) : 8 - max(0, -dx)] = src
        torch.testing.assert_close(out[i], expected, atol=1e-6, rtol=0)


def test_shear_45_degrees_shifts_rows_by_their_offset() -> None:
    # x' = x + tan(45°)·y in centred coordinates: row r (centred y = r - 3) moves right by r - 3
    x = images(3, 1, 7, 7)
    out = random_affine(x, gen(0), AffineRanges(shear=(45.0, 45.0)))
    for r in range(7):
        shift = r - 3
        expected = torch.zeros(3, 1, 7)
        if shift >= 0:
            expected[..., shift:] = x[:, :, r, : 7 - shift]
        else:
            expected[..., :shift] = x[:, :, r, -shift:]
        torch.testing.assert_close(out[:, :, r], expected, atol=1e-5, rtol=0)


def test_zoom_two_keeps_the_centre_and_magnifies() -> None:
    # scale 2 on an 8x8 ramp (value = column): output column j (centred j - 3.5) samples input
    # column (j - 3.5) / 2 + 3.5 = j / 2 + 1.75, which bilinear interpolation of a ramp returns
    ramp = torch.arange(8, dtype=torch.float32).repeat(8, 1).view(1, 1, 8, 8)
    out = random_affine(ramp, gen(0), AffineRanges(scale=(2.0, 2.0), interpolation="bilinear"))
    row = out[0, 0, 4]
    expected = torch.tensor([1.75, 2.25, 2.75, 3.25, 3.75, 4.25, 4.75, 5.25])
    torch.testing.assert_close(row, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("area", "ratio", "h", "w"), [(0.25, 1.0, 8, 8), (0.125, 2.0, 8, 4)])
def test_erasing_fills_the_expected_area(area: float, ratio: float, h: int, w: int, path) -> None:
    x = images(20, 3, 16, 16) + 1.0  # all values >= 1, erased ones become -1
    out = random_erasing(x, gen(2), p=1.0, area=(area, area), ratio=(ratio, ratio), value=-1.0)
    assert h == round(math.sqrt(area * 256 * ratio)) and w == round(math.sqrt(area * 256 / ratio))
    erased = out == -1.0
    assert (erased.sum(dim=(1, 2, 3)) == 3 * h * w).all()
    rows, cols = erased.any(dim=(1, 3)), erased.any(dim=(1, 2))
    assert (rows.sum(1) == h).all() and (cols.sum(1) == w).all()  # one h x w rectangle
    assert (erased.all(dim=1) == erased.any(dim=1)).all()  # same rectangle in every channel
    torch.testing.assert_close(out[~erased], x[~erased])
    assert len({int(r.nonzero()[0]) for r in rows}) > 3  # positions vary


def test_erasing_probability_and_random_fill(path: str) -> None:
    x = images(2000, 1, 10, 10) + 5.0
    out = random_erasing(x, gen(9), p=0.5, area=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=0.0)
    frac = float((out == 0).any(dim=(1, 2, 3)).float().mean())
    assert abs(frac - 0.5) < 0.05
    noisy = random_erasing(x, gen(9), p=1.0, area=(0.3, 0.3), ratio=(1, 1), value="random")
    changed = noisy != x
    assert (changed.sum(dim=(1, 2, 3)) == 25).float().mean() > 0.99  # 5 x 5 = round(√30)²
    assert noisy[changed].abs().max() < 6  # standard normal fill, not the +5 images


def test_consecutive_affine_specs_are_one_warp() -> None:
    assert len(Augment([{"name": "rotate"}, {"name": "zoom"}, {"name": "shear"}]).steps) == 1
    specs = [{"name": "rotate"}, {"name": "crop"}, {"name": "rotate"}, {"name": "rotate"}]
    assert len(Augment(specs).steps) == 4
    mixed = [{"name": "rotate"}, {"name": "zoom", "fill": "border"}]
    assert len(Augment(mixed).steps) == 2


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 5),
    c=st.integers(1, 3),
    h=st.integers(3, 12),
    w=st.integers(3, 12),
    seed=st.integers(0, 2**31),
)
def test_any_shape_is_kept(n: int, c: int, h: int, w: int, seed: int) -> None:
    x = torch.rand(n, c, h, w, generator=gen(seed))
    specs = [s for s in ALL_OPS if s["name"] != "crop"] + [{"name": "crop", "padding": 2}]
    out = Augment(specs)(x, gen(seed))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"name": "hlfip"}], "unknown augmentation 'hlfip' (did you mean 'hflip'?)"),
        (
            [{"name": "hflip", "p": 1.5}],
            "augment 'hflip' p must be a probability in [0, 1], got 1.5",
        ),
        ([{"name": "erasing", "p": -0.1}], "augment 'erasing' p must be a probability in [0, 1]"),
        (
            [{"name": "crop", "pad": 4}],
            "augment 'crop': unknown option 'pad'; valid: padding, mode",
        ),
        ([{"name": "crop", "padding": -1}], "augment 'crop' padding must be an int >= 0"),
        ([{"name": "crop", "mode": "edge"}], "augment 'crop' mode must be one of zero, reflect"),
        (
            [{"name": "erasing", "area": [0.5, 0.2]}],
            "augment 'erasing' area must be a pair low <= high",
        ),
        ([{"name": "zoom", "scale": 1.2}], "augment 'zoom' scale must be a pair low <= high"),
        ([{"name": "rotate", "fill": "wrap"}], "augment 'rotate' fill must be one of zeros"),
        ([{"padding": 4}], "augment spec must be a mapping with a 'name'"),
        ({"name": "hflip"}, "augment must be a list of specs"),
    ],
)
def test_bad_specs_are_one_line(specs, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Augment(specs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_images_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"needs images of shape \(N, C, H, W\), got \(4, 9\)"):
        Augment([{"name": "hflip"}])(torch.zeros(4, 9), gen(0))
    with pytest.raises(ValueError, match="crop padding must be < the image size 3x3"):
        random_crop(torch.zeros(2, 1, 3, 3), gen(0), padding=3, mode="reflect")
