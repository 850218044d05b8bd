"""The activation-statistics lab reproduces the CS231n (seed-000) tables.

Reference: each configuration is rerun in the test with plain numpy (float64, its own RNG,
``W = randn(fan_in, fan_out) * scale`` and ``H = f(X @ W)`` as on the slide), and the first and
last hidden layer's std are compared with ours and with the slide's printed numbers.

Tolerances come from the sampling spread, measured over 8 numpy seeds (1σ of the std, relative):
first hidden layer ≤ 0.2% in every configuration; last layer ≤ 1% for tanh (0.01: 1.0%,
Xavier: 0.7%, N(0, 1): 0.01%) but 19.5% for ReLU (Xavier and He alike: the layer gains are
random products; the last std ranged 0.62-1.17 for He). So: first layer within 2% (10σ); last
layer within 5% for tanh (≥ 5σ) and within a factor 2 for ReLU (|log ratio| < 0.69, 2.5σ of the
difference of two independent draws, σ ≈ √2 · 0.195). The qualitative claims are checked too.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from trainlab.diagnose import activation_stats, run_lab
from trainlab.diagnose.activation_stats import lab_initializer

WIDTH = 500

# (activation, init, std) -> (numpy scale of W, slide's first and last hidden-layer std)
CASES = {
    "tanh-0.01": (("tanh", "normal", 0.01), 0.01, (0.213081, 0.000000)),
    "tanh-1.0": (("tanh", "normal", 1.0), 1.0, (0.981879, 0.981736)),
    "tanh-xavier": (("tanh", "xavier", None), 1 / math.sqrt(WIDTH), (0.627953, 0.228008)),
    "relu-xavier": (("relu", "xavier", None), 1 / math.sqrt(WIDTH), (0.582273, 0.026076)),
    "relu-he": (("relu", "he", None), 1 / math.sqrt(WIDTH / 2), (0.825232, 0.844523)),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def numpy_reference(activation: str, scale: float, seed: int = 1234) -> list[np.ndarray]:
    """The slide's loop in numpy: 1000 × 500 unit-Gaussian input, 10 layers of 500 units."""
    rng = np.random.default_rng(seed)
    f = np.tanh if activation == "tanh" else (lambda v: np.maximum(0.0, v))
    x = rng.standard_normal((1000, WIDTH))
    hs = []
    for _ in range(10):
        x = f(x @ (rng.standard_normal((WIDTH, WIDTH)) * scale))
        hs.append(x)
    return hs


def close(ours: float, ref: float, relu: bool, last: bool) -> bool:
    if not last:
        return abs(ours / ref - 1) < 0.02
    if relu:
        return abs(math.log(ours / ref)) < math.log(2)
    return abs(ours / ref - 1) < 0.05


@pytest.mark.parametrize("case", list(CASES))
def test_reproduces_the_slide_tables(case: str) -> None:
    (activation, init, std), scale, (slide_first, slide_last) = CASES[case]
    stats = activation_stats(activation, init, std)  # defaults: depth 10, width 500, 1000
    assert [s["layer"] for s in stats] == list(range(11))
    assert stats[0]["std"] == pytest.approx(1.0, abs=0.01)  # the unit-Gaussian input
    ours = [s["std"] for s in stats[1:]]
    ref = numpy_reference(activation, scale)
    ref_std = [h.std() for h in ref]
    relu = activation == "relu"
    print(
        f"\n{case:<12} first/last hidden std: slide {slide_first:.6f} {slide_last:.6f} | "
        f"numpy {ref_std[0]:.6f} {ref_std[-1]:.3g} | ours {ours[0]:.6f} {ours[-1]:.3g}"
    )
    assert close(ours[0], ref_std[0], relu, last=False)
    assert close(ours[0], slide_first, relu, last=False)
    if case != "tanh-0.01":  # the slide prints 0.000000 there; checked below instead
        assert close(ours[-1], ref_std[-1], relu, last=True)
        assert close(ours[-1], slide_last, relu, last=True)
    means = [s["mean"] for s in stats[1:]]
    if case == "tanh-0.01":  # "All activations become zero!"
        assert ours[-1] < 1e-6 and ref_std[-1] < 1e-6
        assert ours[-1] / ref_std[-1] == pytest.approx(1.0, rel=0.05)
        assert all(b < 0.3 * a for a, b in zip(ours, ours[1:], strict=False))
    elif case == "tanh-1.0":  # "Almost all neurons completely saturated, either -1 and 1"
        assert np.mean(np.abs(ref[-1]) > 0.95) > 0.9
        counts = stats[-1]["counts"]  # bins of width 1/15 over (-1, 1): outer bins |x| > 0.93
        assert (counts[0] + counts[-1]) / counts.sum() > 0.9
        assert all(0.97 < s < 0.99 for s in ours)
    elif case == "tanh-xavier":  # "Reasonable initialization": decays gently
        assert all(0.75 < b / a < 1.0 for a, b in zip(ours, ours[1:], strict=False))
        assert 0.1 < ours[-1] < 0.5 and all(abs(m) < 0.01 for m in means)
    elif case == "relu-xavier":  # "when using the ReLU nonlinearity it breaks"
        assert ours[-1] < 0.1 * ours[0] and ref_std[-1] < 0.1 * ref_std[0]
        ratio = (ours[-1] / ours[0]) ** (1 / 9)  # variance halves per layer: std × 1/√2
        assert ratio == pytest.approx(1 / math.sqrt(2), rel=0.1)
    else:  # He et al. 2015: stays O(1)
        assert all(0.5 < s < 1.5 for s in ours) and all(0.4 < m < 0.8 for m in means)


def test_slide_names_and_torch_names_draw_the_same_distribution() -> None:
    g = torch.Generator().manual_seed(0)
    xavier = lab_initializer("xavier")((WIDTH, WIDTH), generator=g)
    he = lab_initializer("he")((WIDTH, WIDTH), generator=g)
    assert float(xavier.std()) == pytest.approx(1 / math.sqrt(WIDTH), rel=0.01)
    assert float(he.std()) == pytest.approx(math.sqrt(2 / WIDTH), rel=0.01)
    assert str(lab_initializer("normal")) == "normal"
    assert str(lab_initializer("normal", 0.5)) == "normal(std=0.5)"


def test_command_prints_table_and_saves_png(tmp_path, capsys) -> None:
    out = tmp_path / "hist.png"
    small = ["--depth", "3", "--width", "50", "--samples", "100", "--out", str(out)]
    code = run_lab(["activation-stats", "--activation", "tanh", "--init", "xavier", *small])
    text = capsys.readouterr().out
    assert code == 0 and out.stat().st_size > 5000
    assert "hidden 3" in text and "input" in text and f"histograms: {out}" in text
    code = run_lab(["activation-stats", "--activation", "relu", "--init", "he", "--depth", "3",
                    "--width", "50", "--samples", "100", "--seed", "3", "--json",
                    "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert code == 0 and [r["layer"] for r in rows] == [0, 1, 2, 3]
    assert all(set(r) == {"layer", "mean", "std"} for r in rows)
    direct = activation_stats("relu", "he", None, depth=3, width=50, samples=100, seed=3)
    assert [r["std"] for r in rows] == [s["std"] for s in direct]
    assert str(out) in captured.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--activation", "tanhh", "--init", "xavier"], "did you mean 'tanh'"),
        (["--activation", "tanh", "--init", "xavir"], "did you mean 'xavier'"),
        (["--activation", "tanh", "--init", "normal", "--std", "0"], "--std must be positive"),
        (["--activation", "tanh", "--init", "normal", "--std", "-1"], "--std must be positive"),
        (["--activation", "tanh", "--init", "he", "--std", "1"], "--std applies only to"),
        (["--activation", "tanh", "--init", "xavier", "--depth", "0"], "--depth must be"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, expected, capsys, tmp_path) -> None:
    code = run_lab(["activation-stats", *args, "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 1 and expected in err and err.count("\n") == 1
    assert err.startswith("trainlab lab activation-stats: error:")
    assert not (tmp_path / "x.png").exists()


def test_usage_errors_and_help(capsys) -> None:
    assert run_lab(["activation-stats", "--activation", "tanh"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert run_lab(["nonsense"]) == 2
    assert run_lab(["activation-stats", "--help"]) == 0
    assert "--activation" in capsys.readouterr().out


def test_help_through_the_command_never_fails(capsys) -> None:
    from trainlab.cli import main

    for argv in (["lab", "--help"], ["lab", "-h"], ["lab", "activation-stats", "--help"]):
        assert main(argv) == 0, argv
        assert "usage: trainlab lab" in capsys.readouterr().out


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_input_histogram_is_not_clipped_to_the_hidden_range(activation) -> None:
    """The Gaussian input's histogram covers all of it: clipped to tanh's [-1, 1] it once
    showed a U shape (a third of the mass piled in the two end bins)."""
    stats = activation_stats(activation, "normal", 0.01, depth=2, width=50, samples=200, seed=0)
    first = stats[0]
    assert first["counts"].sum() == 200 * 50
    x = torch.randn(200, 50, generator=torch.Generator().manual_seed(0))
    assert first["edges"][0] <= -float(x.abs().max()) * 0.5 and first["edges"][-1] >= 3.0
    ends = first["counts"][0] + first["counts"][-1]
    assert ends < 0.01 * first["counts"].sum()  # a bell: almost nothing in the tails
