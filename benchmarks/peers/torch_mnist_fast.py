"""The published one-epoch "99 % MNIST" recipe, as a peer of the LeNet-5 benchmark.

Written here from the description of the last step of tuomaso/train_mnist_fast ("Training a NN
to 99 % accuracy on MNIST in 0.76 seconds", README, step 8), not from its code:

  network   conv 5×5, 24 filters → max-pool 2 → ReLU → conv 3×3, 32 filters → max-pool 2 → ReLU
            → dense 256 → ReLU → dense 10 (28×28 input, no padding, no dropout); pooling before
            the ReLU, as the write-up moved it
  data      all 60,000 training digits held in memory as one normalised tensor ((x/255 − 0.1307)
            / 0.3081), reshuffled every epoch, batch 256; no DataLoader
  optimiser Adam, β = (0.7, 0.9), a one-cycle learning rate peaking at 1e-2 (PyTorch's
            OneCycleLR, stepped after every batch) over the whole run

The one-cycle schedule needs its length in advance, so the run's length is `--epochs` (1, the
write-up's, by default) rather than "until the target": the test digits are read after every
epoch and the result reports the first epoch at 99.0 %, with the same clock as the other LeNet
scripts (training plus each evaluation up to it). Runs with the project's venv.
"""

from __future__ import annotations

import time

import _common as common

args = common.arguments(__doc__, epochs={"type": int, "default": 1,
                                         "help": "length of the one-cycle run, in epochs (default 1)"})
threads = common.set_threads(args.threads)

clock = common.Clock()
with clock("import"):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)

BATCH, PEAK_LR, BETAS = 256, 1e-2, (0.7, 0.9)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 24, 5)
        self.conv2 = nn.Conv2d(24, 32, 3)
        self.fc1 = nn.Linear(32 * 5 * 5, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))   # 28 → 24 → 12
        x = F.relu(F.max_pool2d(self.conv2(x), 2))   # 12 → 10 → 5
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def as_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - common.MNIST_MEAN) / common.MNIST_STD


@torch.no_grad()
def test_accuracy(model, x, y) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum()) for i in range(0, len(y), 1000))
    return correct / len(y)


with clock("data"):
    train_x, train_y, test_x, test_y = common.mnist(args.data, args.smoke)
    x_train, y_train = as_tensor(train_x), torch.from_numpy(train_y)
    x_test, y_test = as_tensor(test_x), torch.from_numpy(test_y)

torch.manual_seed(args.seed)
model = SmallCNN()
optimizer = torch.optim.Adam(model.parameters(), lr=PEAK_LR, betas=BETAS)
steps_per_epoch = -(-len(y_train) // BATCH)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=PEAK_LR, epochs=args.epochs,
                                               steps_per_epoch=steps_per_epoch)
epochs = []
for epoch in range(1, args.epochs + 1):
    tick = time.perf_counter()
    model.train()
    order = torch.randperm(len(y_train))
    for i in range(0, len(order), BATCH):
        idx = order[i:i + BATCH]
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    tock = time.perf_counter()
    acc = test_accuracy(model, x_test, y_test)
    epochs.append({"epoch": epoch, "train_seconds": tock - tick,
                   "eval_seconds": time.perf_counter() - tock, "test_accuracy": acc, "train_loss": loss.item()})

common.emit({
    "benchmark": "lenet", "framework": "pytorch", "variant": f"train_mnist_fast recipe ({args.epochs} epoch{'s' * (args.epochs > 1)})",
    "recipe": (f"published one-epoch recipe (tuomaso/train_mnist_fast, step 8), one-cycle over {args.epochs} "
               "epoch(s): small CNN 24/32 filters, dense 256, Adam β (0.7, 0.9) peak 1e-2, batch 256, "
               "60,000 digits in memory"),
    "seed": args.seed, "threads": threads, "versions": {"torch": torch.__version__},
    "import_seconds": clock.seconds["import"], "data_seconds": clock.seconds["data"],
    "train_examples": len(y_train), "test_examples": len(y_test), "batch_size": BATCH,
    "max_seconds": args.max_seconds, "epochs_detail": epochs, **common.time_to_target(epochs),
})
