"""Keras peer of the Auto MPG benchmark, following TensorFlow's "Basic regression: Predict fuel
efficiency" tutorial, its deep network with all the features (`dnn_model`):

  data      auto-mpg.data read with pandas ('?' as missing, whitespace separated, the car name
            after the tab dropped); rows with unknown horsepower dropped; Origin one-hot
            (USA, Europe, Japan); train = sample(frac=0.8, random_state=0), test = the rest.
  network   Normalization (adapted on the training features) → Dense 64 ReLU → Dense 64 ReLU →
            Dense 1.
  training  loss mean absolute error, Adam(0.001), fit(validation_split=0.2, epochs=100),
            Keras' default batch of 32; then evaluate() on the test cars: test MAE in MPG.

`seconds` is fit()'s wall time (100 epochs, the validation split evaluated after each, as in
the tutorial); import, reading and Normalization.adapt() are reported separately.
"""

from __future__ import annotations

import time

import _common as common

args = common.arguments(__doc__, epochs={"type": int, "default": 100})
threads = common.set_threads(args.threads)

clock = common.Clock()
with clock("import"):
    import keras
    import pandas as pd
    import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
epochs = 3 if args.smoke else args.epochs

with clock("data"):
    columns = ["MPG", "Cylinders", "Displacement", "Horsepower", "Weight", "Acceleration",
               "Model Year", "Origin"]
    cars = pd.read_csv(args.data / "auto-mpg" / "auto-mpg.data", names=columns, na_values="?",
                       comment="\t", sep=" ", skipinitialspace=True).dropna()
    cars["Origin"] = cars["Origin"].map({1: "USA", 2: "Europe", 3: "Japan"})
    cars = pd.get_dummies(cars, columns=["Origin"], prefix="", prefix_sep="")
    train = cars.sample(frac=0.8, random_state=0)
    test = cars.drop(train.index)
    train_y, test_y = train.pop("MPG").to_numpy("float32"), test.pop("MPG").to_numpy("float32")
    train_x, test_x = train.to_numpy("float32"), test.to_numpy("float32")
    keras.utils.set_random_seed(args.seed)
    normalizer = keras.layers.Normalization(axis=-1)
    normalizer.adapt(train_x)

model = keras.Sequential([
    keras.Input(shape=(train_x.shape[1],)),
    normalizer,
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(1),
])
model.compile(loss="mean_absolute_error", optimizer=keras.optimizers.Adam(0.001))
tick = time.perf_counter()
history = model.fit(train_x, train_y, validation_split=0.2, epochs=epochs, verbose=0)
seconds = time.perf_counter() - tick
test_mae = float(model.evaluate(test_x, test_y, verbose=0))

common.emit({
    "benchmark": "auto-mpg", "framework": "keras", "variant": "Keras 3 / TensorFlow (tutorial recipe)",
    "recipe": "TensorFlow 'Basic regression' tutorial dnn_model: Normalization, Dense 64, 64, 1, "
              "Adam 1e-3, MAE loss, 100 epochs, validation_split 0.2",
    "seed": args.seed, "threads": threads,
    "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
    "import_seconds": clock.seconds["import"], "data_seconds": clock.seconds["data"],
    "seconds": seconds, "epochs": epochs, "test_mae": test_mae,
    "val_mae_last": float(history.history["val_loss"][-1]),
    "train_examples": round(len(train_y) * 0.8), "test_examples": len(test_y),
})
