"""Read and write IDX files, the format of MNIST and Fashion-MNIST (gzip-compressed or raw).

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the
number of dimensions, then each dimension as a big-endian uint32, then the data in C order,
big-endian. Compression is detected from the gzip magic bytes 1f 8b, not from the file name.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from trainlab.durable import write_bytes

from .errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _read_bytes(path: Path, limit: int = -1) -> bytes:
    """Whole (or the first `limit` bytes of the) decompressed content of `path`."""
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as f:
                return f.read(limit)
        with open(path, "rb") as f:
            return f.read(limit)
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataFormatError(f"{path}: corrupt gzip stream ({err})") from err


def _parse_header(data: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Validate the IDX header; return (dtype, dims, header length in bytes)."""
    if len(data) < 4 or data[0:2] != b"\x00\x00":
        raise DataFormatError(f"{path}: not an IDX file (magic {data[:4].hex() or 'empty'})")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataFormatError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim < 1:
        raise DataFormatError(f"{path}: IDX header declares {ndim} dimensions, expected >= 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataFormatError(f"{path}: IDX header truncated ({len(data)} of {header_len} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    return IDX_DTYPES[code], tuple(dims), header_len


def read_idx_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Dtype and dimensions of an IDX file, decompressing only its first bytes (cheap)."""
    path = Path(path)
    data = _read_bytes(path, limit=4 + 4 * 255)
    dtype, dims, _ = _parse_header(data, path)
    return dtype.newbyteorder("="), dims


def read_idx(path: str | Path) -> np.ndarray:
    """Read a whole IDX file (gzip or raw) into a native-endian numpy array of shape `dims`.

    Raises DataFormatError (one line) on a bad magic, unknown type, or wrong data length.
    """
    path = Path(path)
    data = _read_bytes(path)
    dtype, dims, offset = _parse_header(data, path)
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset != expected:
        raise DataFormatError(
            f"{path}: IDX header says {dims} ({expected} data bytes) "
            f"but the file has {len(data) - offset} data bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a writable, native-endian copy


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write `array` as an IDX file; gzip it if `compress`, or by default if the name ends .gz.

    Used by the tests to build small MNIST-like files.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code")
    if array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"write_idx: array must have 1..255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    return write_bytes(path, gzip.compress(payload, mtime=0) if compress else payload)
