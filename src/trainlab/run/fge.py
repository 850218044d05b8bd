"""Fast geometric ensembling from a trained run's last checkpoint (Garipov et al. 2018):
the run directory side of `trainlab.landscape.fge` (`trainlab fge RUN_DIR`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainlab.durable import write_json
from trainlab.landscape.fge import fast_geometric_ensemble
from trainlab.report import refresh_report
from trainlab.run.trained import build_trained, open_run


def run_fge(run_dir: str | Path, **options: Any) -> dict[str, Any]:
    """`fast_geometric_ensemble` from a run's last checkpoint with its data and loss; writes
    and returns the accuracies (RUN_DIR/fge.json)."""
    exp = build_trained(open_run(run_dir))
    result = fast_geometric_ensemble(
        exp.model, exp.loader, exp.loss_fn, exp.test,
        channels_last=exp.recipe.train.channels_last, **options,
    )  # fmt: skip
    summary = {
        "options": options,
        "snapshot_steps": [step for step, _ in result.snapshots],
        "start_test_acc": result.start_acc,
        "member_test_acc": result.member_acc,
        "ensemble_test_acc": result.ensemble_acc,
    }
    write_json(Path(run_dir) / "fge.json", summary, indent=2)
    refresh_report(run_dir)
    return summary


def describe_fge(summary: dict[str, Any]) -> str:
    """Start model, each snapshot and the growing ensemble's test accuracy, one line each."""
    lines = [f"start model: test accuracy {100 * summary['start_test_acc']:.2f}%"]
    keys = ("snapshot_steps", "member_test_acc", "ensemble_test_acc")
    rows = zip(*(summary[k] for k in keys), strict=True)
    for k, (step, single, joint) in enumerate(rows, start=1):
        lines.append(f"snapshot {k} (step {step}): {100 * single:.2f}%   "
                     f"ensemble of {k}: {100 * joint:.2f}%")  # fmt: skip
    return "\n".join(lines)
