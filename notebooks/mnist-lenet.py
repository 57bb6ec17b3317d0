# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # MNIST with LeNet-5
#
# The lab step by step: the digits, how they are prepared, the network layer by layer, training,
# the results, predicting on a digit of your own, and then your own network.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (about half a minute on a laptop CPU).

# %% tags=["parameters"]
import os

PROFILE = os.environ.get("MLLABS_PROFILE", "default")
SEED = 0

# %%
try:
    import mllabs
except ImportError:  # a hosted Jupyter without mllabs: install it into this kernel
    # %pip install --quiet mllabs
    import mllabs

lab = mllabs.lab("mnist-lenet", profile=PROFILE, seed=SEED)
lab.about()

# %% [markdown]
# ## 1. Load the data
# 60,000 training and 10,000 test digits, 28×28 pixels of 0–255, read from the IDX files after
# their sha256 is checked.

# %%
data = lab.data()
print(data.train_x.shape, data.train_x.dtype, data.test_x.shape)
mllabs.api.image_grid(data.train_x[:16], data.train_y[:16])

# %% [markdown]
# ## 2. Prepare
# Each digit is scaled to [0, 1], standardised with the training set's mean and standard
# deviation, and padded by 2 pixels to the 32×32 that LeNet-5 was designed for. The settings
# of this profile:

# %%
from mllabs.data import mnist

x = mnist.normalise(data.train_x[:1000], pad_to=32)
print(tuple(x.shape), f"mean {x.mean():.3f}, std {x.std():.3f}")
lab.options().loc[["epochs", "batch_size", "optimizer", "lr", "schedule", "train_size", "val_size"]]

# %% [markdown]
# ## 3. The network
# Per layer: the output shape, the parameters, and the multiplications, additions and
# comparisons for one digit.

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run mnist-lenet --profile PROFILE --seed SEED`: its run
# directory, report and checkpoint land in `runs/`.

# %%
result = lab.train()
result

# %% [markdown]
# ## 5. Evaluate
# The test set was only measured, never used to choose; the epoch kept is the best on the
# held-out validation digits.

# %%
print({k: v for k, v in result.metrics.items() if k.startswith("test")})
result.history[["epoch", "train_loss", "val_loss", "val_accuracy", "test_accuracy"]]

# %%
result.figure("confusion_matrix")

# %% [markdown]
# ## 6. Predict on your own digit
# Any photo or drawing (PNG, JPEG, BMP), dark ink on light paper or the reverse. Here one test
# digit saved as a drawing; replace the file name with yours.

# %%
from PIL import Image

Image.fromarray(255 - data.test_x[0]).save("my_digit.png")
print("true label:", data.test_y[0])
result.predict("my_digit.png")

# %% [markdown]
# ## Your turn
# A network of your own in place of LeNet-5 (it gets 1×32×32 digits and returns 10 scores), with
# another optimizer. Try more filters, another activation, dropout, or `optimizer="sgd"`.

# %%
from torch import nn

mine = nn.Sequential(
    nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 5 * 5, 10))
display(lab.summary(mine))
yours = lab.train(model=mine, optimizer="momentum", lr=0.05)
print(f"yours: {yours.metrics['test_accuracy']:.4f}  LeNet-5: {result.metrics['test_accuracy']:.4f}")
yours.predict("my_digit.png")
