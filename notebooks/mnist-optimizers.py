# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # One network, every optimizer
#
# The lab step by step: the digits, the small fully connected network, every optimizer at
# every learning rate on the same budget, which wins, a digit of your own, then your own network.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (about 5 minutes on a laptop CPU).

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

lab = mllabs.lab("mnist-optimizers", profile=PROFILE, seed=SEED)
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
# Digits scaled and standardised; the optimizers, rates and seeds this profile compares:

# %%
lab.options().loc[["optimizers", "lrs", "seeds", "epochs", "batch_size", "hidden", "train_size", "val_size"]]

# %% [markdown]
# ## 3. The network

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run mnist-optimizers --profile PROFILE --seed SEED`: its run
# directory, report and the winner's checkpoint land in `runs/`. The result shows the headline numbers and the
# report's figures.

# %%
result = lab.train()
result

# %% [markdown]
# ## 5. Evaluate
# One row per optimizer, rate, seed and epoch:

# %%
print(result.metrics)
result.history.tail(10)

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
# The networks here are trained stacked (dozens of MLPs as one model), so instead of a module of
# your own, change the network's shape and the contest: a deeper, narrower MLP, two optimizers,
# a wider learning-rate grid.

# %%
yours = lab.train(hidden=(32, 32), optimizers=("sgd", "adam"), lrs=(1.0, 0.1, 0.01, 0.001))
print(yours.metrics)
