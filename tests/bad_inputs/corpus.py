"""Every kind of bad input the labs meet, written into a folder on demand.

Each table maps a kind to the bytes (or file) that make it and to what must happen: `None`
where the lab goes on (the input is fine, or skipped and listed), else a fragment the one-line
error must contain. Nothing here is checked in: the files are made in each test's tmp_path.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# ---------------------------------------------------------------------------- CSV


def table(columns: list[str], rows: list[list], sep: str = ",", eol: str = "\n") -> str:
    return "".join(sep.join(map(str, r)) + eol for r in [columns, *rows])


def png_bytes(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def csv_kinds(columns: list[str], row: list, drop: str, numeric: str,
              any_case: bool = True) -> dict[str, tuple[bytes, str | None]]:
    """The bad CSVs for a predict that needs `columns` (`row`: one good row). `drop` is a required
    column to leave out, `numeric` one that must hold numbers; `any_case`: the lab matches column
    names in any letter case (so `NUMERIC` beside `numeric` is the same column twice). Errors are
    expected on line 3: the second data row is the broken one, so a reader must look past the
    first."""
    k = columns.index(numeric)

    def with_cell(value) -> bytes:
        bad = list(row)
        bad[k] = value
        return table(columns, [row, bad]).encode()

    j = columns.index(drop)
    good = table(columns, [row])
    wide = columns + [f"extra_{i}" for i in range(9 * len(columns))]  # 10× the columns
    return {
        "empty": (b"", "is empty"),
        "header only": (table(columns, []).encode(), "header but no data rows"),
        "missing column": (table(columns[:j] + columns[j + 1:], [row[:j] + row[j + 1:]]).encode(),
                           f"no column {drop!r}"),
        "text in a numeric column": (with_cell("fast"), f"row 3, column {numeric!r} holds 'fast'"),
        "NaN": (with_cell("NaN"), f"row 3, column {numeric!r} holds an empty cell or NaN"),
        "empty cell": (with_cell(""), f"row 3, column {numeric!r} holds an empty cell"),
        "inf": (with_cell("inf"), f"row 3, column {numeric!r} holds 'inf', not a finite number"),
        "-inf": (with_cell("-inf"), "not a finite number"),
        "wrong delimiter": (table(columns, [row], sep="|").encode(), "separated by '|'"),
        "ragged row": (table(columns, [row, row * 10]).encode(),
                       f"line 3 has {10 * len(row)} cells but the header has {len(columns)} columns"),
        # one cell too many in every row: pandas would silently shift every value one column left
        "an extra cell in every row": (table(columns, [row + [1], row + [2]]).encode(),
                                       f"line 2 has {len(row) + 1} cells but the header has"),
        "a short row": (table(columns, [row, row[:-1]]).encode(), f"line 3 has {len(row) - 1} cells"),
        "the same column twice": (table(columns + [columns[0]], [row + [row[0]]]).encode(),
                                  f"the column {columns[0]!r} twice"),
        "unbalanced quote": ((good + '"' + ",".join(map(str, row)) + "\n").encode(), "not a well-formed table"),
        "a column twice": (table(columns + [numeric.swapcase()], [row + [row[k]]]).encode(),
                           "twice" if any_case else None),
        "not UTF-8 nor any Windows encoding": (table(columns + ["ab\x81"], [row + [1]]).encode("latin-1"),
                                               "nor Windows-1252/Latin-1"),
        "Latin-1 (read with a warning)": (table(columns + ["café"], [row + [1]]).encode("latin-1"), None),
        "Windows-1252 from Excel": (table(columns + ["“prix” €"], [row + [1]]).encode("cp1252"), None),
        "a PNG named .csv": (png_bytes(), "is a PNG image, not CSV text"),
        "an Excel workbook named .csv": (b"PK\x03\x04" + bytes(120), "ZIP archive (an Excel .xlsx workbook?)"),
        "gzip-compressed": (gzip.compress(good.encode()), "gzip-compressed, not CSV text; decompress it"),
        "UTF-16": (good.encode("utf-16"), "is UTF-16 text; save it as a UTF-8 CSV"),
        "binary with NUL bytes": (good.encode() + bytes(64), "binary file, not CSV text"),
        "BOM": (b"\xef\xbb\xbf" + good.encode(), None),
        "Windows line endings": (table(columns, [row], eol="\r\n").encode(), None),
        "semicolons": (table(columns, [row], sep=";").encode(), None),
        "10x the columns": (table(wide, [row + [0] * (len(wide) - len(row))]).encode(), None),
    }


def first_row(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        return next(reader), next(reader)


# ---------------------------------------------------------------------------- IDX

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_bytes(array: np.ndarray, magic_type: int = 0x08) -> bytes:
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def idx_kinds() -> dict[str, tuple[bytes, bytes, str]]:
    """(images file, labels file, fragment) pairs that read_idx_pair must refuse."""
    images = idx_bytes(np.zeros((6, 4, 4), np.uint8))
    labels = idx_bytes(np.arange(6, dtype=np.uint8))
    return {
        "wrong magic number": (b"PK\x03\x04" + images[4:], labels, "magic number 504b0304"),
        "text file": (b"this is not an IDX file\n", labels, "not an IDX header"),
        "empty file": (b"", labels, "magic number none"),
        "truncated header": (images[:9], labels, "truncated inside its header"),
        "truncated body": (images[:-5], labels, "holds 91 bytes"),
        "gzip cut short": (gzip.compress(images)[:-9], labels, "not a readable gzip file"),
        "label/image count mismatch": (images, idx_bytes(np.arange(7, dtype=np.uint8)),
                                       "holds 6 images but"),
        "labels with two dimensions": (images, idx_bytes(np.zeros((6, 2), np.uint8)),
                                       "expected images (N, H, W) and labels (N,)"),
    }


def mnist_folder(root: Path, good: Path, replace: dict[str, bytes | None]) -> Path:
    """root/mnist with the real MNIST files linked in (not copied) except those in `replace`
    (bytes: written instead; None: left out)."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for name in MNIST_FILES:
        if name not in replace:
            os.symlink((good / name).resolve(), folder / name)  # MLLABS_DATA may be relative
        elif replace[name] is not None:
            (folder / name).write_bytes(replace[name])
    return root


# ---------------------------------------------------------------------------- images


def picture(size=(64, 64), colour=(200, 60, 40), seed: int = 0) -> Image.Image:
    """A photo stand-in: a coloured field with a few random discs, so classes differ by colour."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c * rng.uniform(0.8, 1.0)) for c in colour))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.integers(0, size[0]), rng.integers(0, size[1])
        r = int(rng.integers(3, max(4, size[0] // 4)))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def digit_picture(size=(80, 80)) -> Image.Image:
    """A dark '7' on light paper."""
    img = Image.new("L", size, 240)
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.line((w * 0.25, h * 0.2, w * 0.75, h * 0.2, w * 0.4, h * 0.85), fill=20, width=max(1, w // 10))
    return img


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def image_kinds(folder: Path, *, huge: bool = True) -> dict[str, tuple[Path, str | None]]:
    """Every odd or broken image file, written into `folder`: name -> (path, None if it must be
    read, else the fragment of the error that refuses it)."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, tuple[Path, str | None]] = {}

    def put(name: str, file: str, data: bytes | Image.Image, error: str | None, **kw):
        path = folder / file
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            data.save(path, **kw)
        made[name] = (path, error)

    photo = jpeg_bytes(picture((120, 90)))
    put("truncated JPEG", "truncated.jpg", photo[: len(photo) // 2], "is not a readable image")
    put("zero-byte file", "zero.jpg", b"", "is empty (0 bytes)")
    put("text file named .jpg", "notes.jpg", b"shopping list: eggs, milk\n", "is not a readable image")
    put("PNG header only", "header.png", b"\x89PNG\r\n\x1a\n\x00\x00", "is not a readable image")
    alpha = picture((50, 40)).convert("RGBA")
    alpha.putalpha(Image.linear_gradient("L").resize((50, 40)))
    put("PNG with alpha", "alpha.png", alpha, None)
    put("CMYK JPEG", "cmyk.jpg", picture((60, 60)).convert("CMYK"), None, format="JPEG")
    put("1x1 image", "one.png", Image.new("RGB", (1, 1), (10, 200, 10)), None)
    put("greyscale 16-bit PNG", "deep.png", Image.fromarray(
        (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)), None)
    put("palette GIF with transparency", "palette.gif", picture((30, 30)).convert("P"), None,
        transparency=0)
    put("PNG named .jpg", "really_a_png.jpg", png_bytes((20, 20)), None)
    if huge:
        # 10000×10000: a JPEG (decoded at 1/8 scale) and a 1-bit PNG (decoded in full)
        put("10000x10000 JPEG", "huge.jpg", Image.new("L", (10000, 10000), 120), None, format="JPEG",
            quality=50)
        put("10000x10000 PNG", "huge.png", Image.new("1", (10000, 10000), 1), None)
    return made
