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
# # Bike-sharing demand
#
# The lab step by step: rentals per hour and per day split by date, the handout's linear model
# against least squares, an MLP and boosted trees, then predictions for days of your own.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (about 20 seconds on a laptop CPU).

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

lab = mllabs.lab("bike-sharing", profile=PROFILE, seed=SEED)
lab.about()


# %% [markdown]
# ## 1. Load the data
# Two tables of the Capital Bikeshare system: one row per hour and one per day.

# %%
data = lab.data()
for name, table in data.items():
    print(name, table.raw.shape, "training rows:", int(table.train.sum()))
data["hour"].raw.head()

# %% [markdown]
# ## 2. Prepare
# Split by date (the last part of the calendar is the test set); numeric columns standardised
# and categorical ones one-hot encoded with the training rows only.

# %%
data["hour"].categorical, lab.options().loc[["test_fraction", "epochs", "optimizer", "lr", "mlp_hidden"]]

# %% [markdown]
# ## 3. The networks
# A linear model and an MLP per table:

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run bike-sharing --profile PROFILE --seed SEED`: its run
# directory, report and models land in `runs/`. The result shows the headline numbers and the
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
# ## 6. Predict for your own hours
# Rows shaped like hour.csv (or day.csv); other columns are ignored.

# %%
data["hour"].raw.tail(5).to_csv("my_hours.csv", index=False)
result.predict("my_hours.csv")

# %% [markdown]
# ## Your turn
# This lab trains networks on two tables of different widths, so it takes no network of yours
# (`lab.replaces`); change the MLP's layers and the linear model's optimizer instead.

# %%
print(lab.replaces)
yours = lab.train(mlp_hidden=(64, 32), optimizer="adam", lr=0.01)
print(yours.metrics)
