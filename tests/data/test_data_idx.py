"""IDX reader and writer on generated files, checked against hand-built bytes."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainlab.data import DataFormatError, read_idx, write_idx
from trainlab.data.idx import read_idx_header


def test_reads_hand_built_ubyte_labels_raw_and_gzip(tmp_path: Path) -> None:
    payload = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 3) + bytes([7, 0, 255])
    (tmp_path / "raw").write_bytes(payload)
    (tmp_path / "gz").write_bytes(gzip.compress(payload))
    for name in ("raw", "gz"):
        labels = read_idx(tmp_path / name)
        assert labels.dtype == np.uint8
        assert labels.tolist() == [7, 0, 255]


def test_reads_hand_built_ubyte_images_in_c_order(tmp_path: Path) -> None:
    pixels = list(range(2 * 3 * 4))
    payload = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 4) + bytes(pixels)
    (tmp_path / "images.gz").write_bytes(gzip.compress(payload))
    images = read_idx(tmp_path / "images.gz")
    assert images.shape == (2, 3, 4)
    assert images[1, 2, 3] == 1 * 12 + 2 * 4 + 3
    assert images.flags.writeable


def test_reads_big_endian_multibyte_types(tmp_path: Path) -> None:
    ints = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 2) + struct.pack(">4i", 1, -2, 3, 70000)
    floats = bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 2) + struct.pack(">2f", 0.5, -1.25)
    (tmp_path / "ints").write_bytes(ints)
    (tmp_path / "floats").write_bytes(floats)
    assert read_idx(tmp_path / "ints").tolist() == [[1, -2], [3, 70000]]
    assert read_idx(tmp_path / "floats").tolist() == [0.5, -1.25]
    assert read_idx(tmp_path / "ints").dtype == np.dtype("int32")  # native order


def test_compression_is_detected_from_magic_bytes_not_name(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "looks_raw", array, compress=True)
    write_idx(tmp_path / "looks.gz", array, compress=False)
    assert (tmp_path / "looks_raw").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "looks.gz").read_bytes()[:4] == bytes([0, 0, 8, 1])
    np.testing.assert_array_equal(read_idx(tmp_path / "looks_raw"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "looks.gz"), array)


def test_header_reader_gives_dims_without_full_read(tmp_path: Path) -> None:
    write_idx(tmp_path / "x.gz", np.zeros((5, 28, 28), np.uint8))
    dtype, dims = read_idx_header(tmp_path / "x.gz")
    assert (dtype, dims) == (np.dtype(np.uint8), (5, 28, 28))


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    dtype=st.sampled_from(["uint8", "int8", "int16", "int32", "float32", "float64"]),
    compress=st.booleans(),
)
def test_write_read_round_trip(tmp_path_factory, shape, dtype, compress) -> None:
    path = tmp_path_factory.mktemp("idx") / "a"
    array = (np.arange(int(np.prod(shape))) % 100 - 50).astype(dtype).reshape(shape)
    if dtype == "uint8":
        array = np.abs(array.astype(np.int16)).astype(np.uint8)
    write_idx(path, array, compress=compress)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


CORRUPT = {
    "bad magic": bytes([1, 2, 8, 1]) + struct.pack(">I", 1) + b"\x00",
    "unknown type": bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"\x00",
    "zero dims": bytes([0, 0, 0x08, 0]),
    "short header": bytes([0, 0, 0x08, 3]) + struct.pack(">I", 1),
    "truncated data": bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 2, 2) + b"\x00\x01\x02",
    "trailing data": bytes([0, 0, 0x08, 1]) + struct.pack(">I", 1) + b"\x00\x01",
    "empty": b"",
}


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_files_raise_one_line_error_naming_the_file(tmp_path: Path, case, gz) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(gzip.compress(CORRUPT[case]) if gz else CORRUPT[case])
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_corrupt_gzip_stream_raises_format_error(tmp_path: Path) -> None:
    good = gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 4) + b"abcd")
    path = tmp_path / "bad.gz"
    path.write_bytes(good[:12] + b"garbage-garbage" + good[12:])
    with pytest.raises(DataFormatError, match="bad.gz"):
        read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint32))
