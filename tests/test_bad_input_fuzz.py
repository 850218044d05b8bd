"""Bad input never shows a traceback: generated mutations of every bundled recipe (unknown
keys, wrong types, negative / zero / huge / NaN numbers, empty lists, an empty file, text that
is not YAML, binary bytes, a directory, garbage `--set`s) go through the command entry points
`train`, `check` and `compare` in-process, up to the point where training would start (`fit`,
the first check, the first run of a comparison are replaced by a sentinel). Each input is
either accepted or exits 1 with one line on stderr. The analysis commands get corrupt run
directories and must do the same.

The default run tries TRAINLAB_FUZZ_EXAMPLES=100 generated inputs (derandomized: the same
inputs every run); a long run: `TRAINLAB_FUZZ_EXAMPLES=2500 .venv/bin/python -m pytest -s
tests/test_bad_input_fuzz.py` (counts in test-artifacts/fuzz.json)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainlab import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "trainlab" / "recipes"
N = int(os.environ.get("TRAINLAB_FUZZ_EXAMPLES", "100"))
OUTCOMES: Counter = Counter()


def _is_recipe(raw: object) -> bool:
    return isinstance(raw, dict) and not {"variants", "runs", "curve"} & set(raw)


RECIPES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))}
RECIPES = {k: v for k, v in RECIPES.items() if _is_recipe(v)} | {"default": {}}

BAD = [None, -1, 0, -0.5, 1e308, -1e308, 10**12, 2**63, math.nan, math.inf, -math.inf, "",
       "abc", "1e-3x", "nan", [], [0], [-1, 2], [None], {}, {"a": 1}, True, False, "\x00",
       "\u2603", 0.5, 3, "relu", [[1]], {"name": "nosuch"}]  # fmt: skip
BAD_FILES = [b"", b"{: :", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", b"- a\n- b\n", b"42\n",
             b"name: [unclosed\n", b"\t\x00\x01", "caf\u00e9: \u2603\n".encode()]  # fmt: skip
BAD_SETS = ["optimizer.lr=abc", "nosuch=1", "=", "a", "optimizer=5", "data.batch_size=-3",
            "model.widths=[]", "train.epochs=0", "schedule.name=nosuch", "seed=nan",
            "data=null", "optimizer.lr=1e999", "..=1", "data.name=", "train=[1,2]"]  # fmt: skip


class Accepted(BaseException):
    """Raised where training would start: the input passed every check before it."""


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested dict (list items by index)."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _bad(draw: st.DrawFn) -> object:
    """A bad value, copied: the shared lists and dicts of BAD must never nest in themselves."""
    return copy.deepcopy(draw(st.sampled_from(BAD)))


def _mutate(raw: dict, draw: st.DrawFn) -> dict:
    """One to three mutations at random places: a bad value, a deleted key, an unknown key."""
    raw = json.loads(json.dumps(raw))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(raw)
        kind = draw(st.sampled_from(["value", "value", "delete", "unknown"]))
        path = draw(st.sampled_from(paths)) if paths else ()
        parent = raw
        for key in path[:-1]:
            parent = parent[key]
        if not path or kind == "unknown":
            target = parent if not path or isinstance(parent, dict) else raw
            target[draw(st.sampled_from(["nosuch", "lr", "name", "epochs"]))] = _bad(draw)
        elif kind == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = _bad(draw)
    return raw


@st.composite
def recipe_inputs(draw: st.DrawFn) -> tuple[bytes | None, list[str]]:
    """(file bytes, or None for a directory instead of a file; extra `--set`s)."""
    which = draw(st.sampled_from(["mutated"] * 6 + ["file", "binary", "directory", "sets"]))
    if which == "file":
        return draw(st.sampled_from(BAD_FILES)), []
    if which == "binary":
        return draw(st.binary(max_size=64)), []
    if which == "directory":
        return None, []
    base = RECIPES[draw(st.sampled_from(sorted(RECIPES)))]
    if which == "sets":
        sets = draw(st.lists(st.one_of(st.sampled_from(BAD_SETS), st.text(max_size=12)),
                             min_size=1, max_size=3))  # fmt: skip
        return yaml.safe_dump(base).encode(), sets
    return yaml.safe_dump(_mutate(base, draw), allow_unicode=True).encode(), []


def _entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace what would start the work (training, the checks, a comparison's runs)."""
    import importlib

    import trainlab.run.recipe_checks as checks
    import trainlab.run.runner as runner

    compare = importlib.import_module("trainlab.study.compare")  # the package exports a function

    def accepted(*args: object, **kwargs: object) -> None:
        raise Accepted

    monkeypatch.setattr(runner, "fit", accepted)
    monkeypatch.setattr(checks, "initial_loss_check", accepted)
    monkeypatch.setattr(compare, "run_or_read_back", accepted)
    monkeypatch.setattr(compare, "train_stacked", accepted)  # variants trained as one stack


def _cheap_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load each dataset (with its options) once per session instead of once per input."""
    import trainlab.run.experiment as experiment

    real, memo = experiment.load_bundle, {}

    def load_bundle(recipe):  # noqa: ANN001, ANN202
        key = json.dumps([recipe.data.name, recipe.data.seed, recipe.data.options],
                         sort_keys=True, default=str)  # fmt: skip
        if key not in memo:
            memo[key] = real(recipe)
        return memo[key]

    monkeypatch.setattr(experiment, "load_bundle", load_bundle)


def run_cli(argv: list[str]) -> tuple[int | str, str]:
    """(exit code, or "accepted"; stderr) of `trainlab.cli.main(argv)` in this process."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code: int | str = cli.main(argv)
        except Accepted:
            code = "accepted"
        except SystemExit as stop:  # argparse usage errors: exit 2 by design
            code = f"usage {stop.code}"
    return code, err.getvalue()


def check_outcome(code: int | str, err: str, what: str) -> None:
    OUTCOMES["accepted" if code == "accepted" else f"exit {code}"] += 1
    if code == "accepted" or code == "usage 2":
        return
    assert code == 1, f"{what}: exit {code}\n{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: {err!r}"


@pytest.fixture(scope="module", autouse=True)
def counts():
    started = time.monotonic()
    yield
    summary = {"inputs": sum(OUTCOMES.values()), **OUTCOMES,
               "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    out = Path(os.environ.get("TRAINLAB_ARTIFACTS", "test-artifacts")) / "fuzz.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nfuzz: {json.dumps(summary)}")


def _write(tmp: Path, data: bytes | None, name: str = "recipe.yaml") -> Path:
    path = tmp / name
    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    return path


FUZZ = settings(max_examples=N, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip


@FUZZ
@given(given_input=recipe_inputs(), command=st.sampled_from(["train", "check", "compare"]))
def test_mutated_recipes_are_accepted_or_one_line(given_input, command, tmp_path_factory):
    data, sets = given_input
    tmp = tmp_path_factory.mktemp("fuzz", numbered=True)
    path = _write(tmp, data)
    set_args = [a for s in sets for a in ("--set", s)]
    if command == "train":
        argv = ["train", str(path), *set_args, "--runs-dir", str(tmp / "runs"), "--quiet"]
    elif command == "check":
        argv = ["check", str(path), *set_args]
    else:
        spec = {"name": "fz", "recipe": path.name, "seeds": [0],
                "variants": {"a": {}, "b": {"optimizer.lr": 0.01}}}  # fmt: skip
        (tmp / "cmp.yaml").write_text(yaml.safe_dump(spec))
        argv = ["compare", str(tmp / "cmp.yaml"), "--runs-dir", str(tmp / "runs")]
    with pytest.MonkeyPatch.context() as mp:
        _entry_points(mp)
        _cheap_data(mp)
        code, err = run_cli(argv)
    check_outcome(code, err, f"{command} {data!r:.300} {sets}")


SPECS = st.builds(
    dict,
    name=st.sampled_from(["x", 3, None]),
    recipe=st.sampled_from(["mlp.yaml", "nosuch.yaml", "", 5, None, "."]),
    seeds=st.sampled_from([[0], [], [-1], ["a"], None, 7]),
    variants=st.sampled_from(
        [{"a": {}}, {}, [], {"a": {"nosuch": 1}}, {"a": {"optimizer.lr": "x"}}, {"a": 5}]
    ),
)


@FUZZ
@given(spec=SPECS)
def test_mutated_comparison_files_are_accepted_or_one_line(spec, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp", numbered=True)
    shutil.copy(EXAMPLES / "mlp.yaml", tmp / "mlp.yaml")
    (tmp / "cmp.yaml").write_text(yaml.safe_dump(spec))
    with pytest.MonkeyPatch.context() as mp:
        _entry_points(mp)
        _cheap_data(mp)
        code, err = run_cli(["compare", str(tmp / "cmp.yaml"), "--runs-dir", str(tmp / "r")])
    check_outcome(code, err, f"compare {spec}")


# ---------------------------------------------------------------- corrupt run directories

RUN_RECIPE = """
name: fz
data: {name: digits, batch_size: 64}
model: {name: mlp, widths: [16]}
optimizer: {name: sgd, lr: 0.1}
train: {epochs: 1, keep_checkpoints: 3}
diagnose: {report: false}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    (root / "r.yaml").write_text(RUN_RECIPE)
    assert cli.main(["train", str(root / "r.yaml"), "--run-dir", str(root / "run"),
                     "--quiet"]) == 0  # fmt: skip
    return root / "run"


def _damage(run: Path, how: str) -> Path:
    if how == "missing":
        shutil.rmtree(run)
        return run
    if how == "file":
        shutil.rmtree(run)
        run.write_text("not a directory")
        return run
    if how == "empty dir":
        shutil.rmtree(run)
        run.mkdir()
        return run
    name, content = how.split(":", 1)
    targets = list(run.glob(name))
    assert targets, f"nothing matches {name}"
    for target in targets:
        if content == "delete":
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        elif content == "truncate":
            target.write_bytes(target.read_bytes()[:40])
        else:
            target.write_bytes(content.encode())
    return run


DAMAGE = [
    "missing", "file", "empty dir", "recipe.yaml:delete", "recipe.yaml:", "recipe.yaml:{: :",
    "recipe.yaml:model: 5", "checkpoints:delete",
    "checkpoints/step-*/model.safetensors:truncate", "checkpoints/step-*/model.safetensors:delete",
    "checkpoints/LATEST:step-999", "model.safetensors:truncate", "metrics.jsonl:[1,2",
    "data.json:\x00\x01", "probes.json:{}", "result.json:[", "verdicts.json:{",
]  # fmt: skip
COMMANDS = [
    ["report"],
    ["sharpness", "--examples", "32", "--max-iter", "2", "--trace-samples", "2"],
    ["fge", "--cycles", "1", "--cycle-epochs", "1"],
    ["landscape", "--grid", "2", "--examples", "16"],
    ["interpolate", "OTHER", "--grid", "2", "--examples", "16"],
    ["connect", "OTHER", "--epochs", "1", "--points", "3", "--train-examples", "32",
     "--bn-examples", "32"],
]  # fmt: skip


@pytest.mark.parametrize("how", DAMAGE)
def test_analysis_commands_on_a_corrupt_run_are_one_line(trained, tmp_path, how):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    _damage(run, how)
    for command in COMMANDS:
        argv = [command[0], str(run), *[str(other) if a == "OTHER" else a for a in command[1:]]]
        code, err = run_cli(argv)
        if code != 0:
            check_outcome(code, err, f"{how}: {' '.join(argv)}")
        else:
            OUTCOMES["exit 0"] += 1


@pytest.mark.parametrize(
    "content", [b"optimizer: {lr: -1}\n", b"\x00\xff", b"model: {name: mpl}\n"]
)
def test_real_subprocess_bad_recipe_is_one_line_exit_1(tmp_path, content):
    """The same contract with nothing patched: a real `trainlab train` process."""
    (tmp_path / "r.yaml").write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "trainlab.cli", "train", str(tmp_path / "r.yaml"),
                           "--runs-dir", str(tmp_path / "runs"), "--quiet"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert not (tmp_path / "runs").exists()
