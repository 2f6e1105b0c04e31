"""Row-by-row .npy files: numpy reads what row_writer wrote, and read_rows returns exactly
what indexing would."""
import io

import numpy as np
import pytest

from imgclf.arrays import npy_header, read_rows, row_writer


@pytest.mark.parametrize("written", [0, 7, 10])
def test_numpy_loads_what_was_written_even_below_capacity(tmp_path, written):
    rows = np.random.default_rng(0).integers(0, 255, (written, 4, 3, 2), dtype=np.uint8)
    path = str(tmp_path / "a.npy")
    with row_writer(path, np.uint8, (4, 3, 2), capacity=10) as write:
        for start in range(0, written, 3):
            write(rows[start:start + 3])
    np.testing.assert_array_equal(np.load(path), rows)
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), rows)


def test_headers_read_back_and_keep_their_length():
    header = npy_header(np.float16, (1234, 4, 4, 768))
    assert len(header) % 64 == 0  # numpy's alignment
    stream = io.BytesIO(header)
    assert np.lib.format.read_magic(stream) == (1, 0)
    assert np.lib.format.read_array_header_1_0(stream) == ((1234, 4, 4, 768), False,
                                                           np.dtype(np.float16))
    assert len(npy_header(np.float16, (7, 4, 4, 768), len(header))) == len(header)


def test_rows_beyond_the_capacity_or_of_another_shape_are_refused(tmp_path):
    with pytest.raises(ValueError, match="do not fit"):
        with row_writer(str(tmp_path / "b.npy"), np.float32, (2,), capacity=3) as write:
            write(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="do not fit"):
        with row_writer(str(tmp_path / "c.npy"), np.float32, (2,), capacity=3) as write:
            write(np.zeros((1, 3)))


def test_read_rows_matches_indexing_on_files_slices_and_memory(tmp_path):
    array = np.random.default_rng(1).normal(size=(50, 6, 5)).astype(np.float16)
    np.save(tmp_path / "d.npy", array)
    mapped = np.load(tmp_path / "d.npy", mmap_mode="r")
    indices = np.array([0, 3, 4, 17, 49])
    for source, first in ((mapped, 0), (mapped[10:], 10), (array, 0)):
        np.testing.assert_array_equal(read_rows(source, indices[:3]), array[indices[:3] + first])
    np.testing.assert_array_equal(read_rows(mapped, indices), array[indices])
    assert not isinstance(read_rows(mapped, indices), np.memmap)


def test_read_rows_needs_no_posix_only_call(tmp_path, monkeypatch):
    # Windows has no os.pread/os.preadv; every training stage reads through read_rows.
    for name in ("pread", "preadv"):
        monkeypatch.delattr("os." + name, raising=False)
    array = np.arange(60, dtype=np.uint8).reshape(10, 3, 2)
    np.save(tmp_path / "e.npy", array)
    np.testing.assert_array_equal(read_rows(np.load(tmp_path / "e.npy", mmap_mode="r"), [9, 2]),
                                  array[[9, 2]])
