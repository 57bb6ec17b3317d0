"""Datasets: the registry, verified resolution (mirror, cache, download) and file readers."""

from mllabs.data.registry import DATASETS, Dataset, get
from mllabs.data.store import (
    cache_root,
    check_folder,
    dataset_dir,
    fetch,
    locate,
    search_roots,
    verify,
)

__all__ = ["DATASETS", "Dataset", "get", "cache_root", "check_folder", "dataset_dir", "fetch",
           "locate", "search_roots", "verify"]
