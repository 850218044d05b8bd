"""trainlab: train deep networks well and see why training works or fails."""

__version__ = "0.1.0"
