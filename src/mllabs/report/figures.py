"""The plots labs share. Each returns a matplotlib Figure; Report.figure() saves and closes it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

Series = dict[str, tuple]  # label -> (x, y) or (x, y, y_err)


def plain_log_axis(axis) -> None:
    """Ticks of a log axis as plain numbers (0.5, 1, 2, 5 rather than 5×10⁻¹, 10⁰, 2×10⁰)."""
    def minor(value, _):  # where matplotlib would write 2×10ⁿ: every minor tick on an axis of
        if not (value > 0 and np.isfinite(value)):  # under a decade, 2 and 5 on one of two
            return ""
        low, high = sorted(axis.get_view_interval())
        decades = np.log10(high / low) if low > 0 and np.isfinite(high / low) else 3.0
        mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
        shown = (2, 3, 4, 5, 6, 7, 8, 9) if decades < 1 else (2, 5) if decades < 2 else ()
        return f"{value:g}" if mantissa in shown else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def curves(panels: dict[str, Series], xlabel: str = "epoch", log_y: bool = False,
           ncols: int = 2, mark: tuple[float, str] | None = None) -> plt.Figure:
    """One panel per quantity (e.g. "MAE", "MSE"), one line per series, shaded ± error if given.
    `mark` = (x, label) draws a dashed vertical line on every panel, e.g. at the epoch kept."""
    n = len(panels)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    # many lines: the legend goes beside the plot, where it hides no data
    outside = max(len(series) for series in panels.values()) > 4
    width = 5.2 + (2.4 if outside else 0.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.6 * nrows), squeeze=False)
    # a series keeps its colour in every panel it appears in
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = list(dict.fromkeys(label for series in panels.values() for label in series))
    colour = {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}
    for ax, (title, series) in zip(axes.flat, panels.items()):
        # a panel with nothing to draw (a run that diverged at once) keeps a linear axis
        drawable = any((np.isfinite(np.asarray(d[1], float)) & (np.asarray(d[1], float) > 0)).any()
                       for d in series.values())
        for label, data in series.items():
            x, y = np.asarray(data[0]), np.asarray(data[1], dtype=float)
            # with few epochs, dots show each measured point (one epoch is otherwise invisible)
            (line,) = ax.plot(x, y, label=label, color=colour[label], linewidth=1.4,
                              marker="o" if len(x) <= 12 else None, markersize=3)
            if len(data) > 2 and data[2] is not None:
                err = np.asarray(data[2], dtype=float)
                ax.fill_between(x, y - err, y + err, color=line.get_color(), alpha=0.2, linewidth=0)
        if mark is not None and drawable:
            ax.axvline(mark[0], color="#555555", linestyle="--", linewidth=1, label=mark[1])
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if xlabel == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if log_y and drawable:
            ax.set_yscale("log")
            plain_log_axis(ax.yaxis)
        ax.grid(alpha=0.3)
        if outside:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
        else:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def true_vs_predicted(y_true, y_pred, unit: str = "", baseline=None,
                      labels: tuple[str, str] = ("model", "baseline")) -> plt.Figure:
    """Predicted against true, with a baseline's predictions beside them when given."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    both = [y_true, y_pred]
    if baseline is not None:
        baseline = np.asarray(baseline, float)
        both.append(baseline)
        ax.scatter(y_true, baseline, s=14, alpha=0.6, marker="x", color="#dd8452", label=labels[1])
    ax.scatter(y_true, y_pred, s=14, alpha=0.7, edgecolors="none", color="#4c72b0",
               label=labels[0] if baseline is not None else None)
    if baseline is not None:
        ax.legend(fontsize=8, loc="upper left")
    lo, hi = float(min(v.min() for v in both)), float(max(v.max() for v in both))
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", linewidth=1, linestyle="--")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(f"true {unit}".strip())
    ax.set_ylabel(f"predicted {unit}".strip())
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def histogram(values, xlabel: str, bins: int = 25) -> plt.Figure:
    values = np.asarray(values, float)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.hist(values, bins=bins, edgecolor="white")
    ax.axvline(0, color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def heatmap(matrix, row_labels, col_labels, fmt: str = "{:.2f}", cmap: str = "viridis",
            vmin=None, vmax=None, colorbar_label: str = "", xlabel: str = "",
            ylabel: str = "") -> plt.Figure:
    matrix = np.asarray(matrix, float)
    label_width = 0.08 * max((len(str(r)) for r in row_labels), default=0)  # inches for row names
    fig, ax = plt.subplots(figsize=(2.2 + label_width + 0.75 * len(col_labels),
                                    1.0 + 0.55 * len(row_labels)))
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(col_labels)), labels=col_labels, rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), labels=row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for (i, j), value in np.ndenumerate(matrix):
        text = "—" if not np.isfinite(value) else fmt.format(value)
        red, green, blue, _ = image.cmap(image.norm(value)) if np.isfinite(value) else (1, 1, 1, 1)
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.55  # dark text on light cells
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if light else "white")
    bar = fig.colorbar(image, ax=ax)
    if colorbar_label:
        bar.set_label(colorbar_label)
    fig.tight_layout()
    return fig


def pair_plot(columns: dict[str, np.ndarray]) -> plt.Figure:
    """Scatter of every pair, a histogram on the diagonal. Each row shares its y axis and each
    column its x axis, so the tick labels on the left and bottom hold for the whole row or
    column; the histograms' counts live on twin axes of their own (unlabelled), never on the
    row's axis of values."""
    names = list(columns)
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(2.2 * k, 2.2 * k), squeeze=False,
                             sharex="col", sharey="row")
    for i, row_name in enumerate(names):
        for j, col_name in enumerate(names):
            ax = axes[i][j]
            if i == j:
                twin = ax.twinx()
                twin.hist(columns[col_name], bins=20, edgecolor="white", color="#8da0cb")
                twin.set_yticks([])
                # the row's own axis still spans its values, for the shared y of the row
                ax.scatter(columns[col_name], columns[row_name], s=0, alpha=0)
            else:
                ax.scatter(columns[col_name], columns[row_name], s=5, alpha=0.5, edgecolors="none")
            if i == k - 1:
                ax.set_xlabel(col_name)
            if j == 0:
                ax.set_ylabel(row_name)
            ax.label_outer()
    fig.tight_layout()
    return fig


def image_grid(images, titles: list[str], marked: list[bool] | None = None, ncols: int = 10,
               cmap: str = "gray") -> plt.Figure:
    """Small images with a title each; marked ones get a red title and frame (e.g. mistakes).

    Drawn as one picture in one axes: an axes per image made a 50-digit grid cost ~3 CPU-s
    (most of a quick run's figures), the mosaic a small fraction of that."""
    tiles = [_as_rgb(im, cmap) for im in images]
    # a long title ("daisy (true tulips)") breaks before its bracket rather than run into the next
    titles = [t.replace(" (", "\n(") if len(t) > 16 else t for t in titles]
    lines = max((t.count("\n") + 1 for t in titles), default=1)
    n = len(tiles)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    gap = max(2, round(0.12 * w))                    # room between tiles
    top = max(6, round((0.12 + 0.18 * lines) * w))   # and above each, for its title
    cell_w, cell_h = w + gap, h + top
    mosaic = np.ones((nrows * cell_h, ncols * cell_w, 3))
    fig, ax = plt.subplots(figsize=(1.15 * ncols, 1.15 * ncols * mosaic.shape[0] / mosaic.shape[1]))
    for k, tile in enumerate(tiles):
        y0 = (k // ncols) * cell_h + top + (h - tile.shape[0]) // 2
        x0 = (k % ncols) * cell_w + gap // 2 + (w - tile.shape[1]) // 2
        mosaic[y0:y0 + tile.shape[0], x0:x0 + tile.shape[1]] = tile
        bad = bool(marked[k]) if marked is not None else False
        color = "#b3261e" if bad else "black"
        ax.text(x0 + tile.shape[1] / 2, y0 - 1.5, titles[k], fontsize=8, color=color,
                ha="center", va="bottom", linespacing=1.1)
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), tile.shape[1], tile.shape[0], fill=False,
                                   edgecolor="#b3261e" if bad else "#cccccc",
                                   linewidth=2.5 if bad else 0.5))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    fig.subplots_adjust(0.01, 0.01, 0.99, 0.99)
    return fig


def _as_rgb(image, cmap: str) -> np.ndarray:
    """An image as floats in [0, 1], RGB, the way imshow would show it alone: a one-channel image
    stretched from its own minimum to its maximum through `cmap`, colour clipped as it is."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = a.astype(float)
        lo, hi = float(a.min()), float(a.max())
        scaled = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        return plt.get_cmap(cmap)(scaled)[..., :3]
    a = a[..., :3]
    return a / 255.0 if a.dtype == np.uint8 else np.clip(a.astype(float), 0.0, 1.0)


def bars(labels, values, ylabel: str, fmt: str = "{:.0f}", ylim=None) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(labels) + 1.5), 3.4))
    rects = ax.bar([str(x) for x in labels], values, color="#4c72b0")
    ax.bar_label(rects, labels=[fmt.format(v) for v in values], fontsize=8, padding=2)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
