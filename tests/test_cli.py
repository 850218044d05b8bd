"""The `trainlab` command, in process: listings, a small real run, one-line errors."""

import json

import pytest

from trainlab.cli import main
from trainlab.data import DATASETS

SMALL = ["--set", "data.name=digits", "--set", "model.name=mlp", "--set", "model.widths=[32]",
         "--set", "optimizer.lr=0.05", "--set", "schedule.name=constant", "--set", "train.epochs=2",
         "--set", "data.normalize=per_feature", "--set", "data.batch_size=16"]  # fmt: skip


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_recipes_lists_the_bundled_examples(capsys):
    code, out, _ = run(capsys, "recipes")
    assert code == 0 and "default" in out and "mlp" in out


def test_data_list_shows_every_dataset(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == list(DATASETS)


def test_data_info_is_json_with_shapes(capsys):
    code, out, _ = run(capsys, "data", "info", "digits")
    info = json.loads(out)
    assert code == 0 and info["input_shape"] == [1, 8, 8] and info["num_classes"] == 10


def test_train_small_recipe_writes_a_complete_run_dir(capsys, tmp_path):
    code, out, _ = run(capsys, "train", *SMALL, "--set", f"runs_dir={tmp_path}", "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["epochs"] == 2 and result["test_acc"] > 0.85
    (run_dir,) = tmp_path.iterdir()
    for name in ("recipe.yaml", "metrics.jsonl", "curves.png", "result.json", "checkpoints/LATEST"):
        assert (run_dir / name).exists(), name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert records[-1]["kind"] == "test" and records[-1]["test_acc"] == result["test_acc"]


def test_last_line_reports_test_accuracy(capsys, tmp_path):
    code, out, _ = run(capsys, "train", *SMALL, "--set", f"runs_dir={tmp_path}", "--quiet")
    assert code == 0 and out.strip().splitlines()[-1].startswith("test accuracy ")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "optimizer.momentun=0.9",
            "optimizer.momentun: sgd has no argument 'momentun' (did you mean 'momentum'?)",
        ),
        ("optimizer.name=adma", "unknown optimizer 'adma' (did you mean 'adam'?)"),
        ("schedule.name=cosin", "unknown schedule 'cosin'"),
        ("data.batch_sise=3", "data.batch_sise: unknown field (did you mean 'batch_size'?)"),
        ("data.options={n: 3}", "recipe field data.options"),
    ],
)
def test_bad_input_is_one_line_and_nothing_runs(capsys, tmp_path, override, expected):
    code, out, err = run(
        capsys, "train", *SMALL, "--set", f"runs_dir={tmp_path}", "--set", override
    )
    assert code == 1 and expected in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir()), "a run directory was created for a bad recipe"


def test_resume_of_a_non_run_directory_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--resume", str(tmp_path))
    assert code == 1 and "not a run directory" in err


def test_lab_activation_stats_is_wired(capsys, tmp_path):
    out = str(tmp_path / "h.png")
    argv = [
        "lab",
        "activation-stats",
        "--activation",
        "relu",
        "--init",
        "kaiming_normal",
        "--depth",
        "3",
        "--width",
        "64",
        "--samples",
        "200",
        "--json",
        "--out",
        out,
    ]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert [r["layer"] for r in rows][-1] in (3, "hidden 3") and (tmp_path / "h.png").exists()


def test_lr_find_prints_every_rule_and_saves_a_plot(capsys, tmp_path):
    out = tmp_path / "lr.png"
    sets = ["data.name=digits", "model.name=mlp", "model.widths=[32]", "data.batch_size=64"]
    argv = ["lr-find", "--start", "1e-4", "--end", "10", "--out", str(out)]
    assert main([*argv, *[a for s in sets for a in ("--set", s)]]) == 0
    text = capsys.readouterr().out
    for rule in ("steepest", "minimum/10", "valley", "spread"):
        assert rule in text
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_lr_find_range_must_increase(capsys):
    assert main(["lr-find", "--start", "1", "--end", "0.1"]) == 1
    assert "expected 0 < --start < --end" in capsys.readouterr().err


def test_point_progress_in_a_log_is_one_line_per_tenth() -> None:
    import io

    from trainlab.cli import point_progress

    log = io.StringIO()  # not a terminal
    progress = point_progress(log)
    for done in range(1, 122):
        progress(done, 121)
    lines = log.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1] == "  121/121 points" and "\r" not in log.getvalue()


def test_dry_run_prints_the_resolved_recipe_and_trains_nothing(tmp_path, capsys) -> None:
    import yaml

    from trainlab.run.config import load_recipe

    code = main(["train", "mlp", "--set", "optimizer.lr=0.05", "--runs-dir", str(tmp_path),
                 "--dry-run"])  # fmt: skip
    assert code == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    from trainlab.cli import _recipe_path

    expected = load_recipe(_recipe_path("mlp"), ["optimizer.lr=0.05", f"runs_dir={tmp_path}"])
    assert shown == expected.model_dump(mode="json")
    assert shown["optimizer"]["lr"] == 0.05 and shown["runs_dir"] == str(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_runs_dir_puts_the_run_there(tmp_path, capsys) -> None:
    code = main(["train", "mlp", "--set", "data.name=digits", "--set", "train.epochs=1",
                 "--runs-dir", str(tmp_path / "mine"), "--quiet"])  # fmt: skip
    assert code == 0
    (run,) = (tmp_path / "mine").iterdir()
    assert (run / "result.json").is_file()
    assert capsys.readouterr().out.strip().endswith(str(run))
