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
# # Overfitting and weight decay
#
# The lab step by step: an MLP that overfits 3,000 digits, trained at several weight
# decays, the gap between training and validation loss, then your own network.
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

lab = mllabs.lab("regularization", profile=PROFILE, seed=SEED)
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
# Only a few thousand training digits, so that the network can learn them by heart; the
# weight decays compared:

# %%
lab.options().loc[["weight_decays", "loss", "hidden", "seeds", "epochs", "train_size", "val_size"]]

# %% [markdown]
# ## 3. The network

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run regularization --profile PROFILE --seed SEED`: its run
# directory, report and the chosen network's checkpoint land in `runs/`. The result shows the headline numbers and the
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
# Your own network in place of the MLP, trained at every weight decay (1×28×28 digits in, 10
# scores out). Here dropout as well; does the best decay move?

# %%
from torch import nn

mine = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
yours = lab.train(model=mine)
print(yours.metrics)
