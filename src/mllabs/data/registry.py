"""Every dataset the labs use: its files, their sha256, and where they are downloaded from.

Facts come from the shared data mirror's SOURCES.md and SHA256SUMS. A dataset folder laid out
like `<root>/<name>/<path>` is the contract between the mirror, the user cache and downloads.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class DataFile:
    path: str                  # relative to the dataset folder
    sha256: str
    size: int
    urls: tuple[str, ...] = ()  # direct downloads, tried in order (empty: comes from the archive)


@dataclass(frozen=True)
class Archive:
    """A download that holds the dataset's files; each member is checked by its own sha256."""

    url: str
    sha256: str | None
    size: int | None
    kind: str  # "zip" | "tgz"


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    source: str
    license: str
    files: tuple[DataFile, ...] = ()
    manifest: str | None = None  # packaged manifest for datasets with thousands of files
    archive: Archive | None = None
    notes: str = ""

    def expected(self) -> dict[str, frozenset[str]]:
        """path -> accepted sha256 values (the flowers mirror is a re-encoded copy: both count)."""
        if self.manifest:
            return _manifest(self.manifest)
        return {f.path: frozenset({f.sha256}) for f in self.files}

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@cache
def _manifest(name: str) -> dict[str, frozenset[str]]:
    raw = resources.files("mllabs.data").joinpath("manifests", name).read_bytes()
    accepted: dict[str, set[str]] = {}
    for line in gzip.decompress(raw).decode().splitlines():
        digest, _, path = line.partition("  ")
        accepted.setdefault(path, set()).add(digest)
    return {p: frozenset(d) for p, d in accepted.items()}


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",  # the original home; now often refuses downloads
)
_UCI_MPG = "https://archive.ics.uci.edu/ml/machine-learning-databases/auto-mpg/"
_UCI_HOUSING = "https://archive.ics.uci.edu/ml/machine-learning-databases/housing/"


def _mnist(name: str, sha256: str, size: int) -> DataFile:
    return DataFile(name, sha256, size, tuple(m + name for m in _MNIST_MIRRORS))


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset(
        name="mnist",
        title="MNIST handwritten digits (original IDX files)",
        source="LeCun, Cortes, Burges; yann.lecun.com/exdb/mnist",
        license="no explicit license; commonly redistributed under CC BY-SA 3.0",
        files=(
            _mnist("train-images-idx3-ubyte.gz",
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
            _mnist("train-labels-idx1-ubyte.gz",
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
            _mnist("t10k-images-idx3-ubyte.gz",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
            _mnist("t10k-labels-idx1-ubyte.gz",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
        ),
    ),
    Dataset(
        name="auto-mpg",
        title="UCI Auto MPG (398 cars, 1970-1982)",
        source="UCI Machine Learning Repository, doi:10.24432/C5859H",
        license="CC BY 4.0",
        files=(
            DataFile("auto-mpg.data",
                     "48b830e11feee5572525f8f1691ddb9d38d3d7b7063edcd8fca672c2a5e17d8d", 30286,
                     (_UCI_MPG + "auto-mpg.data",)),
            DataFile("auto-mpg.names",
                     "f6ac336f3b11955d71adee2100faf30f8c1be20e6727476836d437d35804599c", 1660,
                     (_UCI_MPG + "auto-mpg.names",)),
        ),
    ),
    Dataset(
        name="bike-sharing",
        title="UCI Bike Sharing, Capital Bikeshare 2011-2012 (hourly and daily)",
        source="Fanaee-T & Gama (2013), UCI Machine Learning Repository, doi:10.24432/C5W894",
        license="CC BY 4.0; cite Fanaee-T & Gama, Progress in Artificial Intelligence (2013)",
        files=(
            DataFile("hour.csv", "e03de4ee4ef4dc376ac6e04bf829673c6269e8eba5c60fa121640fa2f829504f", 1156736),
            DataFile("day.csv", "a6bcf826782d3c0fbfdcbeead17cd0884185a0dafe8ff10cd48a874ee7ba18be", 57569),
            DataFile("Readme.txt", "b92c8628622948bf0828c43a1b315d1517c3d7fd63654730d0dea379b8e88175", 5607),
        ),
        archive=Archive("https://archive.ics.uci.edu/static/public/275/bike+sharing+dataset.zip",
                        "b70182d0d0508e9abbb79306ce5c0cec34869000f8220175ac83d11dbe845401", None,
                        "zip"),
    ),
    Dataset(
        name="car-price",
        title="Car price assignment table (205 cars, 26 columns; from UCI Automobile)",
        source="Kaggle hellbuoy/car-price-prediction (CarPrice_Assignment.csv)",
        license="not stated; the underlying UCI Automobile data is CC BY 4.0",
        files=(
            DataFile("CarPrice_Assignment.csv",
                     "2c78d99359a34cb6c64a97f276c1b6ea0532197b9b950b4521f65c0d9efcbc2b", 26717,
                     ("https://raw.githubusercontent.com/ameenmanna8824/DATASETS/main/CarPrice_Assignment.csv",
                      "https://cf-courses-data.s3.us.cloud-object-storage.appdomain.cloud/"
                      "IBM-ML240EN-SkillsNetwork/labs/data/CarPrice_Assignment.csv")),
        ),
    ),
    Dataset(
        name="boston-housing",
        title="Boston housing (Harrison & Rubinfeld 1978; 506 tracts, 14 columns)",
        source="StatLib / UCI 'Housing'",
        license="no explicit license; column B encodes a race-based variable",
        files=(
            DataFile("housing.data",
                     "baadf72995725d76efe787b664e1f083388c79ba21ef9a7990d87f774184735a", 49082,
                     (_UCI_HOUSING + "housing.data",
                      "http://paddlemodels.bj.bcebos.com/uci_housing/housing.data")),
            DataFile("housing.names",
                     "e34759df81bce6c916aa2766b2b2d44a88c47d81b322517377714ee5cd64adcf", 2080,
                     (_UCI_HOUSING + "housing.names",)),
        ),
    ),
    Dataset(
        name="flowers",
        title="TensorFlow flower photos (3,670 photos, 5 species)",
        source="TensorFlow team, download.tensorflow.org/example_images/flower_photos.tgz",
        license="CC BY 2.0 per photo; attributions in flower_photos/LICENSE.txt",
        manifest="flowers.sha256.gz",
        archive=Archive("https://storage.googleapis.com/download.tensorflow.org/example_images/"
                        "flower_photos.tgz",
                        "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c", 228813984, "tgz"),
        notes="The shared mirror holds a re-encoded copy (shorter side 160 px); each photo is "
              "accepted with either its re-encoded or its original sha256.",
    ),
]}


def get(name: str) -> Dataset:
    from mllabs.errors import UserError

    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]
