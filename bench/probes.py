"""Cost of `trainlab.diagnose.Probes` at their default interval, as a ratio measured in one run.

Protocol: one epoch of `trainlab.nn.cnn((1, 28, 28), 10)` (3 conv stages with BatchNorm, ReLU)
with torch Adam (lr 1e-3), batch 128, on a SUBSET of Fashion-MNIST-shaped tensors (the real
training set when installed, else random tensors), driven by `trainlab.train.fit`, twice: with
no callbacks ("off") and with `Probes(model)` at the default interval (every 50 steps, plus
step 1; all leaf modules hooked on probe steps, per-step gradient finiteness check on) as the
callback ("on"). Each epoch starts from the same initial weights and a fresh optimizer; fit
counts steps from 1, so every epoch probes step 1 and step 50 (2 probes in 79 steps: slightly
more than the 1-in-50 of a long run). One warm-up epoch each, then REPS epochs of each,
interleaved in alternating order so load drift hits both; medians and the ratio of medians
are printed. Target: on / off <= 1.10.
Run: .venv/bin/python bench/probes.py [--reps N] [--subset N] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from trainlab.data import DataNotFoundError, InMemoryLoader, TensorSplit, load_dataset
from trainlab.diagnose import Probes
from trainlab.nn import cnn
from trainlab.train import Hooks, StepRecord, fit

BATCH = 128
EVERY = 50  # Probes' default interval; --every changes it


def fashion_subset(n: int) -> tuple[TensorSplit, str]:
    try:
        train = load_dataset("fashion_mnist", download=False).train
        return TensorSplit(train.x[:n], train.y[:n]), f"real Fashion-MNIST, first {n} images"
    except DataNotFoundError:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(n, 1, 28, 28, generator=g)
        return TensorSplit(x, torch.randint(0, 10, (n,), generator=g)), f"{n} random tensors"


class StepTimes(Hooks):
    """Wall time of each step (between consecutive `on_step_end` calls, probes included)."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self._last = 0.0

    def on_fit_start(self, total_steps: int, start_step: int) -> None:
        self._last = time.perf_counter()

    def on_step_end(self, record: StepRecord) -> None:
        now = time.perf_counter()
        self.times[record.step], self._last = now - self._last, now


def epoch(
    model: torch.nn.Module, split: TensorSplit, probes: bool, clock: StepTimes
) -> Probes | None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    p = Probes(model, every=EVERY) if probes else None
    with p if p is not None else _Null():
        fit(model, InMemoryLoader(split, BATCH, seed=0), opt, F.cross_entropy, epochs=1,
            callbacks=[p, clock] if p is not None else [clock])  # fmt: skip
    return p


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--every", type=int, default=50, help="probe interval (default 50)")
    args = parser.parse_args()
    global EVERY
    EVERY = args.every
    if args.threads:
        torch.set_num_threads(args.threads)
    split, source = fashion_subset(args.subset)
    torch.manual_seed(0)
    init = cnn((1, 28, 28), 10).state_dict()
    times: dict[str, list[float]] = {"probes off": [], "probes on": []}
    step_times: dict[str, dict[int, list[float]]] = {"probes off": {}, "probes on": {}}
    last: Probes | None = None
    for rep in range(args.reps + 1):
        order = [False, True] if rep % 2 == 0 else [True, False]
        for on in order:
            model = cnn((1, 28, 28), 10)
            model.load_state_dict(init)
            clock = StepTimes()
            start = time.perf_counter()
            p = epoch(model, split, on, clock)
            elapsed = time.perf_counter() - start
            if rep > 0:
                key = "probes on" if on else "probes off"
                times[key].append(elapsed)
                for step, t in clock.times.items():
                    step_times[key].setdefault(step, []).append(t)
            last = p or last
    off = statistics.median(times["probes off"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<11} median {med:6.3f} s  ({min(ts):.3f}-{max(ts):.3f})  "
              f"ratio to off {med / off:.3f}")  # fmt: skip
    on = statistics.median(times["probes on"])
    verdict = "OK" if on / off <= 1.10 else "ABOVE TARGET"
    print(f"slowdown with probes (every={EVERY}): {on / off:.3f}x  (target <= 1.10: {verdict})")
    steps = -(-len(split) // BATCH)
    # A second, less load-sensitive estimate from per-step medians: probe steps (1 and 50)
    # versus the others, in the "on" runs against the same steps of the "off" runs.
    probe = Probes(cnn((1, 28, 28), 10), every=EVERY)
    med = {k: {s: statistics.median(v) for s, v in d.items()} for k, d in step_times.items()}
    probed = [s for s in med["probes on"] if probe.is_probe_step(s)]
    others = [s for s in med["probes on"] if not probe.is_probe_step(s) and s > 1]
    t_on_probe = statistics.mean(med["probes on"][s] for s in probed)
    t_off_probe = statistics.mean(med["probes off"][s] for s in probed)
    t_on = statistics.median(med["probes on"][s] for s in others)
    t_off = statistics.median(med["probes off"][s] for s in others)
    print(f"per step (medians): probe steps {1e3 * t_on_probe:.1f} ms vs {1e3 * t_off_probe:.1f} "
          f"ms off; other steps {1e3 * t_on:.1f} ms vs {1e3 * t_off:.1f} ms off; for a long run "
          f"at 1 probe per {EVERY} steps: "
          f"{(t_on_probe + (EVERY - 1) * t_on) / (EVERY * t_off):.3f}x")  # fmt: skip
    print(f"protocol: {args.reps} interleaved epochs each after a warm-up; {source}; "
          f"{steps} steps of batch {BATCH}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    if last is not None:
        s = last.summary()
        print(f"last 'on' epoch: probed steps {s['steps'].tolist()}; per layer at the last probe:")
        for name, layer in s["layers"].items():
            extra = ""
            if layer["dead_fraction"] is not None:
                extra = f"  dead {layer['dead_fraction'][-1]:.0%}"
            print(f"  {name:>3} {layer['kind']:<12} mean {layer['mean'][-1]:+.3f} "
                  f"std {layer['std'][-1]:.3f}{extra}")  # fmt: skip
        ratios = {n: p["update_ratio"][-1] for n, p in s["params"].items() if n.endswith("weight")}
        print("  update/weight ratio: " + ", ".join(f"{n} {r:.1e}" for n, r in ratios.items()))


if __name__ == "__main__":
    main()
