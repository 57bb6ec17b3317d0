import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from mllabs.data.idx import read_idx, read_idx_pair
from mllabs.data.images import load_image, read_image_folder
from mllabs.data.tabular import read_csv, read_whitespace
from mllabs.errors import DataError
from mllabs.labs import auto_mpg


# ------------------------------------------------------------------ IDX

def test_mnist_test_set_reads_with_its_shape(data_root):
    images, labels = read_idx_pair(data_root / "mnist" / "t10k-images-idx3-ubyte.gz",
                                   data_root / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


def _idx(path, array, magic_type=0x08, gz=False, cut=0):
    header = bytes([0, 0, magic_type, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = (header + array.tobytes())[: -cut or None]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_idx_round_trip_plain_and_gzip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(_idx(tmp_path / "a.idx", array)), array)
    assert np.array_equal(read_idx(_idx(tmp_path / "a.idx.gz", array, gz=True)), array)


def test_idx_wrong_magic(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    with pytest.raises(DataError, match="magic number 504b0304"):
        read_idx(tmp_path / "x.idx")


def test_idx_truncated_body(tmp_path):
    path = _idx(tmp_path / "t.idx", np.zeros((5, 4, 4), np.uint8), cut=7)
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_idx_broken_gzip(tmp_path):
    good = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")
    (tmp_path / "b.gz").write_bytes(good[:-6])
    with pytest.raises(DataError, match="gzip"):
        read_idx(tmp_path / "b.gz")


def test_idx_count_mismatch(tmp_path):
    images = _idx(tmp_path / "i.idx", np.zeros((3, 2, 2), np.uint8))
    labels = _idx(tmp_path / "l.idx", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="3 images but .* 4 labels"):
        read_idx_pair(images, labels)


# ------------------------------------------------------------------ tables

def test_auto_mpg_whitespace_table(data_root):
    frame = read_whitespace(data_root / "auto-mpg" / "auto-mpg.data", auto_mpg.RAW_COLUMNS,
                            comment_column="car_name")
    assert len(frame) == 398
    assert frame["horsepower"].isna().sum() == 6
    assert frame["car_name"].iloc[0] == "chevrolet chevelle malibu"


def test_whitespace_table_with_a_short_line(tmp_path):
    (tmp_path / "h.data").write_text("1 2 3\n4 5\n")
    with pytest.raises(DataError, match="line 2 has 2 fields, expected 3"):
        read_whitespace(tmp_path / "h.data", ["a", "b", "c"])


def test_csv_accepts_bom_crlf_and_semicolons(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeffWeight;Model Year\r\n3504;70\r\n".encode("utf-8"))
    frame = read_csv(path, required=["weight", "model_year"], numeric=["weight"], rename_snake=True)
    assert list(frame.columns) == ["weight", "model_year"] and frame["weight"].iloc[0] == 3504.0


@pytest.mark.parametrize("content, fragment", [
    ("", "is empty"),
    ("weight,horsepower\n", "no data rows"),
    ("weight\n3504\n", "no column 'horsepower'"),
    ("weight,horsepower\n3504,fast\n", "row 2, column 'horsepower' holds 'fast'"),
    ("weight,horsepower\n3504,130\n3693,\n", "row 3, column 'horsepower' holds an empty cell"),
    ("weight,horsepower\n3504,inf\n", "not a finite number"),
    ('weight,horsepower\n"3504,130\n', "well-formed"),
])
def test_csv_errors_name_row_and_column(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_csv(path, required=["weight", "horsepower"], numeric=["weight", "horsepower"])
    assert fragment in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("encoding, name", [("latin-1", "Citroën DS"), ("cp1252", "Škoda “Rapid” €")])
def test_an_excel_csv_in_windows_1252_or_latin_1_is_read_with_a_warning(tmp_path, encoding, name):
    """The numbers are ASCII in both: they read exactly as from the UTF-8 file."""
    text = f"car_name;weight;horsepower\n{name};3504,5;130\nplain;2100;95\n".replace("3504,5", "3504.5")
    (tmp_path / "utf8.csv").write_text(text, encoding="utf-8")
    (tmp_path / "excel.csv").write_bytes(text.encode(encoding))
    expected = read_csv(tmp_path / "utf8.csv", numeric=["weight", "horsepower"])
    with pytest.warns(UserWarning, match=r"excel\.csv is not UTF-8; read it as Windows-1252") as caught:
        got = read_csv(tmp_path / "excel.csv", numeric=["weight", "horsepower"])
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert got.equals(expected) and got["car_name"][0] == name


def test_csv_in_no_windows_encoding_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_bytes(b"name,x\nab\x81\x8d,1\n")  # bytes Windows-1252 leaves undefined
    with pytest.raises(DataError, match="not UTF-8 text .* nor Windows-1252/Latin-1; save it as a UTF-8"):
        read_csv(path)


# ------------------------------------------------------------------ images

def test_image_folder_handles_modes_and_skips_corrupt_files(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
    Image.new("RGBA", (40, 30), (255, 0, 0, 0)).save(tmp_path / "cats" / "alpha.png")
    Image.new("L", (10, 50), 128).save(tmp_path / "cats" / "grey.png")
    Image.new("CMYK", (64, 64), (0, 255, 0, 0)).save(tmp_path / "dogs" / "cmyk.jpg")
    Image.new("RGB", (1, 1), (0, 0, 255)).save(tmp_path / "dogs" / "tiny.png")
    (tmp_path / "dogs" / "empty.jpg").write_bytes(b"")
    (tmp_path / "dogs" / "text.jpg").write_text("hello")
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        folder = read_image_folder(tmp_path, 16)
    assert folder.classes == ["cats", "dogs"]
    assert folder.images.shape == (4, 16, 16, 3) and folder.images.dtype == np.uint8
    assert sorted(p.name for p, _ in folder.skipped) == ["empty.jpg", "text.jpg"]
    alpha = folder.images[folder.paths.index(tmp_path / "cats" / "alpha.png")]
    assert (alpha == 255).all()  # a transparent image composites onto white


def test_single_class_folder_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "a.png")
    with pytest.raises(DataError, match="at least two"):
        read_image_folder(tmp_path, 8)


def test_truncated_jpeg_is_a_data_error(tmp_path, data_root):
    photo = next((data_root / "flowers" / "flower_photos" / "daisy").glob("*.jpg"))
    (tmp_path / "cut.jpg").write_bytes(photo.read_bytes()[:400])
    with pytest.raises(DataError, match="cut.jpg is not a readable image"):
        load_image(tmp_path / "cut.jpg", 32)
