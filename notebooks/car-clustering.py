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
# # Segmenting cars by clustering
#
# The lab step by step: 205 cars, their standardised specifications, K-Means, K-Medoids and
# four linkages with k chosen by silhouette, the segments, then the segment of cars of your own.
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

lab = mllabs.lab("car-clustering", profile=PROFILE, seed=SEED)
lab.about()


# %% [markdown]
# ## 1. Load the data

# %%
data = lab.data()
data.table.head()

# %% [markdown]
# ## 2. Prepare
# The specifications clustered on, standardised (mean 0, standard deviation 1):

# %%
import pandas as pd

pd.DataFrame(data.x, columns=data.features).describe().round(2)

# %% [markdown]
# ## 3. Cluster
# No network here: the run tries every k and every method and keeps k by silhouette.

# %%
result = lab.train()
result

# %% [markdown]
# ## 4. Evaluate

# %%
result.metrics

# %% [markdown]
# ## 5. Predict the segment of your own cars
# A CSV with the same columns as the data set.

# %%
data.table.head(5).to_csv("my_cars.csv", index=False)
result.predict("my_cars.csv")

# %% [markdown]
# ## Your turn
# There is no network to change here (`lab.replaces`); fix k yourself, or cluster on price too.

# %%
print(lab.replaces)
yours = lab.train(k=4, price_feature=True)
print(yours.metrics)
