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
# # Sigmoid against ReLU
#
# The lab step by step: LeNet-5 trained with each activation from the same start, the
# curves and the size of the gradient per layer, then your own comparison.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (about a minute and a half on a laptop CPU).

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

lab = mllabs.lab("activations", profile=PROFILE, seed=SEED)
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
# Digits scaled, standardised and padded to 32×32; the activations compared:

# %%
lab.options().loc[["activations", "seeds", "epochs", "optimizer", "lr", "train_size", "val_size"]]

# %% [markdown]
# ## 3. The networks
# The same LeNet-5 for each activation; only the activation layers differ.

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run activations --profile PROFILE --seed SEED`: its run
# directory, report and the best network's checkpoint land in `runs/`. The result shows the headline numbers and the
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
# This lab compares activations inside one network, so it takes no network of yours
# (`lab.replaces` says why); compare others instead, or another optimizer.

# %%
print(lab.replaces)
yours = lab.train(activations=("tanh", "relu"), optimizer="momentum", lr=0.05)
print(yours.metrics)
