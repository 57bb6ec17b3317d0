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
# # The highest MNIST accuracy
#
# The homework, step by step: a small CNN with batch norm, augmentation and a one-cycle
# schedule over several seeds, then a digit of your own and your own network.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (about 8 minutes on a laptop CPU).

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

lab = mllabs.lab("mnist-best", profile=PROFILE, seed=SEED)
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
# Digits standardised; during training each batch is turned, shifted and zoomed at random
# (augmentation). The settings of this profile:

# %%
lab.options().loc[["seeds", "epochs", "batch_size", "optimizer", "lr", "schedule", "widths", "augment", "train_size"]]

# %% [markdown]
# ## 3. The network

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run mnist-best --profile PROFILE --seed SEED`: its run
# directory, report and the best seed's checkpoint land in `runs/`. The result shows the headline numbers and the
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
# Your own network in place of DigitNet, for every seed (each copy starts from fresh weights):
# 1×28×28 digits in, 10 scores out. Here one without batch norm; try adding it back.

# %%
from torch import nn

mine = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 10))
yours = lab.train(model=mine)
print(f"yours: {yours.metrics['test_accuracy']:.4f}  DigitNet: {result.metrics['test_accuracy']:.4f}")
