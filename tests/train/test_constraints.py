"""Max-norm constraints (`trainlab.train.constraints`) against a hand computation, and a
training run whose every unit ends within the bound."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.train.constraints import MaxNorm, max_norm_


def test_rows_above_the_bound_are_rescaled_exactly_by_hand() -> None:
    layer = nn.Linear(2, 3).double()
    with torch.no_grad():
        layer.weight.copy_(
            torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, -10.0]], dtype=torch.float64)
        )
        layer.bias.fill_(7.0)
    assert max_norm_(layer, 2.0) == 2
    want = torch.tensor([[1.2, 1.6], [0.6, 0.8], [0.0, -2.0]], dtype=torch.float64)
    torch.testing.assert_close(layer.weight.detach(), want, rtol=1e-15, atol=0)  # 3,4 -> *2/5
    assert torch.equal(layer.weight.detach()[1], want[1])  # under the bound: untouched
    assert torch.equal(layer.bias.detach(), torch.full((3,), 7.0, dtype=torch.float64))


def test_conv_filters_are_constrained_as_flattened_vectors() -> None:
    conv = nn.Conv2d(2, 4, 3).double()
    with torch.no_grad():
        conv.weight.mul_(100)
    before = conv.weight.detach().clone()
    assert max_norm_(conv, 0.5) == 4
    norms = conv.weight.detach().reshape(4, -1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full((4,), 0.5, dtype=torch.float64))
    ratio = conv.weight.detach() / before  # each filter scaled as a whole
    for k in range(4):
        assert torch.allclose(ratio[k], ratio[k].flatten()[0].expand_as(ratio[k]))


def test_training_with_the_hook_ends_within_the_bound(tmp_path) -> None:  # noqa: ANN001
    from trainlab.run.config import validate_recipe
    from trainlab.run.runner import train_recipe

    recipe = validate_recipe({
        "name": "maxnorm", "runs_dir": str(tmp_path),
        "diagnose": {"probes": False, "report": False},
        "data": {"name": "digits", "batch_size": 64}, "model": {"name": "mlp", "widths": [32]},
        "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.9},
        "schedule": {"name": "constant"}, "regularization": {"max_norm": 0.5},
        "train": {"epochs": 2, "threads": 1},
    })  # fmt: skip
    result = train_recipe(recipe, quiet=True)
    model = result.experiment.model
    rows = [m.weight.detach() for m in model.modules() if isinstance(m, nn.Linear)]
    assert max(float(w.norm(dim=1).max()) for w in rows) <= 0.5 + 1e-6
    assert any(isinstance(cb, MaxNorm) for cb in result.experiment.callbacks)


def test_bad_bound_is_one_line() -> None:
    with pytest.raises(ValueError, match="expected a norm bound c > 0"):
        max_norm_(nn.Linear(2, 2), 0.0)
