"""Property tests (hypothesis): the config parser, the CSV and IDX readers and the preparation of
a user's image never fail with anything but a DataError/UserError, and what is valid comes back
as it went in. Examples are few and seeded under CI=true, so the run is fast and repeatable."""

from __future__ import annotations

import gzip
import math
import os
import string
import typing

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from PIL import Image

from mllabs.config import build_config, field_specs, parse_sets
from mllabs.data import mnist
from mllabs.data.augment import MEAN, STD, PhotoBatches
from mllabs.data.digits import prepare_digit
from mllabs.data.idx import read_idx
from mllabs.data.images import load_image
from mllabs.data.tabular import read_csv
from mllabs.errors import DataError, UserError
from mllabs.labs import LABS, get_lab

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("dev", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

CONFIGS = {name: get_lab(name) for name in LABS}


# ---------------------------------------------------------------------------- config


@settings(max_examples=300)
@given(lab=st.sampled_from(sorted(CONFIGS)), data=st.data(),
       text=st.one_of(st.text(max_size=20), st.sampled_from(
           ["", " ", "nan", "inf", "-inf", "1e400", "1e30", "-1", "0", "0.0", "1,2", ",", "true",
            "none", "١٢", "1_000", "0x10", "\x00", "9" * 40])))
def test_any_set_string_parses_or_is_a_user_error(lab, data, text):
    module = CONFIGS[lab]
    key = data.draw(st.sampled_from([f.name for f in field_specs(module.Config)] + ["bogus", "", "=x"]))
    try:
        values = parse_sets(module.Config, [f"{key}={text}"])
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    # what parses, builds (a lab may still refuse a combination in prepare, with a UserError)
    try:
        cfg = build_config(module.Config, module.PROFILES, "quick", [f"{key}={text}"])
    except UserError:
        return
    assert getattr(cfg, key.strip().replace("-", "_")) == next(iter(values.values()))


def _valid(tp, meta: dict):
    """A strategy of values the field accepts, by its annotated type and bounds."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        return st.one_of(st.none(), _valid(inner, meta))
    if origin is tuple:  # at least min_items values (an empty list of layers is refused)
        return st.lists(_valid(typing.get_args(tp)[0], meta), min_size=meta.get("min_items", 0),
                        max_size=4).map(tuple)
    if meta.get("choices"):
        return st.sampled_from([c for c in meta["choices"] if c != ""] or [""])
    if tp is bool:
        return st.booleans()
    low = meta.get("min") if meta.get("min") is not None else meta.get("gt")
    high = meta.get("max") if meta.get("max") is not None else meta.get("lt")
    if tp is int:
        low = -10**6 if low is None else int(low) + (meta.get("gt") is not None)
        return st.integers(low, high if high is not None else 10**9)
    if tp is float:
        return st.floats(-1e6 if low is None else low, 1e6 if high is None else high,
                         exclude_min=meta.get("gt") is not None, exclude_max=meta.get("lt") is not None,
                         allow_nan=False, allow_infinity=False)
    return st.text(string.ascii_letters + string.digits + "_-", max_size=10)


def _as_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(map(_as_text, value))
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


@given(lab=st.sampled_from(sorted(CONFIGS)), data=st.data())
def test_valid_values_round_trip_through_text(lab, data):
    cls = CONFIGS[lab].Config
    hints = typing.get_type_hints(cls)
    field = data.draw(st.sampled_from(field_specs(cls)))
    value = data.draw(_valid(hints[field.name], dict(field.metadata)))
    assert parse_sets(cls, [f"{field.name}={_as_text(value)}"]) == {field.name: value}


# ---------------------------------------------------------------------------- CSV

NAMES = st.text(string.ascii_lowercase + "_", min_size=1, max_size=8)
NUMBER = st.one_of(st.integers(-10**9, 10**9).map(str),
                   st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr))
JUNK = st.one_of(st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "NA", "null", "1.2.3", "--1"]),
                 st.text(string.ascii_letters, min_size=1, max_size=6))


@st.composite
def tables(draw):
    """A header and up to 6 rows; numeric columns hold numbers, except (half the time) one cell
    that is junk, NaN, infinite or empty, so each test of the reader has one thing to find."""
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    numeric = [n for n in names if draw(st.booleans())]
    n_rows = draw(st.integers(0, 6))
    rows = [[draw(NUMBER) if name in numeric else draw(st.text(string.ascii_letters, min_size=1,
                                                               max_size=6))
             for name in names] for _ in range(n_rows)]
    if rows and numeric and draw(st.booleans()):
        # an empty cell alone on its line is a blank line, which CSV readers skip
        bad = st.one_of(JUNK, st.just("")) if len(names) > 1 else JUNK
        row, column = draw(st.integers(0, n_rows - 1)), names.index(draw(st.sampled_from(numeric)))
        rows[row][column] = draw(bad)
    return names, numeric, rows


@settings(max_examples=150)
@given(table=tables(), sep=st.sampled_from([",", ";", "\t"]), bom=st.booleans(),
       eol=st.sampled_from(["\n", "\r\n"]))
def test_csv_reader_returns_finite_numbers_or_a_data_error(tmp_path, table, sep, bom, eol):
    names, numeric, rows = table
    text = eol.join(sep.join(r) for r in [names, *rows]) + eol
    path = tmp_path / "t.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())

    def finite(cell):
        try:
            return math.isfinite(float(cell)) and cell.strip() != ""
        except ValueError:
            return False

    valid = rows and all(finite(r[names.index(n)]) for r in rows for n in numeric)
    try:
        frame = read_csv(path, required=names, numeric=numeric)
    except DataError as exc:
        assert not valid, f"a valid table was refused: {exc}"
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert valid, "an invalid table was accepted"
    assert list(frame.columns) == names and len(frame) == len(rows)
    for n in numeric:
        expected = [float(r[names.index(n)]) for r in rows]
        assert np.allclose(frame[n].to_numpy(float), expected, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------- IDX

DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@st.composite
def idx_files(draw):
    code = draw(st.sampled_from(sorted(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)))
    dtype = np.dtype(DTYPES[code])
    raw = draw(st.binary(min_size=math.prod(shape) * dtype.itemsize,
                         max_size=math.prod(shape) * dtype.itemsize))
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    header = bytes([0, 0, code, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
    return array, header + raw


@given(file=idx_files(), gz=st.booleans())
def test_idx_round_trips(tmp_path, file, gz):
    array, raw = file
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    back = read_idx(path)
    assert back.shape == array.shape
    assert np.array_equal(back.view(np.uint8), array.astype(array.dtype.newbyteorder("=")).view(np.uint8))


@settings(max_examples=100)
@given(file=idx_files(), cut=st.integers(0, 40), extra=st.binary(max_size=8), flips=st.lists(
    st.tuples(st.integers(0, 15), st.integers(0, 255)), max_size=3), gz=st.booleans(),
    grow=st.booleans())
def test_damaged_idx_is_an_array_or_a_data_error(tmp_path, file, cut, extra, flips, gz, grow):
    """Cut short or grown, header bytes changed, gzip cut: a DataError naming the file, or (when
    the damage happens to leave a consistent file) an array of the declared shape."""
    _, raw = file
    raw = bytearray(raw + extra if grow else raw[: max(0, len(raw) - cut)])
    for at, value in flips:
        if at < len(raw):
            raw[at] = value
    path = tmp_path / "d.idx"
    path.write_bytes(gzip.compress(bytes(raw))[: None if grow or cut % 2 else -3] if gz else bytes(raw))
    try:
        array = read_idx(path)
    except DataError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3]))
    assert array.shape == shape


# ---------------------------------------------------------------------------- images

# (mode, file format) pairs a user's file may arrive in
MODES = [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"),
         ("I;16", "PNG"), ("I", "TIFF"), ("F", "TIFF"), ("CMYK", "JPEG"), ("L", "JPEG"),
         ("RGB", "JPEG"), ("CMYK", "TIFF"), ("P", "GIF"), ("RGB", "BMP"), ("RGBA", "WEBP")]


@st.composite
def images(draw):
    mode, fmt = draw(st.sampled_from(MODES))
    width, height = draw(st.integers(1, 80)), draw(st.integers(1, 80))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    if draw(st.booleans()):  # a flat image: nothing stands out
        base = Image.new("RGBA", (width, height), tuple(int(v) for v in rng.integers(0, 256, 4)))
    if mode in ("I;16", "I", "F"):
        grey = np.asarray(base.convert("L"), dtype=np.float64)
        scale = {"I;16": 257, "I": 1_000_000, "F": 1 / 255}[mode]
        array = (grey * scale).astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode])
        img = Image.fromarray(array)
    else:
        img = base.convert(mode)
    return img, fmt


def _save(tmp_path, img, fmt):
    path = tmp_path / f"image.{fmt.lower()}"
    img.save(path, fmt)
    return path


@given(image=images(), size=st.integers(8, 64))
def test_any_image_becomes_a_photo_tensor_in_range(tmp_path, image, size):
    path = _save(tmp_path, *image)
    photo = load_image(path, size)
    assert photo.shape == (size, size, 3) and photo.dtype == np.uint8
    x = PhotoBatches(size, augment=False)(torch.from_numpy(photo[None].copy()), False)
    low, high = (0 - MEAN) / STD, (1 - MEAN) / STD
    assert x.shape == (1, 3, size, size) and torch.isfinite(x).all()
    assert (x >= low - 1e-5).all() and (x <= high + 1e-5).all()


@given(image=images())
def test_any_image_becomes_an_mnist_digit_in_range(tmp_path, image):
    path = _save(tmp_path, *image)
    digit = prepare_digit(path)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    x = mnist.normalise(digit[None], pad_to=32)
    assert x.shape == (1, 1, 32, 32) and torch.isfinite(x).all()
    assert x.min() >= -mnist.MEAN / mnist.STD - 1e-5 and x.max() <= (1 - mnist.MEAN) / mnist.STD + 1e-5


@pytest.mark.parametrize("mode, fmt", MODES)
def test_every_mode_reads_with_its_content(tmp_path, mode, fmt):
    """Not just no error: dark, mid-grey and bright bands stay so in every mode (16-bit and float
    images are scaled by their range, not clipped at 255)."""
    grey = np.zeros((40, 42), np.uint8)
    grey[:, 14:28] = 128
    grey[:, 28:] = 255
    base = Image.fromarray(grey).convert("RGBA")
    if mode in ("I;16", "I", "F"):
        scale = {"I;16": 257, "I": 65535, "F": 1 / 255}[mode]
        img = Image.fromarray((grey.astype(np.float64) * scale).astype({"I;16": np.uint16, "I": np.int32,
                                                     "F": np.float32}[mode]))
    else:
        img = base.convert(mode)
    photo = load_image(_save(tmp_path, img, fmt), 40).astype(int).mean(axis=2)  # crops 1 px a side
    bands = photo[:, 2:11].mean(), photo[:, 16:25].mean(), photo[:, 30:].mean()
    assert bands[0] < 40 and abs(bands[1] - 128) < 40 and bands[2] > 215, (mode, fmt, bands)
