"""Large .npy files (prepared images, cached features) written and read a few rows at a time
with plain file I/O, so a stage's memory does not grow with the dataset.

Memory-mapping them would be simpler, but every page a mapping touches counts as resident
memory of the process until it ends: one pass over 20,000 images would hold all of them.
"""
import contextlib
import os

import numpy as np


def npy_header(dtype, shape, length=None):
    """The .npy (format 1.0) header of a C-order array, padded with spaces to `length`
    bytes, or to a multiple of 64 as numpy writes it."""
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                 "fortran_order": False, "shape": tuple(shape)})
    length = length or -(-(10 + len(text) + 1) // 64) * 64
    text = text.ljust(length - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


@contextlib.contextmanager
def row_writer(path, dtype, row_shape, capacity):
    """Yield write(rows), which appends rows to a new .npy file at path; when the block ends,
    the header gets the number of rows written (at most capacity)."""
    header = npy_header(dtype, (capacity, *row_shape))
    written = 0
    with open(path, "wb") as f:
        f.write(header)

        def write(rows):
            nonlocal written
            rows = np.ascontiguousarray(rows, dtype=dtype)
            if rows.shape[1:] != tuple(row_shape) or written + len(rows) > capacity:
                raise ValueError(f"{path}: rows {rows.shape} after {written} do not fit "
                                 f"{capacity} x {tuple(row_shape)}")
            f.write(rows.tobytes())
            written += len(rows)

        yield write
        f.seek(0)
        f.write(npy_header(dtype, (written, *row_shape), len(header)))  # fewer rows, no longer


def read_rows(array, indices):
    """array[indices] as a new array. A whole memory-mapped .npy is read with plain file reads
    instead of through its mapping, which would keep the pages resident (see above)."""
    if not (isinstance(array, np.memmap) and array.ndim > 1 and array.flags.c_contiguous
            and array.filename
            and array.offset + array.nbytes == os.path.getsize(array.filename)):
        return np.asarray(array[indices])  # in memory, or a slice of a mapping
    rows = np.empty((len(indices), *array.shape[1:]), array.dtype)
    row_bytes = rows.itemsize * int(np.prod(array.shape[1:]))
    # seek + readinto works on every OS (os.preadv is not on Windows) and, like it, reads
    # straight into the new array, unbuffered, so nothing else stays in memory.
    with open(array.filename, "rb", buffering=0) as f:
        for row, index in zip(rows, indices):
            f.seek(array.offset + int(index) * row_bytes)
            if f.readinto(memoryview(row).cast("B")) != row_bytes:
                raise OSError(f"{array.filename}: row {int(index)} ends early; the file is cut short")
    return rows
