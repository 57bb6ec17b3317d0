"""Image folders (one sub-folder per class) decoded once into a uint8 array.

Any mode Pillow reads is converted to RGB (grey, palette, CMYK; alpha composited on white).
Unreadable files are skipped and returned by name so the lab can warn and report them.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mllabs.errors import DataError

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
Image.MAX_IMAGE_PIXELS = 200_000_000  # allow large photos, still refuse decompression bombs


@dataclass
class ImageFolder:
    images: np.ndarray          # (N, size, size, 3) uint8
    labels: np.ndarray          # (N,) int64
    classes: list[str]
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def to_rgb(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return _deep_to_rgb(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _deep_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale: Pillow's own conversion clips at 255 (a 16-bit scan
    turns white), so scale by the range the values are written in: 0-1, 0-255, 0-65535."""
    values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(values.max(initial=0.0))
    if img.mode.startswith("I;16"):
        top = 65535.0
    else:
        top = next((t for t in (1.0, 255.0, 65535.0) if peak <= t), peak)
        if img.mode == "I" and top == 1.0:
            top = 255.0  # integers 0 and 1 are dark pixels, not a 0-1 scale
    grey = np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode one image to (size, size, 3) uint8: shorter side to `size`, then a centre crop."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty (0 bytes); pass a JPEG or PNG photo")
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it is large
            rgb = to_rgb(img)
            rgb = ImageOps.fit(rgb, (size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path} is not a readable image ({type(exc).__name__}: {exc}); "
                        "pass a JPEG or PNG photo") from None


def list_classes(root: str | Path) -> tuple[list[str], list[tuple[Path, int]]]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected one sub-folder of images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s); a classifier needs at least two "
                        "sub-folders, one per class")
    items = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(f"{root / name} holds no images ({', '.join(sorted(SUFFIXES))}); "
                            "remove the folder or add images")
        items += [(p, label) for p in files]
    return classes, items


def read_image_folder(root: str | Path, size: int) -> ImageFolder:
    classes, items = list_classes(root)
    images, labels, paths, skipped = [], [], [], []
    for path, label in items:
        try:
            images.append(load_image(path, size))
        except DataError as exc:
            skipped.append((path, str(exc)))
            continue
        labels.append(label)
        paths.append(path)
    _warn_skipped(Path(root), skipped)
    if not images:
        first = skipped[0][0].name if skipped else "none"
        raise DataError(f"no readable images in {root}: all {len(skipped)} file(s) failed to decode "
                        f"(first: {first}); add JPEG or PNG photos")
    return ImageFolder(np.stack(images), np.asarray(labels, dtype=np.int64), classes, paths, skipped)


def folder_key(root: Path, items: list[tuple[Path, int]], size: int) -> str:
    """Names, byte sizes and modification times of every photo, and the decode size: a changed,
    added or removed photo gives a new key, so a stale cache is never read."""
    digest = hashlib.sha256(f"v1 {size}\n".encode())
    for path, label in items:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def cached_image_folder(root: str | Path, size: int, cache_dir: Path | None = None) -> tuple[ImageFolder, dict]:
    """read_image_folder() once per folder and size; afterwards the decoded uint8 array is read
    back from the cache (one .npz) and no JPEG is decoded again. Returns the folder and what
    happened: {"cache": "hit"|"miss", "seconds": ..., "file": ...}."""
    from mllabs.data.store import cache_root
    from mllabs.files import atomic_write_bytes

    root = Path(root)
    started = time.perf_counter()
    classes, items = list_classes(root)
    file = (cache_dir or cache_root() / "decoded") / f"{root.name}-{size}px-{folder_key(root, items, size)}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as saved:
                meta = json.loads(str(saved["meta"]))
                folder = ImageFolder(saved["images"], saved["labels"], meta["classes"],
                                     [root / p for p in meta["paths"]],
                                     [(root / p, why) for p, why in meta["skipped"]])
            _warn_skipped(root, folder.skipped)
            return folder, {"cache": "hit", "seconds": time.perf_counter() - started, "file": str(file)}
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache file: decode again and overwrite it
    folder = read_image_folder(root, size)
    meta = {"classes": folder.classes, "paths": [str(p.relative_to(root)) for p in folder.paths],
            "skipped": [[str(p.relative_to(root)), why] for p, why in folder.skipped]}
    buf = io.BytesIO()
    np.savez(buf, images=folder.images, labels=folder.labels, meta=np.array(json.dumps(meta)))
    try:
        atomic_write_bytes(file, buf.getvalue())
    except OSError as exc:  # a read-only cache costs speed, not the run
        warnings.warn(f"could not write the image cache {file} ({exc.strerror}); photos will be "
                      "decoded again next time", stacklevel=2)
    return folder, {"cache": "miss", "seconds": time.perf_counter() - started, "file": str(file)}


def _warn_skipped(root: Path, skipped: list[tuple[Path, str]]) -> None:
    if skipped:
        names = ", ".join(p.name for p, _ in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) in {root}: {names}", stacklevel=3)
