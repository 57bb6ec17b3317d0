"""Reports that teach (issue 21), without training anything: the statistics helpers, the page's
order (result first, metrics last and collapsed), the runs index, progress lines, `runs list`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from mllabs import stats
from mllabs.config import TrainConfig
from mllabs.report import render_run, write_index
from mllabs.report.render import column_alignment
from mllabs.train import ProgressLine, fit, progress_metrics

# ---------------------------------------------------------------------------- stats


def test_wilson_matches_the_textbook_and_stays_in_range():
    low, high = stats.wilson(0.5, 100)  # Wilson's interval for 50 of 100: 0.4038–0.5962
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = stats.wilson(1.0, 50)   # all right: the upper end is 1, the lower below it
    assert high == 1.0 and 0.9 < low < 1.0
    narrow, wide = stats.wilson(0.99, 10000), stats.wilson(0.99, 100)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_items():
    rng = np.random.default_rng(1)
    few, many = rng.exponential(2.0, 40), rng.exponential(2.0, 1000)
    low, high = stats.bootstrap(few)
    assert low < few.mean() < high
    low2, high2 = stats.bootstrap(many, resamples=1000)
    assert high2 - low2 < (high - low) / 3


def test_paired_difference_sees_what_unpaired_intervals_hide():
    """b is a's error plus a small constant: a is always better. The paired interval excludes
    zero although the two MAEs' own intervals overlap."""
    rng = np.random.default_rng(2)
    a = rng.exponential(2.0, 80)
    b = a + 0.2
    diff = stats.paired_difference(a, b)
    assert diff["high"] < 0 and diff["share_high"] < 0
    a_low, a_high = stats.bootstrap(a)
    assert a_low < b.mean() < a_high + 0.2  # the unpaired intervals overlap
    with pytest.raises(ValueError):
        stats.paired_difference(a, b[:-1])


def test_the_depth_study_uses_the_shared_helpers():
    from mllabs.labs import _depth, _photos

    assert _depth.mcnemar_exact is stats.mcnemar_exact
    assert _depth.paired_bootstrap is stats.paired_bootstrap
    assert _photos.wilson_interval is stats.wilson


# ---------------------------------------------------------------------------- the page


def _fake_run(root: Path, lab: str, stamp: str, status: str | None, key: bool = True,
              headline: str = "Test accuracy **99.00 %** (95 % CI 98.8–99.2 %).") -> Path:
    """A run directory as a lab leaves it, written by hand (no training)."""
    import matplotlib.pyplot as plt

    run = root / lab / f"{stamp}-abcdef"
    (run / "figures").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"lab": lab, "profile": "quick", "seed": 0}))
    if status is None:  # still running: no metrics.json, no report
        return run
    for name in ("data", "curves"):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        fig.savefig(run / "figures" / f"{name}.png")
        plt.close(fig)
    doc = {"title": "A lab", "lab": lab, "summary": "Summary.", "command": f"mllabs run {lab}",
           "headline": headline, "headline_metric": "test_accuracy",
           "predict_command": f"mllabs predict {run} {run}/example.png",
           "try_next": [{"command": f"mllabs run {lab} --set epochs=9", "why": "longer"}],
           "sections": [
               {"heading": "The data", "blocks": [
                   {"kind": "figure", "file": "figures/data.png", "caption": "the data",
                    "conclusion": "It is balanced."},
                   {"kind": "table", "caption": "t", "columns": ["layer", "output", "parameters"],
                    "rows": [["C1", "6×28×28", "156"], ["F6", "84", "10,164"]]}]},
               {"heading": "Training", "blocks": [
                   {"kind": "figure", "file": "figures/curves.png", "caption": "the curves",
                    "conclusion": "Epoch 5 was kept."}]}]}
    if key:
        doc["key_figure"] = "figures/curves.png"
    (run / "report.json").write_text(json.dumps(doc))
    (run / "metrics.json").write_text(json.dumps({
        "lab": lab, "status": status, "seconds": 1.5,
        "metrics": {"test_accuracy": 0.99, "test_loss": 0.03, "gd.test_accuracy": 0.5}}))
    render_run(run)
    return run


def test_the_page_opens_with_the_result_and_ends_with_collapsed_metrics(tmp_path):
    run = _fake_run(tmp_path, "mnist-lenet", "20260101-100000", "completed")
    html = (run / "report.html").read_text("utf-8")
    box, first_section = html.index('id="result"'), html.index('<h2 id="the-data"')
    assert box < html.index("<img") < first_section
    assert "Test accuracy <strong>99.00 %</strong>" in html[box:first_section]
    # the key figure is drawn once, in the box; its section points there
    assert html.count("data:image/png") == 2 and "shown in the <a href=\"#result\">" in html
    assert html.index('id="what-next"') < html.index('id="all-metrics"') < html.index("<details>")
    assert "0.9900 (99.00 %)" in html  # fractions with their percentage
    assert html.count("What it shows:") == 2
    assert '<a href="#training">Training</a>' in html  # the table of contents
    md = (run / "report.md").read_text("utf-8")
    assert md.index("## Result") < md.index("![") < md.index("## The data")
    assert "| :--- | ---: | ---: |" in md  # text left, numbers (and shapes) right
    assert f"mllabs predict {run}" in md and "--set epochs=9" in md


def test_a_run_without_a_result_says_so_in_the_box(tmp_path):
    run = _fake_run(tmp_path, "mnist-lenet", "20260101-100000", "diverged", key=False)
    html = (run / "report.html").read_text("utf-8")
    box = html[html.index('id="result"'):html.index("</section>")]
    assert "diverged" in box and "99.00" not in box


def test_text_columns_are_left_aligned_and_numbers_right():
    columns = ["layer", "type", "output", "parameters", "accuracy", "interval"]
    rows = [["C1", "Conv2d", "6×28×28", "156", "99.2 %", "98.9–99.4 %"],
            ["total", "", "", "61,706", "1.5e-04", "—"]]
    assert column_alignment(columns, rows) == ["left", "left", "right", "right", "right", "right"]
    assert column_alignment(["model"], [["network (5 seeds)"]]) == ["left"]


def test_index_is_newest_first_across_labs_with_running_runs_and_headlines(tmp_path):
    _fake_run(tmp_path, "auto-mpg", "20260101-100000", "completed")
    _fake_run(tmp_path, "mnist-lenet", "20260102-090000", "completed")
    _fake_run(tmp_path, "mnist-cnn", "20260103-080000", None)  # running now
    page = write_index(tmp_path).read_text("utf-8")
    order = [page.index(stamp) for stamp in ("20260103-080000", "20260102-090000", "20260101-100000")]
    assert order == sorted(order)  # newest first, whatever the lab's name
    assert ">running<" in page and "MNIST with a shallow CNN" in page  # a lab title from the registry
    assert "test accuracy 99.00 %" in page and "gd.test_accuracy" not in page
    assert page.count('href="') == 4  # report + md for each finished run, none for the running one


# ---------------------------------------------------------------------------- progress


@dataclass
class _Cfg(TrainConfig):
    pass


def test_progress_shows_validation_never_test_and_one_line_per_short_fit(capsys):
    row = {"epoch": 1, "train_loss": 0.5, "train_mae": 3.0, "val_loss": 0.1, "val_mae": 2.0,
           "val_mse": 7.5, "test_mae": 1.7}
    assert progress_metrics(row) == "validation MAE 2, validation MSE 7.5"
    row = {"epoch": 1, "train_loss": 0.2, "train_accuracy": 0.9, "test_accuracy": 0.95}
    assert progress_metrics(row) == "train loss 0.2, train accuracy 90.00 %"

    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    model = torch.nn.Linear(3, 1)
    line = ProgressLine("[demo 2/3]")
    fit(model, (x, y), _Cfg(epochs=20, batch_size=16), loss_fn=torch.nn.functional.mse_loss,
        val=(x[:16], y[:16]), also={"test": (x[16:], y[16:])}, progress=line, label="seed 1/2")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # a fit of well under PRINT_EVERY seconds: its last epoch only
    assert re.match(r"\[demo 2/3\] seed 1/2 epoch 20/20  validation loss [\d.]+$", lines[0]), lines
    assert "test" not in lines[0]


# ---------------------------------------------------------------------------- figures


def test_pair_plot_rows_and_columns_share_their_axes_and_counts_stay_off_them():
    """The mpg row's axis shows MPG (9–47 here), never the histogram's counts (up to ~100)."""
    from mllabs.report import figures

    rng = np.random.default_rng(0)
    mpg = rng.uniform(9, 47, 400)
    fig = figures.pair_plot({"mpg": mpg, "weight": 5000 - 80 * mpg + rng.normal(0, 100, 400)})
    grid = [ax for ax in fig.axes if ax.get_subplotspec() is not None][:4]  # twins come after
    fig.canvas.draw()
    top_left, top_right, bottom_left, _ = grid
    assert top_left.get_shared_y_axes().joined(top_left, top_right)
    assert top_left.get_shared_x_axes().joined(top_left, bottom_left)
    low, high = top_left.get_ylim()
    assert 0 < low < 12 and 44 < high < 52, (low, high)
    shown = [t for t in top_left.get_yticks() if low <= t <= high]  # the labels a reader sees
    assert shown and min(shown) >= 9 and max(shown) <= 47, shown


def test_log_axes_label_ticks_as_plain_numbers():
    from mllabs.report import figures

    fig = figures.curves({"MAE": {"a": (np.arange(1, 31), np.linspace(4.3, 1.8, 30))}}, log_y=True)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
    assert {"2", "3", "4"} <= set(labels), labels
    assert not any("$" in t or "×" in t or "times" in t for t in labels), labels
