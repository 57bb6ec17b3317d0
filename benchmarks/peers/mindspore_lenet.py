"""MindSpore 2.x peer of the LeNet-5 benchmark, following MindSpore's LeNet-5 quick start (the
"handwritten digit recognition" beginner tutorial the course handout is built on):

  data      mindspore.dataset.MnistDataset over the raw IDX files; per sample: Resize to 32×32
            (bilinear), Rescale 1/255, Rescale with the MNIST mean/std (1/0.3081, −0.1307/0.3081),
            HWC→CHW, labels cast to int32; shuffle with a 10,000-sample buffer; batch 32 with
            drop_remainder=True.
  network   LeNet5: Conv2d(1, 6, 5, 'valid') → ReLU → MaxPool 2 → Conv2d(6, 16, 5, 'valid') →
            ReLU → MaxPool 2 → Flatten → Dense 120 → Dense 84 → Dense 10, the dense layers
            initialised Normal(0.02) as in the tutorial, everything else MindSpore's defaults.
  training  SoftmaxCrossEntropyWithLogits(sparse=True, reduction='mean'), Momentum(lr 0.01,
            momentum 0.9), written in the 2.x style: value_and_grad over a forward function and
            a @mindspore.jit train step.

Test accuracy is measured after every epoch (test batches of 1,000) and training stops at 99.0 %.
CPU threads: mindspore.device_context.cpu.op_tuning.threads_num(n); the data pipeline keeps the
tutorial's one worker per map.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import time
from pathlib import Path

import _common as common

args = common.arguments(__doc__)
threads = common.set_threads(args.threads)

clock = common.Clock()
with clock("import"):
    import mindspore as ms
    import mindspore.dataset as ds
    import numpy as np
    from mindspore import nn
    from mindspore.common.initializer import Normal
    from mindspore.dataset import transforms, vision
ms.set_device("CPU")
ms.device_context.cpu.op_tuning.threads_num(threads)
ms.set_seed(args.seed)
ds.config.set_seed(args.seed)


def raw_mnist(source: Path, smoke: bool) -> Path:
    """MnistDataset reads the uncompressed IDX files under their original names; the smoke run
    writes only the first 3,000 training and 1,000 test digits."""
    folder = Path(tempfile.mkdtemp(prefix="mnist-ms-"))
    for split, keep in (("train", 3000), ("t10k", 1000)):
        for kind, header in (("images-idx3", 16), ("labels-idx1", 8)):
            with gzip.open(source / "mnist" / f"{split}-{kind}-ubyte.gz", "rb") as f:
                raw = f.read()
            if smoke:  # rewrite the count in the header and cut the body
                item = 28 * 28 if kind.startswith("images") else 1
                raw = raw[:4] + keep.to_bytes(4, "big") + raw[8:header] + raw[header:header + keep * item]
            (folder / f"{split}-{kind}-ubyte").write_bytes(raw)
    return folder


def create_dataset(folder: Path, usage: str, batch_size: int, shuffle: bool):
    data = ds.MnistDataset(str(folder), usage=usage, shuffle=False)
    image_ops = [vision.Resize((32, 32), interpolation=vision.Inter.LINEAR),
                 vision.Rescale(1.0 / 255.0, 0.0),
                 vision.Rescale(1 / common.MNIST_STD, -common.MNIST_MEAN / common.MNIST_STD),
                 vision.HWC2CHW()]
    data = data.map(operations=transforms.TypeCast(ms.int32), input_columns="label")
    data = data.map(operations=image_ops, input_columns="image")
    if shuffle:
        data = data.shuffle(buffer_size=10000)
    return data.batch(batch_size, drop_remainder=shuffle)


class LeNet5(nn.Cell):
    def __init__(self, num_class: int = 10, num_channel: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
        self.fc2 = nn.Dense(120, 84, weight_init=Normal(0.02))
        self.fc3 = nn.Dense(84, num_class, weight_init=Normal(0.02))
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def construct(self, x):
        x = self.max_pool2d(self.relu(self.conv1(x)))
        x = self.max_pool2d(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


with clock("data"):
    folder = raw_mnist(args.data, args.smoke)
    train_ds = create_dataset(folder, "train", 32, shuffle=True)
    test_ds = create_dataset(folder, "test", 1000, shuffle=False)

net = LeNet5()
loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
optimizer = nn.Momentum(net.trainable_params(), learning_rate=0.01, momentum=0.9)


def forward_fn(data, label):
    return loss_fn(net(data), label)


grad_fn = ms.value_and_grad(forward_fn, None, optimizer.parameters)


@ms.jit
def train_step(data, label):
    loss, grads = grad_fn(data, label)
    optimizer(grads)
    return loss


def train_epoch() -> float:
    net.set_train(True)
    loss = None
    for data, label in train_ds.create_tuple_iterator():
        loss = train_step(data, label)
    return float(loss.asnumpy())


def test() -> float:
    net.set_train(False)
    correct = total = 0
    for data, label in test_ds.create_tuple_iterator():
        pred = net(data).asnumpy().argmax(1)
        correct += int((pred == label.asnumpy()).sum())
        total += len(pred)
    global tested
    tested = total
    return correct / total


tested = 0
epochs = []
try:
    for epoch in range(1, args.max_epochs + 1):
        tick = time.perf_counter()
        loss = train_epoch()
        tock = time.perf_counter()
        acc = test()
        epochs.append({"epoch": epoch, "train_seconds": tock - tick,
                       "eval_seconds": time.perf_counter() - tock, "test_accuracy": acc, "train_loss": loss})
        if acc >= common.TARGET or common.out_of_budget(epochs, args.max_seconds):
            break
finally:
    shutil.rmtree(folder, ignore_errors=True)



def kernel_speed() -> dict:
    """A diagnostic beside the result: MindSpore's own CPU speed, in multiply-adds per second, for
    LeNet's first convolution (batch 32) and for a 784×784 dense layer (batch 256), jitted."""
    conv, dense = nn.Conv2d(1, 6, 5, pad_mode="valid"), nn.Dense(784, 784)

    @ms.jit
    def run_conv(x):
        return conv(x)

    @ms.jit
    def run_dense(x):
        return dense(x)

    cases = {"conv_macs_per_second": (run_conv, (32, 1, 32, 32), 32 * 6 * 28 * 28 * 25),
             "dense_macs_per_second": (run_dense, (256, 784), 256 * 784 * 784)}
    speed = {}
    for name, (fn, shape, macs) in cases.items():
        x = ms.Tensor(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
        fn(x).asnumpy()
        tick = time.perf_counter()
        for _ in range(10):
            fn(x).asnumpy()
        speed[name] = macs * 10 / (time.perf_counter() - tick)
    return speed


common.emit({
    "benchmark": "lenet", "framework": "mindspore", "variant": "MindSpore 2.x",
    "recipe": "MindSpore LeNet-5 quick start: Momentum 0.01/0.9, batch 32 (drop remainder), resize to 32×32",
    "seed": args.seed, "threads": threads, "versions": {"mindspore": ms.__version__},
    "import_seconds": clock.seconds["import"], "data_seconds": clock.seconds["data"],
    "train_examples": train_ds.get_dataset_size() * 32, "test_examples": tested, "batch_size": 32,
    "max_seconds": args.max_seconds, "epochs_detail": epochs, "diagnostic": kernel_speed(), **common.time_to_target(epochs),
})
