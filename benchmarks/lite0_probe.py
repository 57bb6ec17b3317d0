"""Frozen EfficientNet-Lite0 features and a logistic regression (scikit-learn), on the flowers
lab's seed-0 split, at each image size given (default 160 and 224 px): the classifier's L2
strength C chosen on the validation photos; test accuracy with and without averaging each test
photo's probabilities with its mirror image's. Features come from the lab's own cache code
(mllabs.labs._transfer.features), trained on the training photos and their mirrors.

    MLLABS_DATA=../shared/data python benchmarks/lite0_probe.py 160 224
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from mllabs.config import build_config
from mllabs.labs import _transfer, flowers
from mllabs.models import efficientnet as lite0

for SIZE in map(int, sys.argv[1:] or ["160", "224"]):
    cfg = build_config(flowers.Config, flowers.PROFILES, "default",
                       ["models=cnn,lite0-frozen", f"transfer_size={SIZE}"], seed=0)
    data = flowers.prepare(cfg, None)
    ph = data.transfer; split = ph.split
    model = lite0.efficientnet_lite0(5, pretrained=True).eval()
    t = time.time()
    F = _transfer.features(model, ph.images, SIZE).numpy()
    M = _transfer.features(model, ph.images, SIZE, mirror=True).numpy()
    print(f"{SIZE}px features {F.shape} in {time.time()-t:.0f} s", flush=True)
    y = ph.labels
    tr, va, te = split["train"], split["val"], split["test"]
    Xtr = np.concatenate([F[tr], M[tr]]); ytr = np.concatenate([y[tr], y[tr]])
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
    z = lambda a: (a - mu) / sd
    best = None
    for C in [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]:
        clf = LogisticRegression(C=C, max_iter=3000).fit(z(Xtr), ytr)
        pv = (clf.predict_proba(z(F[va])) + clf.predict_proba(z(M[va]))) / 2
        acc_v = (pv.argmax(1) == y[va]).mean()
        pt1 = clf.predict_proba(z(F[te]))
        pt = (pt1 + clf.predict_proba(z(M[te]))) / 2
        print(f"  C={C:<6} val {acc_v:.4f}  test {(pt1.argmax(1)==y[te]).mean():.4f}  test+TTA {(pt.argmax(1)==y[te]).mean():.4f}", flush=True)
        if best is None or acc_v > best[0]:
            best = (acc_v, C, (pt.argmax(1)==y[te]).mean())
    print(f"{SIZE}px chosen on val: C={best[1]} val {best[0]:.4f} test+TTA {best[2]:.4f} (n_test={len(te)})", flush=True)
