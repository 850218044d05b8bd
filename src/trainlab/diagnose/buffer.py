"""A bounded store for per-probe summaries that thins itself instead of growing.

fastai's ``ActivationStats`` appends every batch's statistics to Python lists, so memory grows
with the run (ANCHORS.md). Here every column is a preallocated array of ``capacity`` rows. When
the buffer is full, every other row is dropped and from then on only every ``stride``-th offered
row is kept (the stride doubles at each thinning), so a run of any length is covered from its
first probe to its last at a resolution that coarsens as it grows. The most recent row is always
kept as well (in one extra slot), so the series end at the latest probe.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["SeriesBuffer"]

Row = Mapping[str, float | np.ndarray]


class SeriesBuffer:
    """Rows ``(step, {column: scalar or fixed-shape array})`` in at most ``capacity + 1`` slots.

    Columns are created (filled with NaN) the first time they appear; a row that lacks a column
    stores NaN there. A column's shape is fixed by its first value.
    """

    def __init__(self, capacity: int = 256) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 2:
            raise ValueError(f"capacity must be an int >= 2, got {capacity!r}")
        self.capacity = capacity + capacity % 2  # even, so thinning keeps the stride grid
        self.stride = 1
        self.offered = 0
        self._n = 0
        self._steps = np.zeros(self.capacity, dtype=np.int64)
        self._columns: dict[str, np.ndarray] = {}
        self._tail_step: int | None = None
        self._tail: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        """Rows held in the thinned series (the tail slot not counted)."""
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held by all arrays, including the tail slot."""
        arrays = [self._steps, *self._columns.values(), *self._tail.values()]
        return sum(a.nbytes for a in arrays)

    def append(self, step: int, row: Row) -> bool:
        """Offer a row; return whether it was kept in the thinned series (it is always kept as
        the tail, i.e. the latest row)."""
        for key, value in row.items():
            self._column(key, np.asarray(value))
        self._tail_step = int(step)
        for key in self._columns:
            self._tail[key][...] = row.get(key, np.nan)
        index, self.offered = self.offered, self.offered + 1
        if index % self.stride:
            return False
        if self._n == self.capacity:
            self._thin()
        self._steps[self._n] = step
        for key, col in self._columns.items():
            col[self._n] = self._tail[key]
        self._n += 1
        return True

    def steps(self) -> np.ndarray:
        """Steps of the kept rows, then the latest row's step if it was not kept."""
        steps = self._steps[: self._n]
        if self._extra_tail():
            steps = np.append(steps, self._tail_step)
        return steps.copy()

    def column(self, key: str) -> np.ndarray:
        """A column's values aligned with :meth:`steps` (a copy)."""
        values = self._columns[key][: self._n]
        if self._extra_tail():
            values = np.concatenate([values, self._tail[key][None]])
        return values.copy()

    def keys(self) -> list[str]:
        return list(self._columns)

    def _extra_tail(self) -> bool:
        return self._tail_step is not None and (
            self._n == 0 or self._steps[self._n - 1] != self._tail_step
        )

    def _column(self, key: str, value: np.ndarray) -> None:
        if key in self._columns:
            if self._columns[key].shape[1:] != value.shape:
                raise ValueError(
                    f"column {key!r} has shape {self._columns[key].shape[1:]}, got {value.shape}"
                )
            return
        self._columns[key] = np.full((self.capacity, *value.shape), np.nan, dtype=np.float64)
        self._tail[key] = np.full(value.shape, np.nan, dtype=np.float64)

    def _thin(self) -> None:
        """Keep rows 0, 2, 4, ... (offered indices that are multiples of 2·stride)."""
        half = self._n // 2
        self._steps[:half] = self._steps[0 : self._n : 2]
        for col in self._columns.values():
            col[:half] = col[0 : self._n : 2]
            col[half:] = np.nan
        self._n = half
        self.stride *= 2
