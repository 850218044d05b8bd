"""Every schedule, optimizer, SAM policy, chain primitive and initializer name, given no
arguments, either works or fails in one line naming the missing argument — never Python's
signature text ("missing 1 required positional argument", "unexpected keyword argument")."""

from __future__ import annotations

import pytest
from torch import nn

from trainlab.cli import main
from trainlab.init import INITIALIZERS, get_initializer
from trainlab.optim import ALIASES, POLICIES, get_policy
from trainlab.optim.registry import PRIMITIVES, get_primitive
from trainlab.run.builders import build_optimizer, build_schedule
from trainlab.run.config import OptimizerConfig, RecipeError
from trainlab.schedules import SCHEDULES

PYTHON_TEXT = ("positional argument", "keyword argument", "__init__()", "takes ")


def _one_clear_line(text: str, name: str) -> None:
    assert "\n" not in text.strip(), text
    assert not any(p in text for p in PYTHON_TEXT), text
    assert name in text, text


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_plot_of_every_name(name, tmp_path, capsys):
    code = main(["schedule", "plot", name, "--steps", "50", "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert code in (0, 1)
    if code == 1:
        _one_clear_line(err, name)
    if name == "sgdr":  # the case once reported: Python's own text about t_0
        assert "missing required argument 't_0'" in err


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_recipe_schedule_of_every_name(name):
    try:
        build_schedule(name, {}, 0.1, 100)
    except RecipeError as err:
        _one_clear_line(str(err), name)


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_every_optimizer_name_alone(name):
    try:
        build_optimizer(OptimizerConfig(name=name), nn.Linear(3, 2))
    except RecipeError as err:
        _one_clear_line(str(err), name)


@pytest.mark.parametrize(
    ("registry", "get"),
    [(POLICIES, get_policy), (PRIMITIVES, get_primitive), (INITIALIZERS, get_initializer)],
)
def test_every_policy_primitive_and_initializer_name_alone(registry, get):
    for name in sorted(registry):
        try:
            get(name)
        except ValueError as err:
            _one_clear_line(str(err), name)


def test_schedule_list_names_every_schedule_with_its_arguments(capsys):
    assert main(["schedule", "list"]) == 0
    out = capsys.readouterr().out
    for name in SCHEDULES:
        assert any(line.split()[0] == name for line in out.splitlines()[1:]), name
    (sgdr,) = [line for line in out.splitlines() if line.startswith("sgdr ")]
    assert sgdr.split()[1] == "t_0"
