"""The car-clustering lab on the real car price table: the run end to end, its metrics recomputed
with scikit-learn, FasterPAM against exhaustive search and alternating k-medoids, and predict."""

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from scipy.spatial.distance import pdist, squareform
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

from mllabs.data import dataset_dir
from mllabs.labs import car_clustering as lab
from mllabs.models import cluster

METHODS = ("kmeans", "kmedoids", "single", "complete", "average", "ward")
SCORES = ("silhouette", "davies_bouldin", "calinski_harabasz", "entropy")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_csv(dataset_dir("car-price", download=False) / "CarPrice_Assignment.csv")


@pytest.fixture(scope="module")
def standardised(table) -> np.ndarray:
    x = table[lab.SPECS].to_numpy(float)
    return (x - x.mean(0)) / x.std(0)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The default profile, as `mllabs run car-clustering` runs it."""
    out = tmp_path_factory.mktemp("runs")
    assert run_cli("run", "car-clustering", "--quiet", "--out", out) == 0
    (run_dir,) = (out / "car-clustering").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    labels = pd.read_csv(run_dir / "labels.csv")
    return run_dir, metrics, labels


def test_run_directory_holds_report_model_and_figures(finished):
    run_dir, result, _ = finished
    for name in ("config.json", "env.json", "metrics.json", "report.json", "report.md",
                 "report.html", "labels.csv", "predict.json"):
        assert (run_dir / name).is_file(), name
    figures = {p.name for p in (run_dir / "figures").iterdir()}
    expected = {"correlation.png", "choosing_k.png", "pca_centroid_methods.png", "pca_linkages.png",
                "dendrograms.png", "price_by_cluster.png"}
    assert expected <= figures
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figures)
    md = (run_dir / "report.md").read_text()
    for text in ("Columns clustered on", "Columns left out", "vw → volkswagen", "The scan, per k",
                 "★ marks the best value", "K-Means cluster profiles",
                 "Which method separated the cars best", "Is FasterPAM's answer the best one?"):
        assert text in md, text
    assert not list(run_dir.rglob("*.tmp"))
    assert result["status"] == "completed"


def test_every_figure_says_what_it_shows_from_the_saved_labels(finished):
    run_dir, _, labels = finished
    doc = json.loads((run_dir / "report.json").read_text())
    said = {b["file"]: b.get("conclusion", "") for s in doc["sections"] for b in s["blocks"] if b["kind"] == "figure"}
    assert all(said.values()), [f for f, c in said.items() if not c]
    same = int((labels["kmedoids"] == labels["kmeans"]).sum())
    assert f"K-Medoids puts {same} of the {len(labels)} cars" in said["figures/pca_centroid_methods.png"]


def test_conclusions_follow_made_up_numbers():
    corr = np.array([[1, 0.2, -0.9], [0.2, 1, 0.1], [-0.9, 0.1, 1]])
    assert lab.correlation_conclusion(corr, ["a", "b", "c"]).startswith("The strongest pair is a and c (r = -0.90); 1 of the 3")
    price = np.array([10e3, 12e3, 30e3, 34e3])
    text = lab.price_conclusion(price, np.array([1, 1, 0, 0]), 2, 0.9)
    assert "from $11,000 (cluster 1) to $32,000 (cluster 0)" in text
    chained = {m: np.array([0] * 9 + [1]) for m in ("kmeans", "single", "complete", "average", "ward")}
    chained["ward"] = np.array([0] * 5 + [1] * 5)
    text = lab.largest_cluster_conclusion(chained, 2)
    assert "holds 9 of 10 cars under single linkage" in text and "merges nearly everything" in text
    chained["single"] = chained["complete"] = chained["average"] = chained["ward"]
    assert "merges" not in lab.largest_cluster_conclusion(chained, 2)


def test_every_metric_is_present_and_in_range(finished):
    _, result, labels = finished
    m = result["metrics"]
    assert 2 <= m["k"] <= 10
    for method in METHODS:
        for score in SCORES:
            assert isinstance(m[f"{method}.{score}"], float), f"{method}.{score}"
        assert -1 <= m[f"{method}.silhouette"] <= 1
        assert m[f"{method}.davies_bouldin"] >= 0 and m[f"{method}.calinski_harabasz"] > 0
        assert 0 <= m[f"{method}.entropy"] <= math.log2(m["k"]) + 1e-12
        assert labels[method].nunique() == m["k"], method  # exactly k clusters, every method


def test_metrics_agree_with_sklearn_on_the_saved_labels(finished, table, standardised):
    _, result, labels = finished
    m = result["metrics"]
    assert labels["car_ID"].tolist() == table["car_ID"].tolist()
    for method in METHODS:
        y = labels[method].to_numpy()
        share = np.bincount(y) / len(y)
        entropy = -sum(p * math.log2(p) for p in share if p > 0)
        expected = {"silhouette": silhouette_score(standardised, y),
                    "davies_bouldin": davies_bouldin_score(standardised, y),
                    "calinski_harabasz": calinski_harabasz_score(standardised, y),
                    "entropy": entropy}
        for score, value in expected.items():
            assert m[f"{method}.{score}"] == pytest.approx(value, rel=1e-9), f"{method}.{score}"


def test_k_is_where_the_kmeans_silhouette_peaks(finished, standardised, note):
    _, result, _ = finished
    sil = {k: silhouette_score(standardised, KMeans(k, n_init=10, random_state=0)
                               .fit_predict(standardised)) for k in range(2, 11)}
    assert result["metrics"]["k"] == max(sil, key=sil.get)
    note(f"car-clustering: silhouette picks k = {result['metrics']['k']}; K-Means silhouette by k: "
         + ", ".join(f"{k}: {v:.3f}" for k, v in sil.items()))


def test_linkage_clusters_match_sklearn_agglomerative(finished, standardised):
    _, result, labels = finished
    for method in ("single", "complete", "average", "ward"):
        theirs = AgglomerativeClustering(n_clusters=result["metrics"]["k"], linkage=method) \
            .fit_predict(standardised)
        assert adjusted_rand_score(theirs, labels[method]) == 1.0, method


def exhaustive_optimum(diss: np.ndarray, k: int) -> float:
    return min(diss[:, list(medoids)].min(axis=1).sum() for medoids in combinations(range(len(diss)), k))


def test_fasterpam_finds_the_exhaustive_optimum_on_small_samples(standardised, note):
    """The lab's FasterPAM (best of its default starts) against every medoid set of 13 cars."""
    diss = squareform(pdist(standardised))
    starts = lab.Config().medoid_starts
    rng = np.random.default_rng(2024)
    gaps, single_misses = [], 0
    for j in range(40):
        sample = rng.choice(len(diss), 13, replace=False)
        small = diss[np.ix_(sample, sample)]
        optimum = exhaustive_optimum(small, 3)
        found = cluster.fit_kmedoids(small, 3, starts=starts, seed=j)
        assert cluster.total_deviation(small, found.medoids) == pytest.approx(found.loss, rel=1e-12)
        gaps.append(found.loss - optimum)
        one = cluster.fit_kmedoids(small, 3, starts=1, seed=j)
        assert one.loss >= optimum - 1e-9  # nothing beats the exhaustive optimum
        single_misses += one.loss > optimum + 1e-9
    assert max(abs(g) for g in gaps) < 1e-9, gaps
    note(f"car-clustering: FasterPAM (best of {starts} starts) equals the exhaustive optimum "
         f"(all 286 medoid sets) on 40 of 40 random 13-car samples, k = 3; a single BUILD start "
         f"misses it on {single_misses} of 40")


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_fasterpam_is_no_worse_than_alternating_kmedoids(standardised, note, k):
    diss = squareform(pdist(standardised))
    found = cluster.fit_kmedoids(diss, k, starts=5, seed=0)
    medoids, best, losses = cluster.alternating_kmedoids(diss, k, starts=25, seed=1)
    # the alternating result is a fixed point: every medoid is the best centre of its own cluster
    assign = np.argmin(diss[:, medoids], axis=1)
    for c, m in enumerate(medoids):
        members = np.flatnonzero(assign == c)
        assert diss[m, members].sum() <= diss[np.ix_(members, members)].sum(1).min() + 1e-9
    assert found.loss <= best + 1e-9
    note(f"car-clustering: k = {k}: FasterPAM total deviation {found.loss:.3f}, best of 25 "
         f"alternating k-medoids {best:.3f} (worst {max(losses):.3f})")


def test_the_run_reports_its_own_kmedoids_check(finished):
    _, result, _ = finished
    m = result["metrics"]
    assert m["kmedoids.total_deviation"] <= m["kmedoids.alternating_best"] + 1e-9


def test_set_k_overrides_the_silhouette(tmp_path, capsys):
    assert run_cli("run", "car-clustering", "--profile", "quick", "--set", "k=3", "--out", tmp_path,
                   "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"]["k"] == 3
    labels = pd.read_csv(f"{result['run_dir']}/labels.csv")
    assert all(labels[m].nunique() == 3 for m in METHODS)
    model = json.loads(Path(result["run_dir"], "predict.json").read_text())
    assert len(model["centroids"]) == 3 and len(model["profiles"]) == 3


def test_same_seed_gives_the_same_clusters(tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        assert run_cli("run", "car-clustering", "--profile", "quick", "--seed", "3", "--out",
                       tmp_path / name, "--json") == 0
        result = json.loads(capsys.readouterr().out)
        runs.append((result["metrics"], Path(result["run_dir"], "labels.csv").read_text()))
    assert runs[0] == runs[1]


def test_predict_puts_every_car_in_its_training_cluster(finished, table, tmp_path, capsys):
    run_dir, _, labels = finished
    cars = tmp_path / "cars.csv"
    frame = table.copy()
    frame.columns = [c.upper() if i % 2 else c for i, c in enumerate(frame.columns)]  # any case
    frame["notes"] = "extra column, ignored"
    frame.to_csv(cars, index=False)
    assert run_cli("predict", run_dir, cars, "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in results] == [f"{cars}:{i + 2}" for i in range(len(table))]
    assert [r["prediction"] for r in results] == labels["kmeans"].tolist()
    assert all(r["segment"].startswith(f"cluster {r['prediction']}: ") for r in results)


def test_predict_on_a_few_rows(finished, table, tmp_path, capsys):
    run_dir, _, labels = finished
    rows = [0, 49, 120, 204]
    cars = tmp_path / "few.csv"
    table.iloc[rows][["CarName"] + lab.SPECS].to_csv(cars, index=False)
    assert run_cli("predict", run_dir, cars) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [int(line.split("\t")[1]) for line in lines] == labels["kmeans"].iloc[rows].tolist()


@pytest.mark.parametrize("change, fragment", [
    (lambda f: f.drop(columns=["horsepower"]), "no column 'horsepower'"),
    (lambda f: f.assign(enginesize=["130", "big", "152"]), "row 3, column 'enginesize'"),
])
def test_predict_bad_input_exits_2_with_one_line(finished, table, tmp_path, capsys, change, fragment):
    run_dir, _, _ = finished
    bad = tmp_path / "bad.csv"
    change(table.head(3)[lab.SPECS].copy()).to_csv(bad, index=False)
    assert run_cli("predict", run_dir, bad) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and str(bad) in err and len(err.splitlines()) == 1


def test_make_names_are_normalised():
    assert [lab.make_of(n) for n in ("vw rabbit", "Nissan gt-r", "toyouta tercel", "maxda rx3",
                                     "porcshce panamera", "vokswagen rabbit", "alfa-romero giulia")] \
        == ["volkswagen", "nissan", "toyota", "mazda", "porsche", "volkswagen", "alfa-romeo"]


def test_report_rerenders_to_the_same_pages(finished, tmp_path, capsys):
    """`mllabs report RUN` rebuilds report.md/html from what the run saved. Nothing in a run's
    report depends on when it is rendered (wall time, stamps and env.json are saved values), so
    the pages come back byte for byte; only runs/index.html says when it was generated."""
    import shutil

    run_dir = finished[0]
    copy = tmp_path / "runs" / "car-clustering" / run_dir.name
    shutil.copytree(run_dir, copy)
    for name in ("report.md", "report.html"):
        (copy / name).unlink()
    assert run_cli("report", copy) == 0
    assert capsys.readouterr().out.strip() == str(copy / "report.html")
    for name in ("report.md", "report.html"):
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name
    index = (tmp_path / "runs" / "index.html").read_text()
    assert f'href="car-clustering/{run_dir.name}/report.html"' in index and "1 run(s)" in index
