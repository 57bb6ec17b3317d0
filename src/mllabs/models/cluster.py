"""Clustering algorithms and scores: K-Means, K-Medoids (FasterPAM, the alternating method,
exhaustive search), agglomerative linkage trees cut into k clusters, and the cluster metrics.

Plain arrays in, plain arrays out: the car-clustering lab feeds them standardised features and
reports what comes back.
"""

from __future__ import annotations

import math
from itertools import combinations

import kmedoids
import numpy as np
from scipy.cluster import hierarchy
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import pdist, squareform
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

# the keys of scores(): silhouette ↑, Davies-Bouldin ↓, Calinski-Harabasz ↑, size entropy ↑
SCORES = ("silhouette", "davies_bouldin", "calinski_harabasz", "entropy")


def distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distance between every pair of rows, as an n × n matrix."""
    return squareform(pdist(x))


def fit_kmeans(x: np.ndarray, k: int, n_init: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(x)


def fit_kmedoids(diss: np.ndarray, k: int, starts: int, seed: int):
    """FasterPAM from the BUILD initialisation, then from random medoids; the lowest loss wins."""
    best = kmedoids.fasterpam(diss, k, max_iter=100, init="build", random_state=seed, n_cpu=1)
    for s in range(1, starts):
        result = kmedoids.fasterpam(diss, k, max_iter=100, init="random", random_state=seed + s,
                                    n_cpu=1)
        if result.loss < best.loss:
            best = result
    return best


def total_deviation(diss: np.ndarray, medoids) -> float:
    """The k-medoids objective: each point's distance to its nearest medoid, summed."""
    return float(diss[:, np.asarray(medoids, dtype=int)].min(axis=1).sum())


def alternating_kmedoids(diss: np.ndarray, k: int, starts: int, seed: int,
                         max_iter: int = 100) -> tuple[np.ndarray, float, list[float]]:
    """The alternating ("Voronoi iteration") k-medoids of scikit-learn-extra's method='alternate'.

    k-medoids++ seeding; then assign every point to its nearest medoid and move each medoid to the
    member with the smallest summed distance to its cluster, until the medoids stop moving.
    Returns the best medoids, their total deviation and every start's total deviation.
    """
    rng = np.random.default_rng(seed)
    n = len(diss)
    best, best_loss, losses = None, math.inf, []
    for _ in range(starts):
        medoids = [int(rng.integers(n))]
        for _ in range(1, k):
            weight = diss[:, medoids].min(axis=1) ** 2
            medoids.append(int(rng.choice(n, p=weight / weight.sum())))
        medoids = np.array(medoids)
        for _ in range(max_iter):
            labels = np.argmin(diss[:, medoids], axis=1)
            moved = medoids.copy()
            for c in range(k):
                members = np.flatnonzero(labels == c)
                if len(members):
                    moved[c] = members[np.argmin(diss[np.ix_(members, members)].sum(axis=1))]
            if set(moved.tolist()) == set(medoids.tolist()):
                break
            medoids = moved
        loss = total_deviation(diss, medoids)
        losses.append(loss)
        if loss < best_loss:
            best, best_loss = medoids, loss
    return best, best_loss, losses


def exhaustive_kmedoids(diss: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """The optimal medoids by trying every set of k points (small samples only)."""
    sets = np.array(list(combinations(range(len(diss)), k)))
    losses = diss[:, sets].min(axis=2).sum(axis=0)
    i = int(np.argmin(losses))
    return sets[i], float(losses[i])


def linkage(x: np.ndarray, method: str) -> np.ndarray:
    """The agglomerative merge tree of the rows of x (single, complete, average or ward)."""
    return hierarchy.linkage(x, method=method)


def cut(tree: np.ndarray, k: int) -> np.ndarray:
    """Labels 0..k-1 from cutting a scipy linkage tree into exactly k clusters."""
    return hierarchy.cut_tree(tree, n_clusters=k)[:, 0].astype(int)


def size_entropy(labels: np.ndarray) -> float:
    """Shannon entropy of the cluster-size distribution, in bits (log2 k when all are equal)."""
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    return float(silhouette_score(x, labels))


def scores(x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The four scores every clustering is compared by (SCORES, in that order)."""
    return {"silhouette": silhouette(x, labels),
            "davies_bouldin": float(davies_bouldin_score(x, labels)),
            "calinski_harabasz": float(calinski_harabasz_score(x, labels)),
            "entropy": size_entropy(labels)}


def match_labels(reference: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Renumber `labels` so each cluster takes the reference cluster it overlaps most."""
    overlap = np.zeros((k, k), int)
    np.add.at(overlap, (reference, labels), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.empty(k, int)
    mapping[cols] = rows
    return mapping[labels]


def elbow_of(ks: list[int], inertia: list[float]) -> int:
    """The k furthest below the straight line from the first to the last point (both scaled)."""
    x = (np.array(ks, float) - ks[0]) / max(ks[-1] - ks[0], 1)
    y = np.array(inertia, float)
    y = (y - y.min()) / max(y.max() - y.min(), 1e-12)
    chord = y[0] + (y[-1] - y[0]) * x
    return int(ks[int(np.argmax(chord - y))])
