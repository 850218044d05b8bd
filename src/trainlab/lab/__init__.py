"""The decks' lab: each claim of the five lecture decks as a runnable experiment that measures
its number, states the rule its verdict follows, and draws its figure; `trainlab lab all`
collects them into one lab book (lab.html).

An experiment is a function ``run(out: Path, quick: bool, seed: int) -> Finding`` registered
with `experiment` (see `trainlab.lab.registry`); experiments live in
`trainlab.lab.experiments` and reuse the library (optimizers, schedules, probes, Hessian,
studies) rather than copies of it.
"""

from trainlab.lab.registry import EXPERIMENTS, Finding, LabExperiment, experiment, verdict

__all__ = ["EXPERIMENTS", "Finding", "LabExperiment", "experiment", "verdict"]
