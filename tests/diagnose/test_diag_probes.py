"""Probes: statistics equal hand computations; dead/saturated units; applied update ratio;
NaN localisation; bounded memory; hooks removed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.diagnose import Probes, SeriesBuffer, default_layers, find_nonfinite
from trainlab.diagnose.probes import nice_ceil
from trainlab.train import Hooks, NonFiniteLossError, StepRecord, fit


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def fixed_model() -> nn.Sequential:
    """Linear(3, 4) → ReLU → Linear(4, 2) → Tanh with weights from a seeded generator."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Tanh())
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


def test_statistics_equal_hand_computation() -> None:
    model = fixed_model()
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    # Bin edges at ±0.25, ±0.75, ...: away from ReLU's exact 0 and tanh's float32 ±1.0.
    probes = Probes(model, every=1, bins=9, hist_range=(-2.25, 2.25))
    assert probes.layers == ["0", "1", "2", "3"]
    with probes.step(1):
        model(x).pow(2).sum().backward()
    s = probes.summary()
    w0, b0, w2, b2 = (p.detach().double().numpy() for p in model.parameters())
    xn = x.double().numpy()
    h0 = xn @ w0.T + b0
    h1 = np.maximum(h0, 0)
    h2 = h1 @ w2.T + b2
    h3 = np.tanh(h2)
    for name, h in zip("0123", (h0, h1, h2, h3), strict=True):
        layer = s["layers"][name]
        assert layer["mean"][0] == pytest.approx(h.mean(), rel=1e-5, abs=1e-6)
        assert layer["std"][0] == pytest.approx(h.std(), rel=1e-5)
        gap = np.abs(h[..., None] - np.linspace(-2.25, 2.25, 10)).min()
        assert gap > 1e-4  # no value so near an edge that float32 rounding could move it
        counts, edges = np.histogram(np.clip(h, -2.25, 2.25), bins=9, range=(-2.25, 2.25))
        np.testing.assert_array_equal(layer["hist"][0], counts)
        np.testing.assert_allclose(layer["edges"], edges)
        np.testing.assert_array_equal(layer["hist_total"], counts)
    assert s["layers"]["1"]["kind"] == "relu" and s["layers"]["3"]["kind"] == "tanh"
    assert s["layers"]["1"]["dead_fraction"][0] == pytest.approx(np.mean(h1.max(0) <= 0))
    assert s["layers"]["3"]["saturated_fraction"][0] == pytest.approx(np.mean(abs(h3) > 0.99))
    assert s["layers"]["0"]["dead_fraction"] is None
    for name, p in model.named_parameters():
        assert s["params"][name]["grad_norm"][0] == pytest.approx(float(p.grad.norm()), rel=1e-5)
        assert s["params"][name]["weight_norm"][0] == pytest.approx(
            float(p.detach().norm()), rel=1e-5
        )
        assert s["params"][name]["update_ratio"][0] == 0.0  # no optimizer step was taken
    assert s["params"]["2.weight"]["layer"] == "2"
    assert list(s["steps"]) == [1] and s["first_nonfinite"] is None
    assert hooks_left(model) == 0


def test_automatic_histogram_range_is_round_and_fixed() -> None:
    assert [nice_ceil(v) for v in (0.0, 0.3, 1.0, 1.5, 4.2, 7.0, 12.0)] == [1, 0.5, 1, 2, 5, 10, 20]
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    probes = Probes(model, every=1, bins=4)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
    for step, scale in ((1, 1.0), (2, 100.0)):
        with probes.step(step):
            model(torch.tensor([[1.0, 0.6], [-1.0, -2.0]]) * scale).sum().backward()
    layers = probes.summary()["layers"]
    # Pre-activations 1.6 and -3.0: largest |x| 3 → range ±5; ReLU's largest 1.6 → (0, 2).
    np.testing.assert_allclose(layers["0"]["edges"], [-5, -2.5, 0, 2.5, 5])
    np.testing.assert_allclose(layers["1"]["edges"], [0, 0.5, 1, 1.5, 2])
    # The second probe's values (up to 160) land in the top bin: the range stays fixed.
    assert layers["1"]["hist"][1].tolist() == [3.0, 0.0, 0.0, 3.0]


def test_dead_relu_unit_with_hand_killed_bias_and_window() -> None:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(4, 5, generator=g))
        model[0].bias.zero_()
        model[0].bias[1] = -1e3  # unit 1 can never be positive on these inputs
    probes = Probes(model, every=1, dead_window=3)
    x = torch.randn(64, 5, generator=g)

    def step(t: int) -> float:
        with probes.step(t):
            model(x).sum().backward()
        return float(probes.summary()["layers"]["1"]["dead_fraction"][-1])

    assert step(1) == 0.25
    assert step(2) == 0.25
    with torch.no_grad():
        model[0].bias[2] = -1e3  # unit 2 dies now; it was positive in the last 2 probes
    assert step(3) == 0.25
    assert step(4) == 0.25
    assert step(5) == 0.5  # window of 3 probed batches without a positive output
    # Conv outputs: a unit is a channel.
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    with torch.no_grad():
        conv[0].bias[3] = -1e3
    cprobes = Probes(conv, every=1)
    with cprobes.step(1):
        conv(torch.randn(8, 1, 6, 6, generator=g)).sum().backward()
    assert cprobes.summary()["layers"]["1"]["dead_fraction"][0] == 0.25


def test_saturated_tanh_and_sigmoid_fractions() -> None:
    g = torch.Generator().manual_seed(2)
    lin = nn.Linear(10, 50)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(50, 10, generator=g) * 1.5)
    model = nn.Sequential(lin, nn.Tanh())
    sig_model = nn.Sequential(lin, nn.Sigmoid())
    x = torch.randn(40, 10, generator=g)
    pre = lin(x).detach().double().numpy()
    for m, expected in (
        (model, np.mean(np.abs(np.tanh(pre)) > 0.99)),
        (sig_model, np.mean(np.abs(1 / (1 + np.exp(-pre)) - 0.5) > 0.49)),
    ):
        probes = Probes(m, every=1)
        with probes.step(1):
            m(x).sum().backward()
        got = probes.summary()["layers"]["1"]["saturated_fraction"][0]
        assert 0.2 < expected < 0.9
        assert got == pytest.approx(expected, abs=1e-6)


def test_update_ratio_is_the_applied_sgd_update() -> None:
    model = fixed_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-2)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(3))
    probes = Probes(model, every=3)
    for t in range(1, 4):
        before = [p.detach().clone() for p in model.parameters()]
        with probes.step(t):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    s = probes.summary()
    assert list(s["steps"]) == [1, 3]
    for (name, p), w0 in zip(model.named_parameters(), before, strict=True):
        expected = float((p.detach() - w0).norm() / w0.norm())
        assert s["params"][name]["update_ratio"][-1] == pytest.approx(expected, rel=1e-5)
        # Momentum makes the applied update differ from lr · grad.
        assert expected != pytest.approx(float(0.05 * p.grad.norm() / w0.norm()), rel=1e-3)


class SetNaN(Hooks):
    """At the end of step `at`, write a NaN into `param`."""

    def __init__(self, param: torch.Tensor, at: int) -> None:
        self.param, self.at = param, at

    def on_step_end(self, record: StepRecord) -> None:
        if record.step == self.at:
            with torch.no_grad():
                self.param[0, 0] = math.nan


def tanh_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)
    )


def test_nan_in_activations_names_the_layer_and_step_inside_fit() -> None:
    model = tanh_mlp()
    g = torch.Generator().manual_seed(0)
    data = TensorSplit(torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g))
    probes = Probes(model, every=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with probes, pytest.raises(NonFiniteLossError):  # step 5's loss is NaN: fit stops
        fit(model, InMemoryLoader(data, 4), opt, F.cross_entropy, epochs=2,
            callbacks=[probes, SetNaN(model[3].weight, at=4)])  # fmt: skip
    assert probes.first_nonfinite == {"where": "activation", "layer": "3", "step": 5}
    assert hooks_left(model) == 0
    assert find_nonfinite(model, data.x[:4]) == "3"
    assert hooks_left(model) == 0


class Root(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().sqrt()  # d/dx at 0 is inf · sign(0) = NaN, the forward stays finite


def test_nan_gradient_found_on_the_step_it_appears() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), Root(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(8, 3)
    probes = Probes(model, every=100)
    for t in range(1, 10):
        if t == 7:
            with torch.no_grad():
                model[0].weight[0].zero_()
                model[0].bias[0] = 0.0  # unit 0's pre-activation is exactly 0
        with probes.step(t):
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
    nonfinite = probes.summary()["nonfinite"]
    assert nonfinite["gradient"] == {
        "where": "gradient", "layer": "0", "parameter": "0.bias", "step": 7
    }  # fmt: skip
    # The NaN update poisoned layer 0's weights; step 8 was probed to show it.
    assert nonfinite["activation"] == {"where": "activation", "layer": "0", "step": 8}
    assert probes.first_nonfinite == nonfinite["gradient"]
    assert hooks_left(model) == 0


def test_unknown_layer_is_one_line_listing_valid_names() -> None:
    model = tanh_mlp()
    with pytest.raises(ValueError) as err:
        Probes(model, layers=["2", "7"])
    msg = str(err.value)
    assert "\n" not in msg and "'7'" in msg and "valid: 0, 1, 2, 3, 4, 5" in msg
    assert default_layers(model) == ["1", "2", "3", "4", "5"]  # no Flatten


def test_hooks_only_around_probe_steps_and_removed_after_fit() -> None:
    model = tanh_mlp()
    g = torch.Generator().manual_seed(0)
    data = TensorSplit(torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g))
    probes = Probes(model, every=4)
    seen: list[tuple[int, int]] = []

    class Watch(Hooks):
        def on_step_end(self, record: StepRecord) -> None:
            seen.append((record.step, hooks_left(model)))

    fit(model, InMemoryLoader(data, 4), torch.optim.SGD(model.parameters(), lr=0.1),
        F.cross_entropy, epochs=2, val=data, callbacks=[probes, Watch()])  # fmt: skip
    # After probes.on_step_end of step t, hooks are armed iff step t + 1 is a probe step.
    armed = [t for t, n in seen if n > 0]
    assert armed == [3, 7, 11, 15, 19]
    assert hooks_left(model) == 0
    s = probes.summary()
    assert list(s["steps"]) == [1, 4, 8, 12, 16, 20]
    # Validation forwards (no grad) between epochs did not add to the histograms.
    assert s["layers"]["2"]["hist_total"].sum() == 6 * 4 * 8


def test_memory_is_bounded_over_10k_steps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    F.cross_entropy(model(x), y).backward()  # gradients to measure; kept for the whole run
    probes = Probes(model, every=10, capacity=16, dead_window=3)
    probes.on_fit_start(10_000, 0)
    sizes = []
    for t in range(1, 10_001):  # cheap steps: a forward pass each (no backward, no update)
        model(x)
        probes.on_step_end(StepRecord(0, t - 1, t, 0.0, 0, 8, 1e-3))
        if t % 1000 == 0:
            sizes.append(probes.buffer.nbytes)
            assert len(probes.buffer) <= 16
            assert all(len(w) <= 3 for w in probes._alive.values())
    probes.on_fit_end([])
    assert probes.probes == 1001
    assert len(set(sizes)) == 1, sizes  # preallocated: not a byte more after step 1000
    s = probes.summary()
    steps = s["steps"]
    assert len(steps) <= 17 and steps[0] == 1 and steps[-1] == 10_000
    assert np.all(np.diff(steps) > 0) and s["stride"] == 64
    assert s["layers"]["1"]["hist"].shape == (len(steps), 40)
    assert s["layers"]["1"]["hist_total"].sum() == 1001 * 8 * 8  # every probe still counted
    assert hooks_left(model) == 0


def test_series_buffer_thins_evenly_and_keeps_the_latest() -> None:
    buf = SeriesBuffer(4)
    for i in range(11):
        buf.append(i * 10, {"a": float(i), "h": np.full(2, i)})
    assert len(buf) <= 4 and buf.stride == 4
    assert buf.steps().tolist() == [0, 40, 80, 100]
    assert buf.column("a").tolist() == [0, 4, 8, 10]
    assert buf.column("h")[:, 0].tolist() == [0, 4, 8, 10]
    buf.append(110, {"h": np.zeros(2)})  # a missing column is NaN
    assert math.isnan(buf.column("a")[-1])
    with pytest.raises(ValueError):
        SeriesBuffer(1)


def test_large_layers_are_summarised_on_a_subset_but_checked_in_full() -> None:
    model = nn.Sequential(nn.ReLU())
    probes = Probes(model, every=1, sample_size=65536)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, 32, 32, generator=g) - 1.0  # 262144 entries: stride 5 (prime)
    x[:, :3] = -1.0  # channels 0-2 never positive: dead
    x[:, 3] = -1.0
    x[1, 3, 0, 0] = 1.0  # channel 3 is positive once, at an entry outside the subset
    with probes.step(1):
        model(x)
    layer = probes.summary()["layers"]["0"]
    assert layer["dead_fraction"][0] == 0.75  # the dead test reads every entry
    assert layer["hist"][0].sum() == -(-x.numel() // 5)
    # The subset's statistics estimate the whole layer's.
    y = torch.randn(64, 4, 32, 32, generator=g) * 2.0 + 1.0
    with probes.step(2):
        model(y)
    full = torch.relu(y)
    layer = probes.summary()["layers"]["0"]
    assert layer["mean"][-1] == pytest.approx(float(full.mean()), rel=0.02)
    assert layer["std"][-1] == pytest.approx(float(full.std()), rel=0.02)
    y[5, 0, 0, 1] = math.nan  # outside the subset: the NaN check reads everything too
    with probes.step(3):
        model(y)
    assert probes.first_nonfinite == {"where": "activation", "layer": "0", "step": 3}
