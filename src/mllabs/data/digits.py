"""A user's digit photo or drawing, prepared the way the MNIST digits were.

MNIST's recipe: grey ink on black, the digit scaled to fit a 20×20 box keeping its aspect
ratio, then placed in a 28×28 field so its centre of mass is at the centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mllabs.data.images import to_rgb
from mllabs.errors import DataError


LARGEST = 1024  # pixels a side a digit photo is reduced to before it is prepared


def prepare_digit(path: str | Path) -> np.ndarray:
    """Any image file → (28, 28) uint8 with bright ink on black, centred like MNIST."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty (0 bytes); pass a PNG, JPEG or BMP of a digit")
        with Image.open(path) as img:
            # a photo of thousands of pixels a side: decode a JPEG at a reduced scale and shrink
            # anything else, as the digit ends up 20 px tall anyway (a 10000² scan would
            # otherwise take gigabytes as float32)
            img.draft("L", (LARGEST, LARGEST))
            grey_img = to_rgb(img).convert("L")
            grey_img.thumbnail((LARGEST, LARGEST), Image.Resampling.BILINEAR)
            grey = np.asarray(grey_img, dtype=np.float32)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path} is not a readable image ({type(exc).__name__}); pass a PNG, JPEG "
                        "or BMP of a digit") from None
    return mnist_style(grey)


def mnist_style(grey: np.ndarray) -> np.ndarray:
    """(H, W) greyscale, either polarity → (28, 28) uint8 MNIST-style digit."""
    # Ink is whatever differs from the background; the border tells which that is.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ink = 255.0 - grey if np.median(border) > 127 else grey.copy()
    ink -= np.percentile(ink, 50)  # paper texture and uneven light go to zero
    ink = np.clip(ink, 0, None)
    peak = ink.max()
    if peak < 16:  # nothing stands out from the background
        return np.zeros((28, 28), np.uint8)
    ink = ink / peak * 255.0
    rows, cols = np.nonzero(ink > 0.25 * 255)
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = Image.fromarray(crop.astype(np.uint8))
    small = np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    small = np.clip(small, 0, None) * (255.0 / max(small.max(), 1.0))  # thin strokes stay bright
    field = np.zeros((28, 28), np.float32)
    top, left = (28 - small.shape[0]) // 2, (28 - small.shape[1]) // 2
    field[top:top + small.shape[0], left:left + small.shape[1]] = small
    # shift so the centre of mass lands on the centre pixel, as MNIST was made
    total = field.sum()
    ys, xs = np.indices(field.shape)
    dy = round(13.5 - (ys * field).sum() / total)
    dx = round(13.5 - (xs * field).sum() / total)
    field = np.roll(np.roll(field, dy, axis=0), dx, axis=1)
    return np.clip(field, 0, 255).astype(np.uint8)
