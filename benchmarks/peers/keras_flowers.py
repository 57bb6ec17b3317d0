"""Keras peer of the flowers benchmark: the flowers lab's plain CNN written in Keras 3
(TensorFlow backend) and trained the way Keras' "Image classification from scratch" example
(keras.io/examples/vision/image_classification_from_scratch) feeds photos: a tf.data pipeline
that shuffles, batches, applies Keras preprocessing layers for augmentation in the pipeline
(`dataset.map(..., num_parallel_calls=AUTOTUNE)`) and prefetches, then model.fit().

The same job as the mllabs side, layer for layer:
  photos    the very pixels mllabs decoded (96 px uint8, its 70/15/15 split; the runner passes
            the .npz mllabs_flowers.py exported)
  augment   RandomZoom (zoom in up to 41 %, the side of a 35 % area crop) + RandomTranslation
            + RandomFlip (horizontal) + RandomColorJitter (brightness, contrast, saturation 0.2):
            Keras' closest to mllabs' random resized crop, flip and colour jitter
  network   4 × [Conv2D 3×3 same, no bias, He-normal fan-out → BatchNorm (momentum 0.9, ε 1e-5,
            PyTorch's) → ReLU → MaxPool 2] with 32/64/128/256 filters → global average pool →
            Dropout 0.3 → Dense 5; ImageNet mean/std normalisation inside the model
  training  AdamW 2e-3, weight decay 0.05, cosine decay over the run, categorical cross-entropy
            with label smoothing 0.1, batch 32
`--precision bf16` sets Keras' mixed_bfloat16 policy (bfloat16 compute, float32 weights), the
counterpart of mllabs' bfloat16 autocast.

training   photos × epochs ÷ fit()'s wall time (steady: without the first epoch, which traces)
inference  model.predict over the 1,102 held-out photos in batches of 32 (its default), after a warm-up
"""

from __future__ import annotations

import time
from pathlib import Path

import _common as common

args = common.arguments(__doc__, epochs={"type": int, "default": 3},
                        precision={"choices": ("fp32", "bf16"), "default": "fp32"},
                        photos={"type": Path, "required": True})
threads = common.set_threads(args.threads)

clock = common.Clock()
with clock("import"):
    import keras
    import numpy as np
    import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
if args.precision == "bf16":
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
keras.utils.set_random_seed(args.seed)
epochs = 1 if args.smoke else args.epochs
BATCH, MEAN, STD = 32, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

with clock("data"):
    saved = np.load(args.photos)
    images, labels = saved["images"], saved["labels"]
    classes = len(saved["classes"])
    train, held, test = saved["train"], np.concatenate([saved["val"], saved["test"]]), saved["test"]
    augment = keras.Sequential([
        keras.layers.RandomZoom((-0.41, 0.0)),
        keras.layers.RandomTranslation(0.15, 0.15),
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomColorJitter(value_range=(0, 255), brightness_factor=0.2,
                                       contrast_factor=0.2, saturation_factor=0.2),
    ])
    onehot = np.eye(classes, dtype="float32")[labels[train]]
    train_ds = (tf.data.Dataset.from_tensor_slices((images[train], onehot))
                .shuffle(len(train), seed=args.seed)
                .batch(BATCH)
                .map(lambda x, y: (augment(tf.cast(x, "float32"), training=True), y),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))


def block(width):
    return [keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                                kernel_initializer=keras.initializers.VarianceScaling(
                                    2.0, "fan_out", "untruncated_normal")),
            keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2)]


model = keras.Sequential(
    [keras.Input(shape=images.shape[1:]),
     keras.layers.Rescaling(1 / 255),
     keras.layers.Normalization(mean=MEAN, variance=[s * s for s in STD])]
    + [layer for width in (32, 64, 128, 256) for layer in block(width)]
    + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dropout(0.3),
       keras.layers.Dense(classes, dtype="float32")])
steps = int(np.ceil(len(train) / BATCH)) * epochs
model.compile(optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(2e-3, steps),
                                               weight_decay=0.05),
              loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))


class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.tick = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.tick)


timer = EpochTimes()
history = model.fit(train_ds, epochs=epochs, callbacks=[timer], verbose=0)
per_epoch = timer.seconds

held_x = images[held]
INFER_BATCH = 32  # model.predict's default batch, and mllabs predict()'s for photos
model.predict(held_x[:INFER_BATCH], batch_size=INFER_BATCH, verbose=0)  # warm-up: traces predict
tick = time.perf_counter()
out = model.predict(held_x, batch_size=INFER_BATCH, verbose=0)
infer_seconds = time.perf_counter() - tick
test_accuracy = float((out[-len(test):].argmax(1) == labels[test]).mean())

n = len(train)
common.emit({
    "benchmark": "flowers", "framework": "keras",
    "variant": f"Keras 3 / TensorFlow ({'mixed_bfloat16' if args.precision == 'bf16' else 'float32'})",
    "recipe": "the flowers plain CNN in Keras; tf.data + preprocessing-layer augmentation as in Keras' "
              "'Image classification from scratch' example",
    "precision": args.precision, "seed": args.seed, "threads": threads,
    "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
    "import_seconds": clock.seconds["import"], "data_seconds": clock.seconds["data"],
    "image_size": int(images.shape[1]), "batch_size": BATCH, "epochs": len(per_epoch),
    "train_examples": n, "heldout_examples": len(held), "seconds_per_epoch": per_epoch,
    "train_seconds": sum(per_epoch), "train_images_per_second": n * len(per_epoch) / sum(per_epoch),
    "train_images_per_second_steady": (n * (len(per_epoch) - 1) / sum(per_epoch[1:])
                                       if len(per_epoch) > 1 else None),
    "inference_seconds": infer_seconds, "inference_images_per_second": len(held) / infer_seconds,
    "test_accuracy": test_accuracy, "final_train_loss": float(history.history["loss"][-1]),
})
