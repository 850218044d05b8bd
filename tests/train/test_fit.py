"""The loop: metrics equal a hand-written loop, NaN stops before the bad step, callbacks stop."""

import math

import pytest
import torch
import torch.nn.functional as F

from trainlab.data import InMemoryLoader, TensorSplit
from trainlab.nn import mlp
from trainlab.train import STOP, Hooks, NonFiniteLossError, evaluate, fit


def blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) + 2.0 * F.one_hot(y, 4).float()
    return TensorSplit(x, y)


def test_fit_matches_a_plain_pytorch_loop():
    split, val = blobs(), blobs(60, seed=1)
    torch.manual_seed(0)
    model = mlp((4,), 3, widths=(16,))
    reference = mlp((4,), 3, widths=(16,))
    reference.load_state_dict(model.state_dict())
    loader = InMemoryLoader(split, 32, seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    pos = fit(model, loader, opt, F.cross_entropy, epochs=2, val=val)

    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(2):
        total, correct = 0.0, 0
        for x, y in loader.epoch(epoch):
            out = reference(x)
            loss = F.cross_entropy(out, y)
            ref_opt.zero_grad()
            loss.backward()
            ref_opt.step()
            total += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
        record = pos.history[epoch]
        assert record["train_loss"] == pytest.approx(total / len(split), rel=1e-6)
        assert record["train_acc"] == correct / len(split)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    val_loss = F.cross_entropy(reference(val.x), val.y).item()
    assert pos.history[-1]["val_loss"] == pytest.approx(val_loss, rel=1e-6)
    assert pos.step == 2 * math.ceil(200 / 32)


def test_schedule_sets_lr_for_each_step():
    seen = []

    class Record(Hooks):
        def on_step_end(self, record):
            seen.append(record.lr)

    model = mlp((4,), 3, widths=(8,))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    fit(model, InMemoryLoader(blobs(), 50), opt, F.cross_entropy, epochs=1,
        schedule=lambda t: 0.1 / (t + 1), callbacks=[Record()])  # fmt: skip
    assert seen == [0.1, 0.05, 0.1 / 3, 0.025]


def test_non_finite_loss_raises_before_the_step_is_applied():
    model = mlp((4,), 3, widths=(8,))
    opt = torch.optim.SGD(model.parameters(), lr=1e12)
    with pytest.raises(NonFiniteLossError, match="loss became (nan|inf) at step") as info:
        fit(model, InMemoryLoader(blobs(), 20, seed=0), opt, F.cross_entropy, epochs=50)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert info.value.step >= 2


def test_callback_stop_signal_ends_training_after_that_epoch():
    class StopAtTwo(Hooks):
        def on_epoch_end(self, record):
            return STOP if record.epoch == 2 else None

    model = mlp((4,), 3, widths=(8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pos = fit(
        model, InMemoryLoader(blobs(), 50), opt, F.cross_entropy, epochs=10, callbacks=[StopAtTwo()]
    )
    assert len(pos.history) == 2


def test_evaluate_restores_train_mode_and_uses_no_grad():
    model = mlp((4,), 3, widths=(8,), dropout=0.5).train()
    split = blobs()
    loss, acc = evaluate(model, split, F.cross_entropy, batch_size=64)
    assert model.training
    with torch.no_grad():
        model.eval()
        expected = F.cross_entropy(model(split.x), split.y).item()
    assert loss == pytest.approx(expected, rel=1e-6)
    assert 0.0 <= acc <= 1.0


def test_tta_averages_class_probabilities_over_flips():
    """`predict_logits` with tta = log of the mean softmax over the image and its flips,
    computed here by hand; `evaluate` accepts it and rejects an unknown name in one line."""
    from trainlab.train.loop import predict_logits

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).double()
    x = torch.randn(5, 1, 3, 4, dtype=torch.float64)
    want = (model(x).softmax(-1) + model(x.flip(-1)).softmax(-1)) / 2
    got = predict_logits(model, x, ("hflip",)).exp()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    both = model(x).softmax(-1) + model(x.flip(-1)).softmax(-1) + model(x.flip(-2)).softmax(-1)
    got = predict_logits(model, x, ("hflip", "vflip")).exp()
    torch.testing.assert_close(got, both / 3, rtol=1e-12, atol=1e-14)
    split = TensorSplit(x.float(), torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match="tta: unknown 'rot90'; expected some of"):
        evaluate(model.float(), split, F.cross_entropy, tta=("rot90",))


def test_tta_shift_averages_over_the_four_one_pixel_translations():
    """ "shift" adds the images moved one pixel down, up, right and left, zero-filled (built
    here by hand with index arithmetic), in the input's memory format."""
    from trainlab.train.loop import predict_logits, shifted

    torch.manual_seed(1)
    x = torch.randn(4, 2, 5, 6, dtype=torch.float64)
    down = torch.zeros_like(x)
    down[..., 1:, :] = x[..., :-1, :]  # row i of the result is row i - 1 of x
    left = torch.zeros_like(x)
    left[..., :, :-1] = x[..., :, 1:]
    torch.testing.assert_close(shifted(x, 1, 0), down, rtol=0, atol=0)
    torch.testing.assert_close(shifted(x, 0, -1), left, rtol=0, atol=0)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert shifted(cl, 1, 0).is_contiguous(memory_format=torch.channels_last)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(60, 3)).double()
    views = [x, shifted(x, 1, 0), shifted(x, -1, 0), shifted(x, 0, 1), shifted(x, 0, -1)]
    want = sum(model(v).softmax(-1) for v in views) / 5
    torch.testing.assert_close(
        predict_logits(model, x, ("shift",)).exp(), want, rtol=1e-12, atol=1e-14
    )
    # with a flip: every view and its mirror image (flips x shifts, 10 views)
    both = views + [v.flip(-1) for v in views]
    want = sum(model(v).softmax(-1) for v in both) / 10
    got = predict_logits(model, x, ("hflip", "shift")).exp()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def _two_group_sgd(model, lrs=(0.1, 0.02)):
    """SGD over [first layer, the rest] with different rates."""
    params = list(model.parameters())
    return torch.optim.SGD(
        [{"params": params[:2], "lr": lrs[0]}, {"params": params[2:], "lr": lrs[1]}]
    )


def test_fit_without_schedule_leaves_group_rates_alone():
    model = mlp((4,), 3, widths=(8,))
    opt = _two_group_sgd(model)
    fit(model, InMemoryLoader(blobs(), 50), opt, F.cross_entropy, epochs=1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.02]


def test_schedule_keeps_each_groups_ratio_to_group_0():
    from trainlab import optim as to

    seen = []

    class Record(Hooks):
        def on_step_end(self, record):
            seen.append([g["lr"] for g in opt.param_groups])

    model = mlp((4,), 3, widths=(8,))
    params = list(model.parameters())
    opt = to.Optimizer(
        [{"params": params[:2], "transform": to.sgd(0.1, momentum=0.9)},
         {"params": params[2:], "transform": to.sgd(0.02, momentum=0.9)}]
    )  # fmt: skip
    schedule = lambda t: 0.5 / (t + 1)  # noqa: E731
    loader = InMemoryLoader(blobs(), 50)
    fit(model, loader, opt, F.cross_entropy, epochs=2, schedule=schedule, callbacks=[Record()])
    assert len(seen) == 8
    for t, (lr0, lr1) in enumerate(seen):
        assert lr0 == schedule(t)
        assert lr1 == pytest.approx(schedule(t) * 0.2, rel=1e-15)
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, pytest.approx(0.2)]
