"""Car clustering: segment 205 car models by their specifications, six ways.

The handout: standardise the numeric columns of the car price table, pick k with the silhouette
and the K-Means elbow, and cluster with K-Means (k-means++, several restarts), K-Medoids
(FasterPAM) and agglomerative clustering with single, complete, average and Ward linkage. Every
method is scored with the silhouette, Davies-Bouldin, Calinski-Harabasz and the entropy of its
cluster sizes; the K-Means clusters are profiled (price, power, body style, makes) so a reader can
name the segments, and predict assigns new cars to the nearest K-Means centroid.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from scipy.cluster import hierarchy
from sklearn.decomposition import PCA

from mllabs import checkpoints
from mllabs import data as datasets
from mllabs.config import LabConfig, option
from mllabs.data.tabular import numeric_column, read_csv
from mllabs.errors import DataError, UserError
from mllabs.files import atomic_write_text
from mllabs.models import cluster
from mllabs.report import figures

NAME = "car-clustering"
TITLE = "Car clustering: segmenting 205 car models by their specifications"
SUMMARY_LINE = "segment 205 cars: K-Means, K-Medoids (FasterPAM), 4 linkages; k by silhouette"
SUMMARY = (
    "205 car models from the car price table are grouped by their standardised specifications "
    "(size, weight, engine, power, fuel economy) with K-Means, K-Medoids (FasterPAM) and "
    "agglomerative clustering with single, complete, average and Ward linkage. The number of "
    "clusters is chosen with the silhouette and the K-Means elbow; each method is scored with the "
    "silhouette, Davies-Bouldin and Calinski-Harabasz indices and the entropy of its cluster "
    "sizes, and the K-Means clusters are profiled by price, power, body style and make so they "
    "can be read as market segments.")

FILE = "CarPrice_Assignment.csv"
# Every numeric specification of the car; price is kept apart (see EXCLUDED).
SPECS = ["wheelbase", "carlength", "carwidth", "carheight", "curbweight", "enginesize",
         "boreratio", "stroke", "compressionratio", "horsepower", "peakrpm", "citympg",
         "highwaympg"]
DESCRIBED = {
    "wheelbase": "distance between the axles (in)", "carlength": "length (in)",
    "carwidth": "width (in)", "carheight": "height (in)", "curbweight": "empty weight (lb)",
    "enginesize": "engine displacement (cu in)", "boreratio": "cylinder bore (in)",
    "stroke": "piston stroke (in)", "compressionratio": "compression ratio (diesels run ~22, "
    "petrol engines ~9)", "horsepower": "peak power (hp)", "peakrpm": "engine speed at peak "
    "power (rpm)", "citympg": "city fuel economy (mpg)", "highwaympg": "highway fuel economy (mpg)",
    "price": "list price (USD)"}
EXCLUDED = [
    ("car_ID", "a row number, not a property of the car"),
    ("symboling", "an insurer's risk rating (-3 … +3): a judgement about the car, not a specification"),
    ("CarName", "names the model; its first word gives the make, used only to describe clusters"),
    ("price", "kept out so that segments are defined by what a car is, and price then shows "
              "whether those segments also sell at different prices (--set price_feature=true "
              "clusters on it too)"),
    ("fueltype, aspiration, doornumber, carbody, drivewheel, enginelocation, enginetype, "
     "cylindernumber, fuelsystem",
     "categories, not quantities: one-hot columns would weigh each category by how many levels "
     "its column has. Body style and fuel type describe the clusters instead, and the numeric "
     "columns already carry most of them (diesels through compression ratio, cylinders "
     "through engine size)"),
]
PROFILE_COLUMNS = ["CarName", "carbody", "fueltype"]
# The table's misspelt makes, mapped to the make they mean.
MAKE_FIXES = {"maxda": "mazda", "porcshce": "porsche", "toyouta": "toyota", "vokswagen": "volkswagen",
              "vw": "volkswagen", "alfa-romero": "alfa-romeo"}
METHODS = {"kmeans": "K-Means", "kmedoids": "K-Medoids", "single": "single linkage",
           "complete": "complete linkage", "average": "average linkage", "ward": "Ward linkage"}
LINKAGES = ("single", "complete", "average", "ward")
SAMPLES, SAMPLE_CARS, SAMPLE_K = 25, 14, 3  # the exhaustive k-medoids check: C(14, 3) = 364 sets


@dataclass
class Config(LabConfig):
    k: int | None = option(None, "clusters for every method; none = the k where the K-Means "
                           "silhouette is highest over k_min..k_max", min=2)
    k_min: int = option(2, "smallest k scanned for the silhouette and the elbow", min=2)
    k_max: int = option(10, "largest k scanned for the silhouette and the elbow", min=2)
    n_init: int = option(10, "K-Means restarts (k-means++ seeding each); the lowest "
                         "within-cluster sum of squares is kept", min=1)
    medoid_starts: int = option(20, "FasterPAM starts (BUILD, then random); the lowest total "
                                "deviation is kept", min=1)
    alt_starts: int = option(20, "starts of the alternating (Voronoi-iteration) "
                                     "k-medoids that FasterPAM is checked against", min=1)
    price_feature: bool = option(False, "also cluster on price (default: price only describes "
                                 "the clusters)")


PROFILES = {
    "quick": {"k_max": 6, "n_init": 3, "medoid_starts": 5, "alt_starts": 5},
    "default": {},
    "full": {"n_init": 50, "medoid_starts": 50, "alt_starts": 100},
}


# ---------------------------------------------------------------------------- data

def make_of(car_name: str) -> str:
    """The make is CarName's first word, lower-cased, with the table's typos corrected."""
    word = str(car_name).strip().split()[0].lower() if str(car_name).strip() else "unknown"
    return MAKE_FIXES.get(word, word)


@dataclass
class Prepared:
    table: pd.DataFrame      # the file, plus a `make` column
    features: list[str]
    x: np.ndarray            # standardised features, one row per car
    mean: np.ndarray
    std: np.ndarray
    make_fixes: dict         # misspelling -> (make, cars)


def prepare(cfg: Config, data_dir: Path | None) -> Prepared:
    if cfg.k_max < cfg.k_min:
        raise UserError(f"k_max={cfg.k_max} is below k_min={cfg.k_min}")
    folder = datasets.dataset_dir("car-price", data_dir)
    features = SPECS + (["price"] if cfg.price_feature else [])
    numeric = SPECS + ["price"]
    table = read_csv(folder / FILE, required=numeric + PROFILE_COLUMNS + ["car_ID"], numeric=numeric)
    if max(cfg.k_max, cfg.k or 0) >= len(table):
        raise UserError(f"k must stay below the number of cars ({len(table)})")
    words = table["CarName"].astype(str).str.strip().str.split().str[0].str.lower()
    table["make"] = [make_of(name) for name in table["CarName"]]
    fixes = {w: (MAKE_FIXES[w], int((words == w).sum())) for w in MAKE_FIXES if (words == w).any()}
    values = table[features].to_numpy(float)
    mean, std = values.mean(0), values.std(0)
    if (std == 0).any():
        raise DataError(f"{folder / FILE}: column {features[int(np.argmin(std))]!r} has the same "
                        "value in every row, so it cannot be standardised")
    return Prepared(table, features, (values - mean) / std, mean, std, fixes)


# ---------------------------------------------------------------------------- run

def run(cfg: Config, p: Prepared, ctx) -> tuple[str, dict]:
    rep = ctx.report
    describe_data(p, rep)
    x, n = p.x, len(p.x)
    diss = cluster.distances(x)
    trees = {m: cluster.linkage(x, m) for m in LINKAGES}

    # 1. scan k: the K-Means elbow and every method's silhouette
    ks = list(range(cfg.k_min, cfg.k_max + 1))
    scan = {m: [] for m in METHODS}
    inertia = []
    for k in ks:
        km = cluster.fit_kmeans(x, k, cfg.n_init, cfg.seed)
        inertia.append(float(km.inertia_))
        scan["kmeans"].append(cluster.silhouette(x, km.labels_))
        km_labels = cluster.fit_kmedoids(diss, k, cfg.medoid_starts, cfg.seed).labels.astype(int)
        scan["kmedoids"].append(cluster.silhouette(x, km_labels))
        for m in LINKAGES:
            scan[m].append(cluster.silhouette(x, cluster.cut(trees[m], k)))
    picked = ks[int(np.argmax(scan["kmeans"]))]  # argmax: the smaller k on a tie
    k = cfg.k if cfg.k is not None else picked
    ctx.log(f"silhouette picks k = {picked}; clustering with k = {k}")

    # 2. every method at the chosen k; K-Means clusters numbered by mean price
    km = cluster.fit_kmeans(x, k, cfg.n_init, cfg.seed)
    price = p.table["price"].to_numpy(float)
    order = np.argsort([price[km.labels_ == c].mean() for c in range(k)])
    rank = np.empty(k, int)
    rank[order] = np.arange(k)
    labels = {"kmeans": rank[km.labels_]}
    centroids = km.cluster_centers_[order]
    pam = cluster.fit_kmedoids(diss, k, cfg.medoid_starts, cfg.seed)
    labels["kmedoids"] = pam.labels.astype(int)
    for m in LINKAGES:
        labels[m] = cluster.cut(trees[m], k)
    for m in METHODS:
        if m != "kmeans":
            labels[m] = cluster.match_labels(labels["kmeans"], labels[m], k)
    medoids = np.asarray(pam.medoids, int)
    medoids = medoids[np.argsort(labels["kmedoids"][medoids])]  # medoid c heads cluster c
    measured = {m: cluster.scores(x, labels[m]) for m in METHODS}

    metrics: dict = {"k": k}
    for m in METHODS:
        for s in cluster.SCORES:
            metrics[f"{m}.{s}"] = measured[m][s]
    metrics["kmeans.inertia"] = float(km.inertia_)
    metrics["kmedoids.total_deviation"] = cluster.total_deviation(diss, medoids)

    pcs, pca = project(x)
    profiles = profile_clusters(p, labels["kmeans"], k)
    describe_k(cfg, ks, inertia, scan, picked, k, profiles, rep)
    describe_methods(cfg, p, k, labels, measured, pcs, pca, centroids, medoids, trees, rep)
    describe_profiles(p, labels["kmeans"], profiles, k, rep)
    check = check_kmedoids(cfg, diss, k, medoids)
    describe_check(check, k, rep)
    metrics["kmedoids.alternating_best"] = check["alternating_best"]
    conclude(k, measured, labels, p.table["CarName"].tolist(), profiles, rep)

    rows = []
    for i in range(n):
        row = {"car_ID": int(p.table["car_ID"].iloc[i]), "CarName": p.table["CarName"].iloc[i],
               "make": p.table["make"].iloc[i], "carbody": p.table["carbody"].iloc[i],
               "price": float(price[i]), "pc1": round(float(pcs[i, 0]), 6),
               "pc2": round(float(pcs[i, 1]), 6)}
        row.update({m: int(labels[m][i]) for m in METHODS})
        rows.append(row)
    ctx.run.write_history(rows, "labels.csv")
    save_model(ctx.run.path, p, k, centroids, profiles)
    best = max(METHODS, key=lambda m: measured[m]["silhouette"])
    ctx.log(f"k = {k}: best silhouette {METHODS[best]} {measured[best]['silhouette']:.3f}; "
            f"FasterPAM {check['fasterpam']:.3f} vs alternating {check['alternating_best']:.3f}")
    return "completed", metrics


def project(x: np.ndarray) -> tuple[np.ndarray, PCA]:
    pca = PCA(n_components=2).fit(x)
    return pca.transform(x), pca


def profile_clusters(p: Prepared, labels: np.ndarray, k: int) -> list[dict]:
    """What each K-Means cluster holds, in the units a buyer reads."""
    t = p.table
    out = []
    for c in range(k):
        members = t[labels == c]
        bodies = Counter(members["carbody"])
        body, body_n = bodies.most_common(1)[0]
        makes = Counter(members["make"]).most_common(3)
        diesel = float((members["fueltype"].astype(str).str.lower() == "diesel").mean())
        row = {"cluster": c, "cars": len(members), "mean price": float(members["price"].mean()),
               "horsepower": float(members["horsepower"].mean()),
               "engine size": float(members["enginesize"].mean()),
               "curb weight": float(members["curbweight"].mean()),
               "city mpg": float(members["citympg"].mean()),
               "highway mpg": float(members["highwaympg"].mean()),
               "body style": f"{body} ({100 * body_n / len(members):.0f} %)",
               "diesel": f"{100 * diesel:.0f} %",
               "makes": ", ".join(f"{m} {c_}" for m, c_ in makes)}
        row["segment"] = (f"{row['cars']} cars, mean price ${row['mean price']:,.0f}, "
                          f"{row['horsepower']:.0f} hp, {row['city mpg']:.0f}/"
                          f"{row['highway mpg']:.0f} mpg, mostly {body}; "
                          + ", ".join(m for m, _ in makes))
        out.append(row)
    return out


def check_kmedoids(cfg: Config, diss: np.ndarray, k: int, medoids) -> dict:
    """FasterPAM's objective against alternating k-medoids (all cars) and exhaustive search
    (random small samples, where every medoid set can be tried)."""
    _, alt_best, alt_losses = cluster.alternating_kmedoids(diss, k, cfg.alt_starts, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    hits_best = hits_one = 0
    worst_one = 0.0
    for j in range(SAMPLES):
        sample = rng.choice(len(diss), SAMPLE_CARS, replace=False)
        small = diss[np.ix_(sample, sample)]
        _, optimum = cluster.exhaustive_kmedoids(small, SAMPLE_K)
        best = cluster.fit_kmedoids(small, SAMPLE_K, cfg.medoid_starts, cfg.seed + j)
        one = cluster.fit_kmedoids(small, SAMPLE_K, 1, cfg.seed + j)  # the BUILD start alone
        hits_best += math.isclose(cluster.total_deviation(small, best.medoids), optimum, rel_tol=1e-9)
        gap = cluster.total_deviation(small, one.medoids) / optimum - 1
        hits_one += gap < 1e-9
        worst_one = max(worst_one, gap)
    return {"cars": len(diss), "fasterpam": cluster.total_deviation(diss, medoids),
            "alternating_best": alt_best, "alternating_median": float(np.median(alt_losses)),
            "alternating_worst": float(np.max(alt_losses)), "alt_starts": len(alt_losses),
            "medoid_starts": cfg.medoid_starts, "hits_best": hits_best, "hits_one": hits_one,
            "worst_one": worst_one}


# ---------------------------------------------------------------------------- report

def describe_data(p: Prepared, rep) -> None:
    t = p.table
    rep.section("Data", f"The car price table ({FILE}): {len(t)} car models, {t.shape[1] - 1} "
                f"columns, {t['make'].nunique()} makes. The clustering uses {len(p.features)} "
                "numeric columns, each standardised to mean 0 and standard deviation 1 over all "
                "cars, so that weight in pounds does not outvote bore in inches; every distance "
                "below is Euclidean in these standardised units.")
    head = t.head(6).copy()
    for column in ("curbweight", "price"):
        head[column] = head[column].round().astype(int)
    rep.table(head, "The table, first 6 rows (make is derived, see below)",
              columns=["car_ID", "CarName", "make", "carbody", "fueltype", "horsepower",
                       "enginesize", "curbweight", "citympg", "price"])
    rep.table([{"column": f, "meaning": DESCRIBED[f], "mean": float(m), "std": float(s)}
               for f, m, s in zip(p.features, p.mean, p.std)],
              "Columns clustered on, with the statistics they are standardised with (saved with "
              "the run; predict reuses them)")
    rep.table([{"column": c, "why not clustered on": why} for c, why in EXCLUDED
               if not (c == "price" and "price" in p.features)], "Columns left out")
    fixes = "; ".join(f"{wrong} → {right} ({n} car{'s' if n > 1 else ''})"
                      for wrong, (right, n) in p.make_fixes.items())
    rep.text("The make is the first word of CarName, lower-cased (so 'Nissan' and 'nissan' are "
             f"one make). The table misspells some makes; they are corrected: {fixes}.")
    corr = t[p.features].corr().to_numpy()
    rep.figure(figures.heatmap(corr, p.features, p.features, cmap="coolwarm", vmin=-1, vmax=1,
                               colorbar_label="Pearson r"), "correlation",
               "Correlation between the clustered columns: size, weight, engine and power rise "
               "together and fuel economy falls with them, so one direction dominates the data",
               conclusion=correlation_conclusion(corr, p.features))


def describe_k(cfg: Config, ks, inertia, scan, picked: int, k: int, profiles, rep) -> None:
    rep.section("Choosing k", f"K-Means (k-means++ seeding, {cfg.n_init} restarts, the lowest "
                "within-cluster sum of squares kept) and the other five methods were run for "
                f"k = {ks[0]} … {ks[-1]}. The rule: k is the one with the highest K-Means "
                "silhouette (the smaller k on a tie). The silhouette of a car is (b − a)/max(a, b), "
                "with a its mean distance to its own cluster and b to the nearest other cluster; "
                "its mean over all cars is near 1 when clusters are tight and far apart, near 0 "
                "when they overlap.")
    panels = {"K-Means elbow": {"within-cluster sum of squares": (ks, inertia)},
              "silhouette (higher: better separated)": {METHODS[m]: (ks, v) for m, v in scan.items()}}
    fig = figures.curves(panels, xlabel="k (clusters)")
    for ax in fig.axes:
        if ax.get_visible() and ax.get_title():
            ax.axvline(k, color="grey", linestyle="--", linewidth=1)
            ax.set_xticks(ks)
    best_k = {m: ks[int(np.argmax(v))] for m, v in scan.items()}
    agree = sum(kk == picked for kk in best_k.values())
    rep.figure(fig, "choosing_k", f"Left: K-Means' within-cluster sum of squares against k (the "
               f"elbow). Right: silhouette against k for every method. Dashed line: k = {k}",
               conclusion=f"The K-Means silhouette peaks at k = {picked} "
               f"({dict(zip(ks, scan['kmeans']))[picked]:.3f}), and {agree} of the {len(scan)} "
               f"methods' silhouettes peak there too; this run uses k = {k}.")
    rows = [{"k": kk, "K-Means sum of squares": inertia[i],
             **{f"silhouette {METHODS[m]}": scan[m][i] for m in scan}} for i, kk in enumerate(ks)]
    rep.table(rows, "The scan, per k")
    sil = dict(zip(ks, scan["kmeans"]))
    runner = max((kk for kk in ks if kk != picked), key=lambda kk: sil[kk], default=None)
    elbow = cluster.elbow_of(ks, inertia)
    drops = -np.diff(inertia) / np.array(inertia[:-1])
    text = (f"The K-Means silhouette is highest at k = {picked} ({sil[picked]:.3f})"
            + (f"; the runner-up is k = {runner} ({sil[runner]:.3f})" if runner else "") + ". ")
    if len(ks) >= 3:
        text += (f"On the elbow curve each extra cluster cuts the sum of squares by "
                 f"{100 * drops.min():.0f}–{100 * drops.max():.0f} %, and the point furthest below "
                 f"the straight line from k = {ks[0]} to k = {ks[-1]} is k = {elbow}. ")
    if picked == 2:
        text += ("A silhouette peak at k = 2 says that the clearest structure is one split, "
                 "not that there are only two kinds of car: size, weight, engine and power move "
                 "together (see the correlations), so the biggest gap runs along that one axis, "
                 "and finer segments touch each other, which the silhouette penalises. ")
        if k == 2:
            a, b = profiles
            text += (f"Here the split is {a['cars']} cars averaging ${a['mean price']:,.0f} and "
                     f"{a['horsepower']:.0f} hp against {b['cars']} averaging "
                     f"${b['mean price']:,.0f} and {b['horsepower']:.0f} hp: a coarse view, "
                     f"for which `--set k={elbow if elbow > 2 else 4}` gives finer segments. ")
    if cfg.k is not None:
        text += f"This run uses k = {k}, set with `--set k={k}` (the silhouette's own pick is {picked})."
    else:
        text += f"This run uses k = {k}; `--set k=N` overrides it."
    rep.text(text)


def scatter_panels(pcs, pca, panels, k: int) -> plt.Figure:
    """Side-by-side PCA scatters, one per method, points coloured by cluster."""
    colour = plt.get_cmap("tab10" if k <= 10 else "tab20")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False,
                             sharex=True, sharey=True)
    share = pca.explained_variance_ratio_
    for ax, (title, labels, marks, mark_label) in zip(axes[0], panels):
        for c in range(k):
            mask = labels == c
            ax.scatter(pcs[mask, 0], pcs[mask, 1], s=16, color=colour(c), alpha=0.8,
                       edgecolors="none", label=f"{c} ({mask.sum()})")
        if marks is not None:
            ax.scatter(marks[:, 0], marks[:, 1], marker="X", s=120,
                       color=[colour(c) for c in range(k)], edgecolors="black", linewidths=1.2,
                       label=mark_label)
        ax.set_title(title)
        ax.set_xlabel(f"PC1 ({100 * share[0]:.0f} % of variance)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="cluster (cars)", title_fontsize=7, loc="best")
    axes[0][0].set_ylabel(f"PC2 ({100 * share[1]:.0f} % of variance)")
    fig.tight_layout()
    return fig


def dendrograms(trees: dict, labels: dict, k: int, names: list[str]) -> plt.Figure:
    """One dendrogram per linkage, the last 30 merges shown, links coloured like the scatters."""
    colour = plt.get_cmap("tab10" if k <= 10 else "tab20")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.4), squeeze=False)
    for ax, (m, tree) in zip(axes.flat, trees.items()):
        n = len(tree) + 1
        below = list(labels[m]) + [-1] * (n - 1)  # node id -> its cluster, or -1 if mixed
        for row, (a, b) in enumerate(tree[:, :2].astype(int)):
            below[n + row] = below[a] if below[a] == below[b] else -1
        height = (tree[n - k - 1, 2] + tree[n - k, 2]) / 2  # between the last kept and first cut merge
        hierarchy.dendrogram(tree, ax=ax, truncate_mode="lastp", p=30, show_leaf_counts=True,
                             labels=names,
                             leaf_font_size=6, leaf_rotation=90,
                             link_color_func=lambda i, below=below: (
                                 to_hex(colour(below[i])) if below[i] >= 0 else "#999999"))
        ax.axhline(height, color="black", linestyle="--", linewidth=0.8)
        ax.set_title(f"{METHODS[m]} (cut into {k})")
        ax.set_ylabel("merge distance")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def price_by_cluster(price, labels, k: int) -> plt.Figure:
    colour = plt.get_cmap("tab10" if k <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * k + 2), 3.6))
    groups = [price[labels == c] / 1000 for c in range(k)]
    box = ax.boxplot(groups, patch_artist=True, widths=0.55, medianprops={"color": "black"})
    for c, patch in enumerate(box["boxes"]):
        patch.set_facecolor(colour(c))
        patch.set_alpha(0.6)
    ax.set_xticks(range(1, k + 1), labels=[f"cluster {c}" for c in range(k)])
    ax.set_ylabel("price (thousand USD)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def correlation_conclusion(corr: np.ndarray, features: list[str]) -> str:
    """The strongest pair, and how many pairs move together strongly (|r| > 0.7)."""
    upper = np.triu_indices(len(features), 1)
    values = corr[upper]
    i = int(np.argmax(np.abs(values)))
    a, b = features[upper[0][i]], features[upper[1][i]]
    strong = int((np.abs(values) > 0.7).sum())
    return (f"The strongest pair is {a} and {b} (r = {values[i]:+.2f}); {strong} of the "
            f"{len(values)} pairs have |r| above 0.7, so the clusters will mostly follow that one "
            "size-and-power direction.")


def agreement_conclusion(labels: dict, methods) -> str:
    """How many cars each method puts in the K-Means cluster of the same number (clusters are
    matched to K-Means' before this), from the labels themselves."""
    n = len(labels["kmeans"])
    same = {m: int((np.asarray(labels[m]) == np.asarray(labels["kmeans"])).sum()) for m in methods}
    first, *rest = methods
    return (f"{METHODS[first]} puts {same[first]} of the {n} cars in the same cluster as K-Means"
            + "".join(f", {METHODS[m]} {same[m]}" for m in rest) + ".")


def largest_cluster_conclusion(labels: dict, k: int) -> str:
    """Whether a linkage chains: the share of cars in its largest cluster at the cut."""
    n = len(labels["kmeans"])
    largest = {m: int(np.bincount(labels[m], minlength=k).max()) for m in ("single", "complete", "average", "ward")}
    worst = max(largest, key=largest.get)
    return (f"Cut at k = {k}, the largest cluster holds {largest[worst]} of {n} cars under "
            f"{METHODS[worst]} ({', '.join(f'{METHODS[m]} {v}' for m, v in largest.items() if m != worst)})"
            + (": one linkage merges nearly everything and leaves the outliers alone"
               if largest[worst] > 0.8 * n else "") + ".")


def price_conclusion(price: np.ndarray, labels: np.ndarray, k: int, eta2: float) -> str:
    means = [price[labels == c].mean() for c in range(k)]
    lo, hi = int(np.argmin(means)), int(np.argmax(means))
    return (f"Mean price runs from ${means[lo]:,.0f} (cluster {lo}) to ${means[hi]:,.0f} "
            f"(cluster {hi}), and the clusters explain {100 * eta2:.0f} % of the variance of price.")


def describe_methods(cfg: Config, p: Prepared, k: int, labels, measured, pcs, pca, centroids,
                     medoids, trees, rep) -> None:
    rep.section("Methods and metrics", f"Six clusterings of the same {len(p.x)} standardised cars "
                f"into k = {k} clusters. K-Means: k-means++ seeding, {cfg.n_init} restarts. "
                "K-Medoids: FasterPAM (the kmedoids package) on the Euclidean distance matrix, "
                f"from the BUILD initialisation and {cfg.medoid_starts - 1} random starts, lowest "
                "total deviation kept; its centres are real cars. Agglomerative: scipy's linkage, "
                "merging the two closest clusters until one is left, then cut into k; single "
                "linkage measures cluster distance by the closest pair, complete by the farthest "
                "pair, average by the mean over all pairs, and Ward merges the pair that least "
                "increases the within-cluster sum of squares (K-Means' own criterion). Cluster "
                "numbers of the other methods are matched to the K-Means cluster they overlap "
                "most, so a colour means the same group in every figure.")
    rep.text("What the metrics say. **Silhouette** (−1 … 1, higher is better): how much closer a car "
             "is to its own cluster than to the next. **Davies-Bouldin** (≥ 0, lower is better): "
             "for each cluster, the worst ratio of the two clusters' spreads to the distance "
             "between their centres, averaged. **Calinski-Harabasz** (higher is better): "
             "between-cluster over within-cluster variance, each per degree of freedom. "
             "**Entropy** of the cluster sizes, in bits: −Σ pᵢ log₂ pᵢ over the share pᵢ of cars "
             f"in each cluster; it is log₂ k = {math.log2(k):.3f} when all clusters are the same "
             "size and 0 when one holds every car. It says how balanced a clustering is, not how "
             "good: markets do have small segments, but a clustering that puts a handful of "
             "outliers in their own clusters and everything else together scores low.")
    best = {"silhouette": max, "davies_bouldin": min, "calinski_harabasz": max, "entropy": max}
    marked = {s: best[s](measured[m][s] for m in METHODS) for s in cluster.SCORES}

    def cell(m, s, digits):
        value = measured[m][s]
        text = f"{value:,.{digits}f}"
        return text + " ★" if np.isclose(value, marked[s], rtol=1e-12, atol=0) else text

    rows = [{"method": METHODS[m], "silhouette ↑": cell(m, "silhouette", 3),
             "Davies-Bouldin ↓": cell(m, "davies_bouldin", 3),
             "Calinski-Harabasz ↑": cell(m, "calinski_harabasz", 1),
             "entropy (bits)": cell(m, "entropy", 3),
             "cluster sizes": " / ".join(str(v) for v in np.bincount(labels[m], minlength=k))}
            for m in METHODS]
    rep.table(rows, f"Every method at k = {k}. ★ marks the best value in each column (highest "
              "silhouette and Calinski-Harabasz, lowest Davies-Bouldin); in the entropy column it "
              "marks the most even split, which is balance, not quality. Sizes are listed by "
              "cluster number")
    km_centres = pca.transform(centroids)
    rep.figure(scatter_panels(pcs, pca, [
        ("K-Means", labels["kmeans"], km_centres, "centroid"),
        ("K-Medoids (FasterPAM)", labels["kmedoids"], pcs[medoids], "medoid"),
        ("Ward linkage", labels["ward"], None, None)], k), "pca_centroid_methods",
        f"The cars on their first two principal components ({100 * pca.explained_variance_ratio_.sum():.0f} % "
        "of the standardised variance), coloured by cluster: K-Means (✕ centroids), K-Medoids "
        "(✕ medoids, which are cars) and Ward linkage, which minimises the same sum of squares "
        "as K-Means", conclusion=agreement_conclusion(labels, ("kmedoids", "ward")))
    rep.figure(scatter_panels(pcs, pca, [(METHODS[m], labels[m], None, None)
                                         for m in ("single", "complete", "average")], k),
               "pca_linkages", "The same projection, coloured by single, complete and average "
               "linkage", conclusion=agreement_conclusion(labels, ("single", "complete", "average")))
    rep.figure(dendrograms(trees, labels, k, p.table["CarName"].astype(str).tolist()), "dendrograms",
               "Dendrogram per linkage: the last 30 merges (a leaf is one car, named, or a group "
               "whose size is in brackets), links coloured by the cluster below them (grey: above the cut); "
               f"the dashed line is the height that leaves {k} clusters",
               conclusion=largest_cluster_conclusion(labels, k))


def describe_profiles(p: Prepared, labels, profiles, k: int, rep) -> None:
    price = p.table["price"].to_numpy(float)
    between = sum(((labels == c).sum() * (price[labels == c].mean() - price.mean()) ** 2)
                  for c in range(k))
    eta2 = between / ((price - price.mean()) ** 2).sum()
    rep.section("The K-Means segments", "Each K-Means cluster described by the columns a buyer "
                "reads: numbered from the cheapest to the dearest on average, with the mean price, "
                "power, engine size, weight and fuel economy of its cars, its most common body "
                "style, its share of diesels, and its three most frequent makes (with counts).")
    shown = [{**row, "mean price": f"${row['mean price']:,.0f}",
              "horsepower": f"{row['horsepower']:.0f}", "engine size": f"{row['engine size']:.0f}",
              "curb weight": f"{row['curb weight']:,.0f}", "city mpg": f"{row['city mpg']:.1f}",
              "highway mpg": f"{row['highway mpg']:.1f}"} for row in profiles]
    rep.table(shown, "K-Means cluster profiles (means over the cluster's cars; engine size in "
              "cubic inches, curb weight in pounds)",
              columns=["cluster", "cars", "mean price", "horsepower", "engine size", "curb weight",
                       "city mpg", "highway mpg", "body style", "diesel", "makes"])
    how = ("price was one of the clustered columns, so part of this is by construction"
           if "price" in p.features else "price was not a clustered column, so this is how "
           "far segments defined by specifications alone also separate by price")
    rep.figure(price_by_cluster(price, labels, k), "price_by_cluster",
               f"Price by K-Means cluster; the clusters explain {100 * eta2:.0f} % of the variance "
               f"of price (η², between-cluster over total sum of squares); {how}",
               conclusion=price_conclusion(price, labels, k, eta2))


def describe_check(check: dict, k: int, rep) -> None:
    full_ok = check["fasterpam"] <= check["alternating_best"] * (1 + 1e-12)
    starts = check["medoid_starts"]
    rep.section("Is FasterPAM's answer the best one?", "K-Medoids minimises the total deviation: "
                "each car's distance to its cluster's medoid, summed. Finding the best medoids is "
                "NP-hard and FasterPAM is a local search (it swaps a medoid for a non-medoid while "
                "that lowers the total), so its answer is checked two ways.")
    gap = check["alternating_best"] - check["fasterpam"]
    rep.table([
        {"check": f"all {check['cars']} cars, k = {k}",
         "FasterPAM": f"{check['fasterpam']:.3f} (best of {starts} starts)",
         "reference": f"best of {check['alt_starts']} alternating k-medoids runs: "
                      f"{check['alternating_best']:.3f} (median {check['alternating_median']:.3f}, "
                      f"worst {check['alternating_worst']:.3f})",
         "verdict": ("FasterPAM as low" if abs(gap) < 1e-9 else f"FasterPAM {gap:.3f} lower")
         if full_ok else f"FasterPAM {-gap:.3f} higher"},
        {"check": f"{SAMPLES} random samples of {SAMPLE_CARS} cars, k = {SAMPLE_K}",
         "FasterPAM": f"best of {starts} starts: the optimum in {check['hits_best']} of {SAMPLES}",
         "reference": f"the optimum, from all {math.comb(SAMPLE_CARS, SAMPLE_K)} medoid sets of "
                      "each sample",
         "verdict": f"one start (BUILD) alone: the optimum in {check['hits_one']} of {SAMPLES}, "
                    f"at worst {100 * check['worst_one']:.1f} % above it"},
    ], "Total deviation (sum of standardised Euclidean distances to the medoids)")
    text = ("The alternating method (scikit-learn-extra's method='alternate') assigns each car to "
            "its nearest medoid and moves each medoid to the member closest to the rest of its "
            "cluster, until nothing moves; it stops at the first such fixed point, which depends "
            "on where it started. ")
    if not full_ok:
        text += ("Here an alternating run ends lower than FasterPAM: more FasterPAM starts "
                 "(--set medoid_starts=N) should close the gap. ")
    if check["hits_best"] < SAMPLES:
        text += (f"On {SAMPLES - check['hits_best']} of the samples even the best of {starts} "
                 "FasterPAM starts stays above the optimum: the lab's medoids are a very good "
                 "local optimum, not a proven global one. ")
    elif check["hits_one"] < SAMPLES:
        text += ("A single FasterPAM run can stop above the optimum, which is why the lab keeps "
                 f"the best of {starts} starts; with them every sample reached the optimum. ")
    rep.text(text)


INDICES = {"silhouette": ("silhouette", True), "davies_bouldin": ("Davies-Bouldin", False),
           "calinski_harabasz": ("Calinski-Harabasz", True)}


def conclude(k: int, measured: dict, labels: dict, names, profiles: list[dict], rep) -> None:
    """The verdict, from the numbers: best mean rank over the three indices among the clusterings
    whose sizes are not lopsided; the lopsided ones are described separately."""
    top = math.log2(k)
    balanced = [m for m in METHODS if measured[m]["entropy"] >= 0.5 * top] or list(METHODS)
    uneven = [m for m in METHODS if m not in balanced]
    ranks = {m: [] for m in balanced}
    for s, (_, higher) in INDICES.items():
        ordered = sorted(balanced, key=lambda m: -measured[m][s] if higher else measured[m][s])
        for i, m in enumerate(ordered):
            ranks[m].append(i + 1)
    overall = min(balanced, key=lambda m: (sum(ranks[m]), -measured[m]["silhouette"]))
    winner = {s: (max if higher else min)(balanced, key=lambda m: measured[m][s])
              for s, (_, higher) in INDICES.items()}
    o = measured[overall]
    won = [INDICES[s][0] for s, m in winner.items() if m == overall]
    left_out = f"; this leaves out {', '.join(METHODS[m] for m in uneven)}" if uneven else ""
    text = (f"At k = {k}, counting the clusterings that split the cars into groups of comparable "
            f"size (size entropy at least half its maximum of {top:.2f} bits{left_out}), "
            f"{METHODS[overall]} separated the cars best over the three indices together (mean "
            f"rank {np.mean(ranks[overall]):.1f} of {len(balanced)}"
            + (f", first on {'all three' if len(won) == 3 else ' and '.join(won)}" if won else "")
            + f"): silhouette "
            f"{o['silhouette']:.3f}, Davies-Bouldin {o['davies_bouldin']:.3f}, Calinski-Harabasz "
            f"{o['calinski_harabasz']:.1f}, size entropy {o['entropy']:.2f} bits. ")
    others = [f"{METHODS[m]} is first on {INDICES[s][0]} ({measured[m][s]:.4g} against "
              f"{o[s]:.4g})" for s, m in winner.items() if m != overall]
    if others:
        text += "The indices do not all agree: " + "; ".join(others) + ". "
    if winner["calinski_harabasz"] == "kmeans":
        text += ("K-Means leading on Calinski-Harabasz is expected: at a fixed k that index only "
                 "falls as the within-cluster sum of squares grows, and that sum is what K-Means "
                 "minimises. ")
    for m in uneven:
        counts = np.bincount(labels[m], minlength=k)
        apart = np.flatnonzero(labels[m] != int(np.argmax(counts)))
        who = (" (" + ", ".join(str(names[i]) for i in apart) + ")") if len(apart) <= 3 else ""
        text += (f"{METHODS[m].capitalize()} (sizes {' / '.join(map(str, sorted(counts, reverse=True)))}) "
                 f"scores silhouette {measured[m]['silhouette']:.3f} and Davies-Bouldin "
                 f"{measured[m]['davies_bouldin']:.3f} by setting {len(apart)} unusual "
                 f"car{'s' if len(apart) > 1 else ''}{who} apart from the rest; that is a "
                 "separation, but not a segmentation. ")
    best_sil = max(measured[m]["silhouette"] for m in METHODS)
    if best_sil < 0.5:
        text += (f"No method reaches a silhouette of 0.5 (the highest is {best_sil:.3f}): these "
                 "cars form a continuum from small and frugal to large and powerful more than "
                 "well-separated groups, and the segments are cuts along it. ")
    cheap, dear = profiles[0], profiles[-1]
    text += (f"K-Means' cheapest cluster averages ${cheap['mean price']:,.0f} and "
             f"{cheap['horsepower']:.0f} hp, its dearest ${dear['mean price']:,.0f} and "
             f"{dear['horsepower']:.0f} hp.")
    rep.section("Which method separated the cars best", text)


# ---------------------------------------------------------------------------- predict

def save_model(run_dir: Path, p: Prepared, k: int, centroids: np.ndarray, profiles) -> None:
    """The K-Means centres and the standardisation, all in predict.json (no weights file)."""
    checkpoints.save_for_predict(run_dir, NAME, {
        "k": k, "features": p.features, "mean": p.mean.tolist(), "std": p.std.tolist(),
        "centroids": centroids.tolist(), "profiles": profiles,
        "ranges": checkpoints.ranges(p.table, p.features)})


def predict(run_dir: Path, inputs: list[Path]) -> list[dict]:
    model = checkpoints.load_spec(run_dir, NAME)
    with checkpoints.reading(run_dir, NAME):
        features = list(model["features"])
        mean, std = np.array(model["mean"], float), np.array(model["std"], float)
        centroids = np.array(model["centroids"], float)
        segments = [prof["segment"] for prof in model["profiles"]]
    results = []
    for path in inputs:
        frame = read_csv(path)
        given = list(frame.columns)
        frame.columns = [c.lower() for c in given]  # column names match in any case
        twice = frame.columns[frame.columns.duplicated()]
        if len(twice):
            raise DataError(f"{path} has the column {twice[0]!r} twice (names compared in any case); "
                            "keep one of them")
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise DataError(f"{path} has no column {missing[0]!r} (columns: {', '.join(given)}); "
                            f"required, in any case: {', '.join(features)}")
        x = np.column_stack([numeric_column(frame[f], path, f).to_numpy(float) for f in features])
        z = (x - mean) / std
        nearest = np.argmin(((z[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
        for i, c in enumerate(nearest):
            results.append({"input": f"{path}:{i + 2}", "prediction": int(c),
                            "segment": f"cluster {int(c)}: {segments[int(c)]}"})
    return results


# ---------------------------------------------------------------------------- the report's ends

HEADLINE = "kmeans.silhouette"
KEY_FIGURE = "choosing_k"
TRY_NEXT = [
    ("--set k=4", "four segments instead of the silhouette's choice: are they easier to name?"),
    ("--set price_feature=true", "cluster on price too, not only the specifications"),
]


def headline(metrics: dict) -> str:
    return (f"The silhouette picks **k = {metrics['k']}**; K-Means' silhouette there is "
            f"{metrics['kmeans.silhouette']:.3f} (K-Medoids {metrics['kmedoids.silhouette']:.3f}).")


def example_input(p: Prepared, run_dir: Path) -> list[str]:
    """Three cars of the data set, as predict reads them."""
    path = run_dir / "example-cars.csv"
    atomic_write_text(path, p.table.drop(columns=["make"], errors="ignore").head(3).to_csv(index=False))
    return [str(path)]
