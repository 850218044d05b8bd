"""`train.precision`: bf16 autocast of the forward pass, fp32 weights, optimizer state and loss
(issue #18), checked against torch.autocast written out by hand."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from trainlab import optim
from trainlab.cli import main
from trainlab.train import precision
from trainlab.train.loop import train_step
from trainlab.train.precision import resolve_precision


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 10),
    )  # fmt: skip


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(32, 1, 14, 14, generator=g), torch.randint(0, 10, (32,), generator=g)


def test_resolve_precision_says_which_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("fp32") == (None, "precision: fp32")
    assert resolve_precision("bf16")[0] is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    dtype, why = resolve_precision("auto")
    assert dtype is torch.bfloat16 and "avx512_bf16" in why
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    dtype, why = resolve_precision("auto")
    assert dtype is None and "no native bf16" in why
    with pytest.raises(ValueError, match="expected one of fp32, bf16, auto"):
        resolve_precision("fp16")


def test_bf16_step_equals_torch_autocast_by_hand() -> None:
    """Three SGD steps through `train_step(autocast=bf16)` equal torch.autocast + fp32
    cross-entropy + torch.optim.SGD written out; weights and momentum stay fp32."""
    ours, ref = _cnn(), _cnn()
    opt = optim.Optimizer(ours.parameters(), optim.sgd(0.1, momentum=0.9))
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    x, y = _batch()
    for _ in range(3):
        value, _ = train_step(ours, opt, F.cross_entropy, x, y, autocast=torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = ref(x)
        assert logits.dtype == torch.bfloat16  # the forward really ran in bf16
        loss = F.cross_entropy(logits.float(), y)
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()
        assert value == pytest.approx(loss.item(), abs=1e-6)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5), name
    for a, b in zip(ours.buffers(), ref.buffers(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_bf16_differs_from_fp32() -> None:
    """So the test above can fail: the same steps in fp32 land elsewhere."""
    fp32, bf16 = _cnn(), _cnn()
    x, y = _batch()
    for model, amp in ((fp32, None), (bf16, torch.bfloat16)):
        opt = optim.Optimizer(model.parameters(), optim.sgd(0.1, momentum=0.9))
        for _ in range(3):
            train_step(model, opt, F.cross_entropy, x, y, autocast=amp)
    gap = max((a - b).abs().max().item()
              for a, b in zip(fp32.parameters(), bf16.parameters(), strict=True))  # fmt: skip
    assert gap > 1e-4


@pytest.mark.parametrize("make", [
    lambda m: optim.Optimizer(m.parameters(), optim.adamw(1e-3, weight_decay=0.01)),
    lambda m: optim.Optimizer(m.parameters(), optim.rmsprop(1e-3)),
    lambda m: optim.SAM(list(m.parameters()), optim.sgd(0.05, momentum=0.9), model=m),
    lambda m: optim.SAM(list(m.parameters()), optim.sgd(0.05), optim.og_sam_policy(0.05),
                        model=m),
])  # fmt: skip
def test_every_kind_of_optimizer_trains_under_bf16(make) -> None:  # noqa: ANN001
    model = _cnn()
    before = copy.deepcopy(model.state_dict())
    opt = make(model)
    x, y = _batch()
    losses = [train_step(model, opt, F.cross_entropy, x, y, autocast=torch.bfloat16)[0]
              for _ in range(20)]  # fmt: skip
    assert losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # BatchNorm saw each batch once per step (SAM's second pass leaves the statistics alone)
    assert int(model[1].num_batches_tracked) == 20


def test_a_run_in_bf16_says_so_and_keeps_fp32_files(tmp_path: Path) -> None:
    """Through the runner with probes on: the run records its precision, and its weights,
    probes and metrics are fp32 files as ever."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: bf16\ndata: {name: mnist1d, subset: 600, batch_size: 50}\n"
        "model: {name: mlp, widths: [32]}\ndiagnose: {probes: true}\n"
        "train: {epochs: 2, precision: bf16, early_stopping: null, channels_last: false}\n"
    )
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--run-dir", str(run), "--quiet"]) == 0
    notes = json.loads((run / "data.json").read_text())
    assert notes["precision"].startswith("precision: bf16 autocast")
    weights = load_file(str(run / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values())
    assert (run / "probes.json").is_file()
    result = json.loads((run / "result.json").read_text())
    assert 0.0 < result["test_acc"] <= 1.0
