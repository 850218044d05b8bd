"""Ensembles from a recipe (trainlab.study.ensemble): the ensemble's accuracy is that of the
hand-averaged member probabilities, members share the data, bagging resamples, snapshots come
at cycle ends, a half-finished ensemble resumes to the same numbers, bad input is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainlab.run.config import Recipe, RecipeError, load_recipe, validate_recipe
from trainlab.run.experiment import build
from trainlab.study.ensemble import member_recipe, run_ensemble

QUIET = (
    {"diagnose": {"probes": False, "report": False}} if "diagnose" in Recipe.model_fields else {}
)


def recipe(tmp_path: Path, train: dict | None = None, **ensemble: object) -> Recipe:
    return validate_recipe({
        "name": "ens", "seed": 3, "runs_dir": str(tmp_path), **QUIET,
        "data": {"name": "digits", "batch_size": 64},
        "model": {"name": "mlp", "widths": [32]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"name": "constant"},
        "train": {"epochs": 2, "threads": 1, "early_stopping": None, **(train or {})},
        "ensemble": ensemble,
    })  # fmt: skip


def member_probs(member: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax probabilities, labels) of a finished member run on its test split."""
    exp = build(load_recipe(member / "recipe.yaml"))
    exp.model.load_state_dict(load_file(str(member / "model.safetensors")))
    with torch.no_grad():
        return torch.softmax(exp.model.eval()(exp.test.x), dim=1), exp.test.y


def test_independent_ensemble_accuracy_is_that_of_hand_averaged_probabilities(
    tmp_path: Path,
) -> None:
    result = run_ensemble(recipe(tmp_path, members=2), quiet=True)
    run = Path(result.run_dir)
    saved = json.loads((run / "ensemble.json").read_text())
    (p0, y), (p1, y1) = (member_probs(run / "members" / k) for k in ("0", "1"))
    assert torch.equal(y, y1)
    hand = int((((p0 + p1) / 2).argmax(dim=1) == y).sum()) / len(y)
    assert saved["test_acc"] == result.test_acc == pytest.approx(hand, abs=1e-12)
    for k, p in enumerate((p0, p1)):
        own = json.loads((run / "members" / str(k) / "result.json").read_text())["test_acc"]
        assert saved["members"][k]["test_acc"] == pytest.approx(own, abs=1e-12)
        assert int((p.argmax(1) == y).sum()) / len(y) == own
    assert not torch.allclose(p0, p1)  # different seeds, different members
    hand_nll = -((p0 + p1) / 2).gather(1, y[:, None]).log().mean()
    assert saved["test_nll"] == pytest.approx(float(hand_nll), rel=1e-5)
    # a half-finished ensemble (member 1 lost) resumes to the same numbers: member 1 is then
    # retrained alone, not in the stack the first run used, so float32 rounding may differ
    (run / "ensemble.json").unlink()
    shutil.rmtree(run / "members" / "1")
    again = run_ensemble(recipe(tmp_path, members=2), run, quiet=True)
    first, second = result.summary(), again.summary()
    assert second["test_nll"] == pytest.approx(first["test_nll"], rel=1e-4)
    for key in ("test_acc", "mean_member_acc"):  # a rounding may flip one prediction
        assert second[key] == pytest.approx(first[key], abs=2 / len(y))
    assert [m["name"] for m in second["members"]] == [m["name"] for m in first["members"]]
    # resuming a finished ensemble returns what it recorded, training nothing
    mtime = (run / "ensemble.json").stat().st_mtime_ns
    assert run_ensemble(recipe(tmp_path, members=2), run, quiet=True) == again
    assert (run / "ensemble.json").stat().st_mtime_ns == mtime


def test_members_share_the_data_and_bagging_resamples(tmp_path: Path) -> None:
    base = recipe(tmp_path, method="bagging", members=2)
    first, second = (build(member_recipe(base, k)) for k in (0, 1))
    assert torch.equal(first.test.x, second.test.x) and torch.equal(first.val.x, second.val.x)
    n = len(first.loader.split)
    distinct = len(torch.unique(first.loader.split.x.reshape(n, -1), dim=0))
    assert 0.55 * n < distinct < 0.72 * n  # about 1 - 1/e of the examples
    assert not torch.equal(first.loader.split.y, second.loader.split.y)
    plain = build(member_recipe(recipe(tmp_path, method="independent", members=2), 1))
    assert len(torch.unique(plain.loader.split.x.reshape(n, -1), dim=0)) == n


def test_snapshot_ensemble_keeps_one_snapshot_per_cycle(tmp_path: Path) -> None:
    result = run_ensemble(recipe(tmp_path, method="snapshot", members=2), quiet=True)
    steps = [m["step"] for m in result.members]
    run = json.loads((Path(result.run_dir) / "result.json").read_text())
    assert steps[1] == 2 * steps[0]  # ends of the two cosine cycles; the last is the end
    assert result.members[1]["test_acc"] == pytest.approx(run["test_acc"], abs=1e-12)


@pytest.mark.parametrize(
    ("ensemble", "train", "message"),
    [
        ({"members": 1}, {}, r"ensemble\.members: .*greater than or equal to 2"),
        ({"method": "baging"}, {}, r"ensemble\.method: .*did you mean 'bagging'"),
        ({"combine": "avg"}, {}, r"ensemble\.combine: .*did you mean 'average'"),
        ({"members": 3, "cycles": 2}, {}, r"ensemble\.cycles: expected >= members \(3\)"),
        ({"method": "snapshot", "members": 3}, {}, r"train\.epochs: .*multiple of the 3 cycles"),
        ({"method": "snapshot", "members": 2}, {"early_stopping": {}}, r"early_stopping: must be"),
    ],
)
def test_bad_ensemble_input_is_one_line(
    tmp_path: Path, ensemble: dict, train: dict, message: str
) -> None:
    with pytest.raises(RecipeError, match=message) as err:
        run_ensemble(recipe(tmp_path, train, **ensemble), quiet=True)
    assert "\n" not in str(err.value)


def test_a_member_that_cannot_be_built_fails_before_any_member_trains(tmp_path, capsys):
    """Found by the fuzzer: the error came after "member 1/5" had been printed."""
    from trainlab.cli import main

    path = tmp_path / "e.yaml"
    path.write_text("data: {name: digits, batch_size: 100000}\nmodel: {name: mlp, widths: [8]}\n"
                    "ensemble: {members: 2}\n")  # fmt: skip
    assert main(["train", str(path), "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: member 0: recipe field data.batch_size") and "\n" not in err
    assert not (tmp_path / "runs").exists()
