"""CSV and whitespace-separated tables, with errors that name the file, row and column."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mllabs.errors import DataError


# files people save with a .csv name that are something else: (leading bytes, what, what to do)
BINARY_FORMATS = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?)", "open it and save the sheet as a UTF-8 CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office document", "open it and save the sheet as a UTF-8 CSV"),
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip)"),
    (b"%PDF", "a PDF", "export the table as a UTF-8 CSV"),
    (b"\x89PNG", "a PNG image", "pass the table as a UTF-8 CSV"),
    (b"\xff\xd8\xff", "a JPEG image", "pass the table as a UTF-8 CSV"),
)


def read_csv(path: str | Path, *, required: Iterable[str] = (), numeric: Iterable[str] = (),
             rename_snake: bool = False) -> pd.DataFrame:
    """Read a comma/semicolon/tab-separated table with a header row.

    The delimiter is sniffed; a UTF-8 BOM and Windows line endings are accepted. `required`
    columns must exist; `numeric` columns must hold finite numbers in every row.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        for magic, what, fix in BINARY_FORMATS:
            if raw.startswith(magic):
                raise DataError(f"{path} is {what}, not CSV text; {fix}")
        if b"\0" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataError(f"{path} is a binary file, not CSV text; export the table as a UTF-8 CSV")
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder; pass a CSV file") from None
    except UnicodeDecodeError as exc:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataError(f"{path} is UTF-16 text; save it as a UTF-8 CSV") from None
        text = windows_1252(path, raw, exc.start)
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror})") from None
    if not text.strip():
        raise DataError(f"{path} is empty; expected a header row and at least one data row")
    try:
        sep = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t").delimiter
    except csv.Error:
        sep = ","
    header = check_row_lengths(path, text, sep)
    # before pandas reads it: pandas renames a repeated name to 'name.1' and the repeat is lost
    names = [snake_case(c) for c in header] if rename_snake else header
    twice = next((c for i, c in enumerate(names) if c in names[:i]), None)
    if twice is not None:
        raise DataError(f"{path} has the column {twice!r} twice (names compared "
                        f"{'in snake_case' if rename_snake else 'as written'}); keep one of them")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path} is not a well-formed table ({str(exc).splitlines()[0]}); "
                        "check its delimiter and quoting") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame.columns) == 1:
        check_delimiter(path, frame.columns[0])
    if rename_snake:
        frame.columns = [snake_case(c) for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path} has a header but no data rows")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        shown = ", ".join(frame.columns[:12]) + (", ..." if len(frame.columns) > 12 else "")
        raise DataError(f"{path} has no column {missing[0]!r} (columns: {shown}); "
                        f"required: {', '.join(required)}")
    for column in numeric:
        frame[column] = numeric_column(frame[column], path, column)
    return frame


def windows_1252(path: Path, raw: bytes, where: int) -> str:
    """A CSV that is not UTF-8 read as Windows-1252 (what Excel on Windows saves; Latin-1 is the
    same but for 0x80-0x9F) when every byte is a character of it, with a warning: the columns
    predict reads are numbers, which are ASCII in both. A byte Windows-1252 leaves undefined
    means some other encoding, and then guessing could misread the file: refused."""
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text (byte {where}) nor Windows-1252/Latin-1; save "
                        "it as a UTF-8 CSV") from None
    sample = next((c for c in text[where:] if ord(c) > 127), "")
    warnings.warn(f"{path} is not UTF-8; read it as Windows-1252/Latin-1 (Excel's CSV on Windows; "
                  f"byte {where} read as {sample!r}); save it as a UTF-8 CSV to be sure",
                  stacklevel=3)
    return text.removeprefix("\ufeff")


def check_row_lengths(path: Path, text: str, sep: str) -> list[str]:
    """The header's names, once every row is checked to have as many cells as the header. pandas
    would otherwise take one extra cell per row as an index and shift every value one column
    left, or fill a short row with NaN, and the error would come later, about the wrong column."""
    rows = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True, strict=True)
    header: list[str] = []
    try:
        for cells in rows:
            if not cells or all(not c.strip() for c in cells):
                continue  # a blank line: pandas skips it too
            if not header:
                header = [c.strip() for c in cells]
            elif len(cells) != len(header):
                raise DataError(f"{path}: line {rows.line_num} has {len(cells)} cells but the header "
                                f"has {len(header)} columns; check that line for a missing or extra "
                                f"{'comma' if sep == ',' else repr(sep)} (or quote cells that contain one)")
    except csv.Error as exc:
        raise DataError(f"{path} is not a well-formed table (line {rows.line_num}: {exc}); check its "
                        "quoting, e.g. a quote that is opened and never closed") from None
    return header


def check_delimiter(path: Path, header: str) -> None:
    """A header that reads as one column but splits on another character: the file is separated
    by something other than commas, semicolons or tabs (pipes, colons, spaces)."""
    for name, parts, least in (("'|'", header.split("|"), 2), ("':'", header.split(":"), 3),
                               ("spaces", header.split(), 3)):
        if len(parts) >= least:
            raise DataError(f"{path}: the header {header[:60]!r} reads as one column; the file seems "
                            f"separated by {name}: save it with commas (or semicolons or tabs) "
                            "between columns")


def numeric_column(values: pd.Series, path, column: str) -> pd.Series:
    """Coerce a column to float; the first empty, non-numeric or infinite cell is an error."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = ~np.isfinite(numbers.to_numpy(dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        cell = values.iloc[row]
        # pandas reads NaN, NA and empty cells alike as missing
        shown = "an empty cell or NaN" if pd.isna(cell) or str(cell).strip() == "" else repr(str(cell))
        # +2: one for the header line, one because people count rows from 1
        raise DataError(f"{path}: row {row + 2}, column {column!r} holds {shown}, not a finite "
                        "number; fix or remove that row")
    return numbers.astype(float)


def read_whitespace(path: str | Path, names: list[str], *, na_values=("?",),
                    comment_column: str | None = None) -> pd.DataFrame:
    """A headerless whitespace-separated table (auto-mpg.data, housing.data).

    With `comment_column`, everything after the first tab of a line is that column (the quoted
    car names of auto-mpg.data).
    """
    path = Path(path)
    rows, tails = [], []
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path} cannot be read as text ({exc}); replace it with a fresh copy") from None
    width = len(names) - (1 if comment_column else 0)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        head, _, tail = line.partition("\t") if comment_column else (line, "", "")
        fields = head.split()
        if len(fields) != width:
            raise DataError(f"{path}: line {lineno} has {len(fields)} fields, expected {width}; "
                            "the file is damaged or is not this dataset")
        rows.append(fields)
        tails.append(tail.strip().strip('"'))
    if not rows:
        raise DataError(f"{path} holds no data rows")
    frame = pd.DataFrame(rows, columns=names[:width])
    for column in frame.columns:
        cleaned = frame[column].where(~frame[column].isin(na_values))
        numbers = pd.to_numeric(cleaned, errors="coerce")
        broken = numbers.isna() & cleaned.notna()
        if broken.any():
            i = int(np.flatnonzero(broken.to_numpy())[0])
            raise DataError(f"{path}: line {i + 1}, column {column!r} holds {frame[column].iloc[i]!r}, "
                            "not a number")
        frame[column] = numbers
    if comment_column:
        frame[comment_column] = tails
    return frame


def snake_case(name: str) -> str:
    out = []
    for i, ch in enumerate(name.strip()):
        if ch.isupper() and i and (name[i - 1].islower() or name[i - 1].isdigit()):
            out.append("_")
        out.append(ch.lower() if ch.isalnum() else "_")
    return "_".join(filter(None, "".join(out).split("_")))
