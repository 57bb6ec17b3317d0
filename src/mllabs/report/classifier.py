"""The pages every classifier lab shows: confusion matrix, per-class accuracy, a grid of test
examples with the mistakes marked. Shared by the MNIST and flowers labs."""

from __future__ import annotations

import numpy as np

from mllabs.report import figures


def describe_classifier(rep, probs: np.ndarray, labels: np.ndarray, classes: list[str],
                        images: np.ndarray, seed: int, *, what: str = "examples", name: str = "",
                        grid: tuple[int, int] = (30, 10), ncols: int = 10) -> dict:
    """`probs` (N, classes) on the test set; `images` the same N examples as they look to a
    person. Adds the figures and table to `rep`; returns per-class accuracy and error count."""
    k = len(classes)
    pred = probs.argmax(1)
    cm = np.zeros((k, k), int)
    np.add.at(cm, (labels, pred), 1)
    per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
    prefix = f"{name}_" if name else ""

    def caption(text: str) -> str:
        return f"{name}: {text}" if name else text[0].upper() + text[1:]

    off_diagonal = cm - np.diag(cm.diagonal())
    true_c, pred_c = np.unravel_index(int(off_diagonal.argmax()), cm.shape)
    errors = int(off_diagonal.sum())
    confusion = (f"{errors:,} of the {len(labels):,} test {what} are wrong "
                 f"({100 * errors / max(len(labels), 1):.2f} %)")
    if errors:
        confusion += (f"; the most frequent mistake is {classes[true_c]} read as {classes[pred_c]} "
                      f"({off_diagonal[true_c, pred_c]} times), and the hardest class is "
                      f"{classes[int(per_class.argmin())]} ({100 * per_class.min():.1f} % right, "
                      f"against {100 * per_class.max():.1f} % for {classes[int(per_class.argmax())]})")
    rep.figure(figures.heatmap(cm, classes, classes, fmt="{:.0f}", cmap="Blues",
                               colorbar_label=f"test {what}", xlabel="predicted", ylabel="true"),
               f"{prefix}confusion_matrix",
               caption(f"confusion matrix on the {len(labels):,} test {what}: rows are the true "
                       "class, columns the prediction; everything off the diagonal is a mistake"),
               conclusion=confusion[0].upper() + confusion[1:] + ".")
    rows = []
    for c in range(k):
        off = cm[c].copy()
        off[c] = -1
        rows.append({"class": classes[c], f"test {what}": int(cm[c].sum()), "correct": int(cm[c, c]),
                     "accuracy": f"{100 * per_class[c]:.1f} %",
                     "most confused with": classes[int(off.argmax())] if cm[c].sum() > cm[c, c] else "—"})
    rep.table(rows, caption("per-class accuracy"))
    rng = np.random.default_rng(seed)
    wrong = np.flatnonzero(pred != labels)
    n_random, n_wrong = grid
    shown = np.concatenate([rng.choice(len(labels), min(n_random, len(labels)), replace=False),
                            rng.choice(wrong, min(n_wrong, len(wrong)), replace=False)]).astype(int)
    rep.figure(figures.image_grid(images[shown],
                                  [f"{classes[pred[i]]} (true {classes[labels[i]]})"
                                   if pred[i] != labels[i] else classes[pred[i]] for i in shown],
                                  [pred[i] != labels[i] for i in shown], ncols=ncols),
               f"{prefix}test_{what.replace(' ', '_')}",
               caption(f"{min(n_random, len(labels))} random test {what}, then up to {n_wrong} the "
                       "network got wrong (red: prediction, with the true class in brackets)"),
               conclusion=f"Of the {min(n_random, len(labels))} random {what}, "
                          # only the random ones: with fewer test items than n_random, the
                          # mistakes drawn after them start sooner
                          f"{int((pred[shown[:min(n_random, len(labels))]] != labels[shown[:min(n_random, len(labels))]]).sum())} "
                          f"are wrong; the {min(n_wrong, len(wrong))} mistakes after them are drawn "
                          f"from all {len(wrong):,}, and many are hard for a person too.")
    return {"per_class": per_class, "errors": int(len(wrong)), "pred": pred}
