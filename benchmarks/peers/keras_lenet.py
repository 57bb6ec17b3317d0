"""Keras 3 (TensorFlow backend) peer of the LeNet-5 benchmark, in the shape of the Keras "Simple
MNIST convnet" example (keras.io/examples/vision/mnist_convnet): the digits as one NumPy array
scaled to [0, 1] with a channel axis, a keras.Sequential model, compile(), fit() with a batch
size, and the test set evaluated. The network and optimiser are the benchmark's common recipe
rather than the example's own (two 3×3 convolutions, dropout, Adam, batch 128): LeNet-5 (ReLU,
max pooling, digits standardised with the MNIST mean/std and padded to 32×32), SGD with momentum
0.01 / 0.9, batch 32, shuffled every epoch. The test digits are fit()'s validation_data (batches
of 1,000), so Keras evaluates them after every epoch; a callback times each epoch's training and
evaluation and stops at 99.0 %. compile() keeps its defaults (jit_compile="auto": XLA where
the model allows it).
"""

from __future__ import annotations

import time

import _common as common

args = common.arguments(__doc__)
threads = common.set_threads(args.threads)

clock = common.Clock()
with clock("import"):
    import keras
    import numpy as np
    import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)


class TimeToTarget(keras.callbacks.Callback):
    """Seconds of training and of evaluation per epoch; stops once the target is reached."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t_begin = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.t_test = time.perf_counter()

    def on_test_end(self, logs=None):
        self.t_test_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        acc = float(logs["val_accuracy"])
        self.epochs.append({"epoch": epoch + 1, "train_seconds": self.t_test - self.t_begin,
                            "eval_seconds": self.t_test_end - self.t_test, "test_accuracy": acc,
                            "train_loss": float(logs["loss"])})
        if acc >= common.TARGET or common.out_of_budget(self.epochs, args.max_seconds):
            self.model.stop_training = True


def prepare(images: np.ndarray) -> np.ndarray:
    x = (images.astype("float32") / 255 - common.MNIST_MEAN) / common.MNIST_STD
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-common.MNIST_MEAN / common.MNIST_STD)
    return x[..., None]  # channels last, as Keras expects


with clock("data"):
    train_x, train_y, test_x, test_y = common.mnist(args.data, args.smoke)
    x_train, x_test = prepare(train_x), prepare(test_x)

keras.utils.set_random_seed(args.seed)
model = keras.Sequential([
    keras.Input(shape=(32, 32, 1)),
    keras.layers.Conv2D(6, 5, activation="relu"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(16, 5, activation="relu"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(),
    keras.layers.Dense(120, activation="relu"),
    keras.layers.Dense(84, activation="relu"),
    keras.layers.Dense(10),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
timer = TimeToTarget()
model.fit(x_train, train_y, batch_size=32, epochs=args.max_epochs, shuffle=True,
          validation_data=(x_test, test_y), validation_batch_size=1000, callbacks=[timer], verbose=0)

common.emit({
    "benchmark": "lenet", "framework": "keras", "variant": "Keras 3 / TensorFlow",
    "recipe": "Keras 'Simple MNIST convnet' example's shape; LeNet-5, SGD momentum 0.01/0.9, batch 32",
    "seed": args.seed, "threads": threads,
    "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
    "import_seconds": clock.seconds["import"], "data_seconds": clock.seconds["data"],
    "train_examples": len(train_y), "test_examples": len(test_y), "batch_size": 32,
    "max_seconds": args.max_seconds, "epochs_detail": timer.epochs, **common.time_to_target(timer.epochs),
})
