"""PyTorch peer of the LeNet-5 benchmark, in the style of PyTorch's basic MNIST example
(pytorch/examples, mnist/main.py): a map-style Dataset that turns one digit at a time into a
tensor (PIL image → pad → to-tensor → normalise, as torchvision's MNIST dataset with
transforms.Compose([Pad(2), ToTensor(), Normalize((0.1307,), (0.3081,))]) does), a shuffling
DataLoader, and the example's train()/test() loops. The network and optimiser are the benchmark's
common recipe rather than the example's own (its Net, Adadelta, batch 64): LeNet-5 (ReLU, max
pooling, 32×32 input), Momentum 0.01 / 0.9, batch 32, test batches of 1,000, test accuracy after
every epoch, stop at 99.0 %.

Runs with the project's venv (the same torch build as mllabs; torchvision is not needed: the
transforms are written out below). num_workers=0, the DataLoader default, so the per-sample
work shares the same 2 threads' budget as everyone else.
"""

from __future__ import annotations

import time

import _common as common

args = common.arguments(__doc__)
threads = common.set_threads(args.threads)

clock = common.Clock()
with clock("import"):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image, ImageOps
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)


class MnistDigits(Dataset):
    """One (image, label) per index, transformed on the fly like torchvision's MNIST."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = ImageOps.expand(Image.fromarray(self.images[i], mode="L"), border=2, fill=0)  # Pad(2)
        x = torch.from_numpy(np.array(img, np.uint8)).unsqueeze(0).float().div(255)       # ToTensor
        x = (x - common.MNIST_MEAN) / common.MNIST_STD                                      # Normalize
        return x, int(self.labels[i])


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def train(model, loader, optimizer):
    model.train()
    for data, target in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
    return loss.item()


@torch.no_grad()
def test(model, loader):
    model.eval()
    correct = 0
    for data, target in loader:
        correct += int((model(data).argmax(1) == target).sum())
    return correct / len(loader.dataset)


with clock("data"):
    train_x, train_y, test_x, test_y = common.mnist(args.data, args.smoke)
    torch.manual_seed(args.seed)
    train_loader = DataLoader(MnistDigits(train_x, train_y), batch_size=32, shuffle=True)
    test_loader = DataLoader(MnistDigits(test_x, test_y), batch_size=1000)

model = LeNet5()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
epochs = []
for epoch in range(1, args.max_epochs + 1):
    tick = time.perf_counter()
    loss = train(model, train_loader, optimizer)
    tock = time.perf_counter()
    acc = test(model, test_loader)
    epochs.append({"epoch": epoch, "train_seconds": tock - tick,
                   "eval_seconds": time.perf_counter() - tock, "test_accuracy": acc, "train_loss": loss})
    if acc >= common.TARGET or common.out_of_budget(epochs, args.max_seconds):
        break

common.emit({
    "benchmark": "lenet", "framework": "pytorch", "variant": "PyTorch (Dataset + DataLoader)",
    "recipe": "PyTorch basic MNIST example's Dataset/DataLoader loop; LeNet-5, Momentum 0.01/0.9, batch 32",
    "seed": args.seed, "threads": threads, "versions": {"torch": torch.__version__},
    "import_seconds": clock.seconds["import"], "data_seconds": clock.seconds["data"],
    "train_examples": len(train_y), "test_examples": len(test_y), "batch_size": 32,
    "max_seconds": args.max_seconds, "epochs_detail": epochs, **common.time_to_target(epochs),
})
