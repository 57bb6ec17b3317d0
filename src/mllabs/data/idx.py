"""IDX files (the MNIST format): a big-endian header of magic, dims, then the raw array."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from mllabs.errors import DataError

# The third magic byte names the element type; MNIST uses unsigned bytes.
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into an array of its declared shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not a readable gzip file ({exc}); "
                        "replace it with a fresh copy (`mllabs data fetch mnist`)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        raise DataError(f"{path} has magic number {raw[:4].hex() or 'none'}, not an IDX header "
                        "(00 00 <type> <ndim>); is it the right file?")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header; replace it with a fresh copy")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: four 2**32 dims do not overflow
    body = len(raw) - header
    if body != expected:
        raise DataError(f"{path} declares shape {shape} ({expected} bytes) but holds {body} bytes; "
                        "the file is truncated or corrupt: replace it with a fresh copy")
    if expected == 0:  # a dimension of 0: numpy will not read an empty buffer at the very end
        try:
            return np.zeros(shape, dtype.newbyteorder("="))
        except ValueError:  # e.g. (0, 2**30, 2**30): too big to shape even though it is empty
            raise DataError(f"{path} declares shape {shape}, which holds nothing and cannot be "
                            "shaped; the file is corrupt: replace it with a fresh copy") from None
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) and labels (N,), checked to agree in count."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{images_path} / {labels_path}: expected images (N, H, W) and labels (N,), "
                        f"got {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                        f"{len(labels)} labels; the two files do not belong together")
    return images, labels
