"""Recipe optimizer sections: aliases, torch.optim by name, explicit chains, SAM, Lookahead."""

import pytest
import torch
import torch.nn.functional as F

from trainlab import optim
from trainlab.nn import mlp
from trainlab.run.builders import build_optimizer, build_schedule
from trainlab.run.config import OptimizerConfig, RecipeError, validate_recipe
from trainlab.train.loop import train_step


def model():
    torch.manual_seed(0)
    return mlp((4,), 3, widths=(8,))


def run_steps(opt, net, n=5):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)
    return [train_step(net, opt, F.cross_entropy, x, y)[0] for _ in range(n)]


def test_alias_follows_torch_sgd():
    a, b = model(), model()
    ours = build_optimizer(OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True), a)
    theirs = build_optimizer(
        OptimizerConfig(name="torch.SGD", lr=0.1, momentum=0.9, nesterov=True), b
    )
    assert isinstance(ours, optim.Optimizer) and isinstance(theirs, torch.optim.SGD)
    assert run_steps(ours, a) == pytest.approx(run_steps(theirs, b), rel=1e-5)


def test_explicit_chain_equals_the_adamw_alias():
    a, b = model(), model()
    spec = [{"name": "scale_by_adam"}, {"name": "add_decayed_weights", "weight_decay": 0.01}]
    chained = build_optimizer(OptimizerConfig(name="adamw", lr=1e-2, chain=spec), a)
    alias = build_optimizer(OptimizerConfig(name="adamw", lr=1e-2, weight_decay=0.01), b)
    run_steps(chained, a), run_steps(alias, b)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_sam_section_wraps_the_alias_and_evaluates_twice():
    net = model()
    opt = build_optimizer(
        OptimizerConfig(name="sgd", lr=0.1, sam={"policy": "sam", "rho": 0.05}), net
    )
    assert isinstance(opt, optim.SAM)
    calls = []
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))

    def counted(outputs, targets):
        calls.append(1)
        return F.cross_entropy(outputs, targets)

    before = F.cross_entropy(net(x), y).item()
    loss, _ = train_step(net, opt, counted, x, y)
    assert len(calls) == 2 and loss == pytest.approx(before)


def test_lookahead_section_keeps_slow_weights_in_state():
    net = model()
    opt = build_optimizer(
        OptimizerConfig(name="adam", lr=1e-2, lookahead={"k": 3, "alpha": 0.5}), net
    )
    run_steps(opt, net, n=4)
    assert optim.find_states(opt.transform_state(), optim.LookaheadState)


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        ({"name": "adma"}, "unknown optimizer 'adma' (did you mean 'adam'?)"),
        (
            {"name": "adam", "beta": 0.9},
            "optimizer.beta: adam has no argument 'beta' (did you mean 'betas'?)",
        ),
        ({"name": "torch.SDG"}, "unknown torch optimizer 'SDG' (did you mean 'SGD'?)"),
        (
            {"name": "sgd", "chain": [{"name": "scale_by_adma"}]},
            "unknown transform 'scale_by_adma'",
        ),
        (
            {"name": "sgd", "sam": {"policy": "eg_sam"}},
            "unknown SAM policy 'eg_sam' (did you mean 'eg-sam'?)",
        ),
        (
            {"name": "sgd", "sam": {"policy": "sam", "rh": 1}},
            "SAM policy 'sam': unknown argument 'rh'",
        ),
        ({"name": "adam", "betas": [0.9, 1.5]}, "recipe field optimizer"),
    ],
)
def test_bad_optimizer_sections_fail_in_one_line(cfg, expected):
    with pytest.raises(RecipeError) as info:
        recipe = validate_recipe({"optimizer": {"lr": 0.1, **cfg}})
        build_optimizer(recipe.optimizer, model())
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_schedule_fills_lr_and_total_steps():
    schedule = build_schedule("one_cycle", {}, lr=0.2, total_steps=100)
    assert max(schedule(t) for t in range(100)) == pytest.approx(0.2)
    with pytest.raises(RecipeError, match="unknown schedule 'cosin'"):
        build_schedule("cosin", {}, 0.1, 10)
