"""Bundled recipes and studies: listed apart, found by name with "did you mean", a study given
to `train` says which command runs it — and all of it works from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from trainlab.cli import main
from trainlab.run.bundled import bundled_recipes, bundled_studies

ROOT = Path(__file__).resolve().parents[1]


def test_recipes_lists_recipes_and_studies_apart(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    recipes, studies = out.split("studies (")
    for name in bundled_recipes():
        assert f"  {name} " in recipes
    for name in bundled_studies():
        assert f"  {name} " in studies and f"  {name} " not in recipes
    assert {"mlp", "mnist1d-mlp"} <= set(bundled_recipes())
    assert {"compare-sam", "connect"} <= set(bundled_studies())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mpl", "unknown recipe 'mpl' (did you mean 'mlp'?)"),
        ("compare-sam", "compare-sam is a comparison file, not a recipe; run it with: "
                        "trainlab compare compare-sam"),
        ("connect", "connect is a connect file, not a recipe; run it with: trainlab connect"),
        ("nosuch.yaml", "recipe file not found: nosuch.yaml"),
    ],
)  # fmt: skip
def test_train_names_what_to_run_instead(name, expected, capsys):
    assert main(["train", name]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and expected in err


def test_a_study_names_its_base_recipe_by_bundled_name(tmp_path, capsys):
    spec = tmp_path / "cmp.yaml"
    spec.write_text("recipe: mnist1d-mlp\nseeds: [0]\nvariants: {a: {}}\n")
    from trainlab.study import load_compare_spec

    _, recipes = load_compare_spec(spec)
    assert recipes["a"][0].data.name == "mnist1d"
    spec.write_text("recipe: mnist1d-mpl\nseeds: [0]\nvariants: {a: {}}\n")
    assert main(["compare", str(spec)]) == 1
    assert "did you mean 'mnist1d-mlp'" in capsys.readouterr().err


def test_installed_wheel_lists_and_trains_bundled_recipes(tmp_path):
    """Build a wheel, install it into a new virtual environment outside the source tree (its
    dependencies reused from this environment through a .pth file: nothing is downloaded),
    and run `trainlab recipes` and a one-epoch `trainlab train mlp` from a directory that is
    not the repository."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = wheels.glob("trainlab-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def trainlab(*args: str) -> str:
        done = subprocess.run([str(venv / "bin" / "trainlab"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = subprocess.run(
        [str(python), "-c", "import trainlab; print(trainlab.__file__)"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert str(venv) in where.stdout  # the installed copy, not the source tree
    listed = trainlab("recipes")
    for name in [*bundled_recipes(), *bundled_studies()]:
        assert f"  {name} " in listed
    last = trainlab("train", "mlp", "--set", "train.epochs=1", "--set", "data.subset=2000",
                    "--quiet").strip().splitlines()[-1]  # fmt: skip
    assert last.startswith("test accuracy ") and "(1 epochs" in last
