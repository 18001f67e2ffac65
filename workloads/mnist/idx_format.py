"""The IDX file format of the MNIST distribution (optionally gzipped).

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one big-endian uint32 per dimension; the data follows.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

UNSIGNED_BYTE = 0x08


class IdxFormatError(ValueError):
    pass


def _open(path: Path, mode: str):
    # Level 6 writes about three times faster than gzip's default 9 for a few percent more bytes.
    return gzip.open(path, mode, compresslevel=6) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path: Path) -> np.ndarray:
    with _open(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(f"{path} is not an IDX file (bad magic number).")
    if raw[2] != UNSIGNED_BYTE:
        raise IdxFormatError(f"{path} holds type code {raw[2]:#x}; only unsigned bytes (0x08) are used by MNIST.")
    num_dims = raw[3]
    header_size = 4 + 4 * num_dims
    shape = struct.unpack(f">{num_dims}I", raw[4:header_size])
    expected = int(np.prod(shape))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_size)
    if data.size != expected:
        raise IdxFormatError(f"{path} is truncated: header promises {expected} bytes, found {data.size}.")
    return data.reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UNSIGNED_BYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with _open(path, "wb") as handle:
        handle.write(header + array.tobytes())
