"""Durable writes and the torn-line tolerant metrics log."""

import json
import os
import stat

import numpy as np
import pytest

from trainlab.diagnose.probe_file import merge_summaries
from trainlab.durable import replacing, write_json, write_text
from trainlab.train.metrics_log import count_lines, read_jsonl, truncate_after, truncate_to


def test_write_replaces_whole_file_with_plain_permissions(tmp_path):
    path = tmp_path / "a.json"
    write_text(path, "old\n")
    write_json(path, {"x": 1}, indent=2)
    assert json.loads(path.read_text()) == {"x": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "plot.png"
    write_text(path, "old")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png"  # writers see the format
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_reader_drops_a_torn_last_line_and_junk(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n[1, 2]\nnot json\n{"step": 2}\n{"step": 3, "lo')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    assert count_lines(path) == 4  # whole lines, whatever they hold
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_truncate_to_keeps_whole_lines_and_drops_the_torn_one(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')
    truncate_to(path, 2)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    truncate_to(path, 5)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_truncate_after_step_for_old_checkpoints(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"kind": "step", "step": 10}, {"kind": "epoch", "step": 20},
            {"kind": "step", "step": 30}, {"kind": "test", "step": 20}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    truncate_after(path, 20)
    assert read_jsonl(path) == rows[:2]


def _summary(steps: list[int]) -> dict:
    n = len(steps)
    series = {"mean": np.arange(n, dtype=float), "std": np.ones(n), "hist": np.ones((n, 3)),
              "dead_fraction": None, "saturated_fraction": None}  # fmt: skip
    return {
        "steps": np.array(steps, dtype=np.int64), "probes": n, "stride": 1,
        "layers": {"fc": {**series, "edges": np.linspace(0, 1, 4), "hist_total": np.full(3, n)}},
        "params": {"fc.weight": {"grad_norm": np.arange(n, dtype=float), "weight_norm": None,
                                 "update_ratio": np.ones(n)}},
        "first_nonfinite": None,
    }  # fmt: skip


def test_merge_with_nothing_new_keeps_the_rows_up_to_the_checkpoint():
    """A run resumed from its final checkpoint probes nothing more; its summary is the old one
    up to that step (this once came out with every series None)."""
    old = _summary([10, 20, 30])
    merged = merge_summaries(old, _summary([]), upto_step=20)
    assert merged["steps"].tolist() == [10, 20]
    assert merged["params"]["fc.weight"]["grad_norm"].tolist() == [0.0, 1.0]
    assert merged["layers"]["fc"]["mean"].tolist() == [0.0, 1.0]
    assert merged["params"]["fc.weight"]["weight_norm"] is None
    assert np.array_equal(merged["layers"]["fc"]["edges"], old["layers"]["fc"]["edges"])


def test_merge_appends_new_rows_after_the_checkpoint():
    merged = merge_summaries(_summary([10, 20, 30]), _summary([30, 40]), upto_step=20)
    assert merged["steps"].tolist() == [10, 20, 30, 40]
    assert merged["params"]["fc.weight"]["grad_norm"].tolist() == [0.0, 1.0, 0.0, 1.0]
