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
# # Boston housing with a network written in NumPy
#
# The lab step by step: house prices from 13 features, a network with hand-derived gradients
# in NumPy against the same in PyTorch and least squares, then a house of your own.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (a few seconds on a laptop CPU).

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

lab = mllabs.lab("boston-housing", profile=PROFILE, seed=SEED)
lab.about()


# %% [markdown]
# ## 1. Load the data

# %%
data = lab.data()
data.raw.head()

# %% [markdown]
# ## 2. Prepare
# 80 % of the houses to train on, the rest to test; features scaled with the training houses'
# statistics.

# %%
import pandas as pd
from mllabs.labs import boston_housing

print(f"train {len(data.train_idx)}, test {len(data.test_idx)}")
pd.DataFrame(data.x(data.train_idx), columns=boston_housing.FEATURES).describe().round(2)

# %% [markdown]
# ## 3. The networks

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run boston-housing --profile PROFILE --seed SEED`: its run
# directory, report and weights land in `runs/`. The result shows the headline numbers and the
# report's figures.

# %%
result = lab.train()
result

# %% [markdown]
# ## 5. Evaluate

# %%
print(result.metrics)
result.history.tail()

# %% [markdown]
# ## 6. Predict for your own house
# One row of the 13 features, typed in.

# %%
house = data.raw[boston_housing.FEATURES].iloc[0].tolist()
result.predict(values=house)

# %% [markdown]
# ## Your turn
# The networks here are NumPy code, not torch modules, so this lab takes no network of yours
# (`lab.replaces`); change the budget or the split instead.

# %%
print(lab.replaces)
yours = lab.train(epochs=60, split="shuffled")
print(yours.metrics)
