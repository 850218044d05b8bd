"""`train.compile`: torch.compile'd training equals eager training (float64, probes on, across a
resume), its compile time is reported apart, and a failure to compile falls back to eager."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from trainlab.cli import main
from trainlab.run import runner
from trainlab.train.compile import compile_model

RECIPE = """\
name: compiled
seed: 2
data: {name: mnist1d, subset: 1000, batch_size: 100, val_fraction: 0.2}
model: {name: mlp, widths: [32]}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
diagnose: {probes: true, interval: 3}
train: {epochs: 2, dtype: float64, early_stopping: null, channels_last: false, log_every: 1}
"""


def _assert_close(a: object, b: object, path: str = "") -> None:
    """Equal structure, equal values (floats to 1e-9)."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), path
        for k in b:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-9, rel=1e-9), path
    else:
        assert a == b, path


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def _rows(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compile")
    recipe = root / "r.yaml"
    recipe.write_text(RECIPE)
    out = {}
    for name, sets in (("eager", []), ("compiled", ["--set", "train.compile=true"])):
        out[name] = root / name
        assert main(["train", str(recipe), "--run-dir", str(out[name]), "--quiet", *sets]) == 0
    return out


def test_compiled_training_equals_eager(runs: dict[str, Path]) -> None:
    eager, compiled = (_weights(runs[k]) for k in ("eager", "compiled"))
    gap = max((eager[k] - compiled[k]).abs().max().item() for k in eager)
    assert gap < 1e-12
    steps = [(_rows(runs[k], "step")) for k in ("eager", "compiled")]
    assert [r["loss"] for r in steps[0]] == pytest.approx([r["loss"] for r in steps[1]], abs=1e-12)
    (line,) = _rows(runs["compiled"], "compile")
    assert line["fallback"] is None and line["seconds"] > 0
    assert not _rows(runs["eager"], "compile")
    probes = [json.loads((runs[k] / "probes.json").read_text()) for k in ("eager", "compiled")]
    assert probes[0]["layers"]["1"]["mean"]  # the probes measured activations ...
    _assert_close(probes[1], probes[0])  # ... and measured the same under compile


def test_compiled_run_resumes_to_the_same_weights(runs: dict[str, Path], tmp_path: Path) -> None:
    """Cut the compiled run back to its epoch-1 checkpoint and resume it (compiling again)."""
    run = tmp_path / "cut"
    shutil.copytree(runs["compiled"], run)
    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    shutil.rmtree(newest)
    for name in ("result.json", "model.safetensors", "verdicts.json", "report.html"):
        (run / name).unlink(missing_ok=True)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    resumed, eager = _weights(run), _weights(runs["eager"])
    assert max((resumed[k] - eager[k]).abs().max().item() for k in eager) < 1e-12
    assert len(_rows(run, "compile")) == 2  # each start compiles and says how long it took


def _failing_backend(gm: torch.fx.GraphModule, example_inputs: list) -> None:
    raise RuntimeError("no compiler here")


def test_a_failed_compile_falls_back_to_eager() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    torch._dynamo.reset()
    seconds, failure = compile_model(model, x, y, F.cross_entropy, backend=_failing_backend)
    assert failure is not None and "no compiler here" in failure and seconds >= 0
    assert "forward" not in model.__dict__  # eager again
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # warm-up left no trace
    assert all(p.grad is None for p in model.parameters())
    assert model(x).shape == (16, 3)


def test_the_run_says_so_in_one_line_and_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return compile_model(*args, **kwargs, backend=_failing_backend)

    monkeypatch.setattr(runner, "compile_model", failing)
    torch._dynamo.reset()  # forget the code compiled by the tests above for this model class
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("epochs: 2", "epochs: 1"))
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--run-dir", str(run), "--quiet",
                 "--set", "train.compile=true"]) == 0  # fmt: skip
    warnings = [x for x in capsys.readouterr().err.splitlines() if "train.compile" in x]
    assert len(warnings) == 1 and "training in eager mode" in warnings[0]
    (line,) = _rows(run, "compile")
    assert "no compiler here" in line["fallback"]
