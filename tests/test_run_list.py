"""`trainlab runs`: every run under a folder, newest first, with its status and results."""

import json
import os
import socket
import time
from pathlib import Path

from trainlab.cli import main


def fake_run(root: Path, name: str, epochs: list[float], **files: object) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text("train: {epochs: 3}\n")
    rows = [{"kind": "epoch", "step": 10 * (e + 1), "val_acc": v} for e, v in enumerate(epochs)]
    rows += files.pop("extra_rows", [])
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for file, content in files.items():
        (run / file.replace("_", ".")).write_text(json.dumps(content))
    time.sleep(0.01)  # distinct modification times: the listing is newest first
    return run


def test_runs_lists_status_epochs_and_accuracy_newest_first(tmp_path, capsys):
    host = socket.gethostname()
    fake_run(tmp_path, "a-finished", [0.5, 0.7, 0.6], result_json={"test_acc": 0.65})
    fake_run(tmp_path, "b-killed", [0.4], RUNNING={"pid": 2**22 + 12345, "host": host})
    fake_run(tmp_path, "c-diverged", [0.3], extra_rows=[{"kind": "nonfinite", "step": 12}])
    fake_run(tmp_path / "study", "d-running", [], RUNNING={"pid": os.getpid(), "host": host})
    assert main(["runs", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "status", "epochs", "best", "val", "test"]
    assert [ln.split()[:3] for ln in lines[1:]] == [
        ["d-running", "running", "0/3"], ["c-diverged", "diverged", "1/3"],
        ["b-killed", "stopped", "1/3"], ["a-finished", "finished", "3/3"],
    ]  # fmt: skip
    assert lines[-1].split()[3:] == ["70.00%", "65.00%"]
    assert main(["runs", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["test_acc"] == 0.65 and rows[-1]["best_val_acc"] == 0.7


def test_runs_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["runs", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a directory" in err
