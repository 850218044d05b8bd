"""The training loop: `fit`, `evaluate`, callbacks, losses and checkpoints."""

from trainlab.train.callbacks import STOP, Callback, Hooks
from trainlab.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from trainlab.train.fit import Interrupted, fit
from trainlab.train.loop import NonFiniteLossError, epoch_steps, evaluate
from trainlab.train.losses import get_loss
from trainlab.train.records import EpochRecord, Position, StepRecord

__all__ = [
    "STOP",
    "Callback",
    "EpochRecord",
    "Hooks",
    "Interrupted",
    "NonFiniteLossError",
    "Position",
    "StepRecord",
    "epoch_steps",
    "evaluate",
    "fit",
    "get_loss",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]
