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
# # MNIST with a shallow CNN
#
# The lab step by step: the digits and their balance, the network layer by layer, training
# with a decaying learning rate and a stop rule, the results, a digit of your own, then your own
# network.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (about a minute on a laptop CPU).

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

lab = mllabs.lab("mnist-cnn", profile=PROFILE, seed=SEED)
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
# Is the training set balanced? Then each digit is scaled to [0, 1] and standardised with the
# training set's mean and standard deviation.

# %%
import numpy as np
from mllabs.data import mnist

print("digits per class:", np.bincount(data.train_y))
x = mnist.normalise(data.train_x[:1000])
print(tuple(x.shape), f"mean {x.mean():.3f}, std {x.std():.3f}")
lab.options().loc[["epochs", "optimizer", "lr", "schedule", "gamma", "stop_on_drop", "train_size"]]

# %% [markdown]
# ## 3. The network
# Per layer: the output shape, the parameters, and the multiplications, additions and
# comparisons for one digit. Almost every parameter sits in the dense layer.

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run mnist-cnn --profile PROFILE --seed SEED`: its run
# directory, report and checkpoint land in `runs/`. The result shows the headline numbers and the
# report's figures.

# %%
result = lab.train()
result

# %% [markdown]
# ## 5. Evaluate

# %%
print(result.metrics)
result.history

# %% [markdown]
# ## 6. Predict on your own digit
# Any photo or drawing (PNG, JPEG, BMP), dark ink on light paper or the reverse. Here one test
# digit saved as a drawing; put your own file's name in its place.

# %%
from PIL import Image

Image.fromarray(255 - data.test_x[0]).save("my_digit.png")
print("true label:", data.test_y[0])
result.predict("my_digit.png")

# %% [markdown]
# ## Your turn
# Your own network in place of the shallow CNN (it gets 1×28×28 digits and returns 10 scores):
# here two convolutions, trained with Adam. Change the layers, the optimizer or the rate.

# %%
from torch import nn

mine = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
display(lab.summary(mine))
yours = lab.train(model=mine, optimizer="adam", lr=0.002)
print(f"yours: {yours.metrics['test_accuracy']:.4f}  shallow CNN: {result.metrics['test_accuracy']:.4f}")
