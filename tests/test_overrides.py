"""`--set` changes exactly one field of the resolved recipe, for the built-in default and every
bundled recipe; a new section name starts that section from the name's own defaults.

(Before: `--set optimizer.lr=0.05` on the default recipe trained plain SGD — the section's
momentum, Nesterov and weight decay were dropped — and `--set schedule.pct_start=0.2` turned
one-cycle into a constant rate.)"""

from __future__ import annotations

import json

import pytest

from trainlab.run.bundled import bundled_recipes
from trainlab.run.config import RecipeError, load_recipe

SOURCES = {"default": None, **bundled_recipes()}


def _leaves(obj: object, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    if isinstance(obj, dict) and obj:
        return [leaf for k, v in obj.items() for leaf in _leaves(v, (*prefix, k))]
    return [(prefix, obj)]


def _candidates(value: object) -> list[object]:
    """Other values of the same type to try, most likely valid first."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value * 2, max(value - 1, 0)]
    if isinstance(value, float):
        return [value * 0.5, value + 0.01, value * 1.5, 0.5]
    return []


def _at(obj: dict, path: tuple) -> object:
    for key in path:
        obj = obj[key]
    return obj


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_set_changes_only_that_field(source):
    base = load_recipe(SOURCES[source]).model_dump(mode="json")
    tried = changed = 0
    for path, value in _leaves(base):
        if path[-1] == "name" or path[0] == "name":
            continue  # a new name resets its section, by design (tested below)
        for new in _candidates(value):
            key = ".".join(map(str, path))
            try:
                got = load_recipe(SOURCES[source], [f"{key}={json.dumps(new)}"])
            except RecipeError:
                continue  # out of the field's range: try another value
            dumped = got.model_dump(mode="json")
            assert _at(dumped, path) == new, key
            _set = dict(_leaves(dumped))
            others = {p: v for p, v in _leaves(base) if p != path}
            assert {p: _set.get(p) for p in others} == others, f"{source}: --set {key}"
            changed += 1
            break
        tried += bool(_candidates(value))
    assert changed >= 0.8 * tried and changed > 10, (changed, tried)


def test_the_reported_cases():
    opt = load_recipe(None, ["optimizer.lr=0.05"]).optimizer
    assert (opt.name, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == (
        "sgd", 0.05, 0.9, True, 0.0005)  # fmt: skip
    sched = load_recipe(None, ["schedule.pct_start=0.2"]).schedule
    assert sched.name == "one_cycle" and sched.pct_start == 0.2


def test_a_new_name_starts_from_that_names_defaults_whatever_the_order():
    opt = load_recipe(None, ["optimizer.lr=0.01", "optimizer.name=adam"]).optimizer
    assert opt.name == "adam" and opt.lr == 0.01 and opt.betas == [0.9, 0.999]
    assert load_recipe(None, ["optimizer.name=adam"]).optimizer.lr == 0.001  # torch's default
    assert load_recipe(None, ["optimizer.name=adagrad"]).optimizer.lr == 0.01
    with pytest.raises(RecipeError, match="adam has no argument 'momentum'; accepted: lr, betas"):
        load_recipe(None, ["optimizer.name=adam", "optimizer.momentum=0.9"])
    model = load_recipe(None, ["model.name=mlp"]).model
    assert model.name == "mlp" and model.norm == "none"  # not the CNN's BatchNorm


def test_the_run_records_every_value_it_used():
    """adam's betas, eps, ... are written out even when the recipe does not give them."""
    dumped = load_recipe(SOURCES["mlp"]).model_dump(mode="json")["optimizer"]
    assert dumped["betas"] == [0.9, 0.999] and dumped["eps"] == 1e-8 and dumped["lr"] == 0.001


def test_scientific_notation_is_a_number(tmp_path):
    """PyYAML (YAML 1.1) reads `1e-4` as a string; an optimizer would have got '1e-4'."""
    assert load_recipe(None, ["optimizer.weight_decay=1e-4"]).optimizer.weight_decay == 1e-4
    path = tmp_path / "r.yaml"
    path.write_text("optimizer: {name: adam, lr: 3e-4, eps: 1e-7}\n")
    opt = load_recipe(path).optimizer
    assert (opt.lr, opt.eps) == (3e-4, 1e-7) and isinstance(opt.eps, float)
