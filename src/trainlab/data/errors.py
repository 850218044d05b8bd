"""Errors raised by `trainlab.data`; every message is a single line a user can act on."""

from __future__ import annotations


def one_line(text: object) -> str:
    """Collapse any whitespace run (newlines included) so a message stays on one line."""
    return " ".join(str(text).split())


class DataNotFoundError(RuntimeError):
    """A real dataset is not on disk and could not be downloaded.

    The message says where we looked and how to get the data.
    """

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class UnknownDatasetError(ValueError):
    """A dataset name that is not in `DATASETS`; the message names the closest valid one."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class DataFormatError(ValueError):
    """A data file exists but is corrupt or not in the expected format (IDX, CIFAR pickle)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))
