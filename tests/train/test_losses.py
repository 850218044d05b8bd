"""Each loss against its formula and, where one exists, torch's function (float64)."""

import pytest
import torch
import torch.nn.functional as F

from trainlab.train.losses import LOSSES, get_loss

g = torch.Generator().manual_seed(0)
SCORES = torch.randn(64, 5, generator=g, dtype=torch.float64)
LABELS = torch.randint(0, 5, (64,), generator=g)
F1 = torch.randn(64, 1, generator=g, dtype=torch.float64)
Y01 = torch.randint(0, 2, (64,), generator=g)
YPM = 2.0 * Y01.double() - 1


def test_multiclass_hinge_is_torch_multi_margin_times_classes():
    ours = get_loss("multiclass_hinge")(SCORES, LABELS)
    torch.testing.assert_close(ours, F.multi_margin_loss(SCORES, LABELS) * 5)


def test_multiclass_hinge_hand_case():
    # CS231n's example: scores (3.2, 5.1, -1.7), true class 0 -> max(0, 5.1-3.2+1) + 0 = 2.9
    scores = torch.tensor([[3.2, 5.1, -1.7]], dtype=torch.float64)
    assert get_loss("multiclass_hinge")(scores, torch.tensor([0])).item() == pytest.approx(2.9)


def test_binary_losses_follow_seed_003():
    f = F1.reshape(-1)
    hand_hinge = torch.clamp(1 - YPM * f, min=0).mean()
    hand_logistic = torch.log(1 + torch.exp(-YPM * f)).mean()
    hand_exp = torch.exp(-YPM * f).mean()
    torch.testing.assert_close(get_loss("hinge")(F1, Y01), hand_hinge)
    torch.testing.assert_close(get_loss("logistic")(F1, Y01), hand_logistic)
    torch.testing.assert_close(get_loss("exponential")(F1, YPM), hand_exp)
    torch.testing.assert_close(
        get_loss("logistic")(F1, Y01), F.binary_cross_entropy_with_logits(f, Y01.double())
    )


def test_cross_entropy_label_smoothing_formula():
    eps, k = 0.1, 5
    logp = SCORES.log_softmax(1)
    target = torch.full_like(logp, eps / k).scatter_(1, LABELS[:, None], 1 - eps + eps / k)
    hand = -(target * logp).sum(1).mean()
    torch.testing.assert_close(get_loss("cross_entropy", label_smoothing=eps)(SCORES, LABELS), hand)


def test_nll_and_mse():
    logp = SCORES.log_softmax(1)
    hand_nll = -logp[torch.arange(64), LABELS].mean()
    torch.testing.assert_close(get_loss("nll")(logp, LABELS), hand_nll)
    onehot = torch.zeros_like(SCORES).scatter_(1, LABELS[:, None], 1.0)
    torch.testing.assert_close(get_loss("mse")(SCORES, LABELS), ((SCORES - onehot) ** 2).mean())


def test_every_loss_equals_its_reference_and_unknown_name_is_one_line():
    f, y = F1.reshape(-1), YPM
    onehot = F.one_hot(LABELS, 5).double()
    reference = {
        "cross_entropy": (SCORES, LABELS, F.cross_entropy(SCORES, LABELS)),
        "nll": (SCORES.log_softmax(1), LABELS, F.cross_entropy(SCORES, LABELS)),
        "mse": (SCORES, LABELS, ((SCORES - onehot) ** 2).mean()),
        "multiclass_hinge": (SCORES, LABELS, F.multi_margin_loss(SCORES, LABELS) * 5),
        "hinge": (F1, Y01, (1 - y * f).clamp_min(0).mean()),
        "logistic": (F1, Y01, torch.log1p(torch.exp(-y * f)).mean()),
        "exponential": (F1, Y01, torch.exp(-y * f).mean()),
    }
    assert set(reference) == set(LOSSES), "a loss without a reference"
    for name, (outputs, targets, expected) in reference.items():
        torch.testing.assert_close(get_loss(name)(outputs, targets), expected, rtol=1e-12,
                                   atol=1e-12, msg=name)  # fmt: skip
    with pytest.raises(ValueError, match="unknown loss 'hinj' \\(did you mean 'hinge'\\?\\)"):
        get_loss("hinj")
