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
# # Fuel efficiency (MPG) with a fully connected network
#
# The lab step by step: the cars, their preparation, the network, training over several seeds
# against least squares, predicting the MPG of cars of your own, then your own network.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (about 15 seconds on a laptop CPU).

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

lab = mllabs.lab("auto-mpg", profile=PROFILE, seed=SEED)
lab.about()


# %% [markdown]
# ## 1. Load the data
# 398 cars from the UCI Auto MPG file; six have no horsepower and are dropped.

# %%
data = lab.data()
print(f"{len(data.raw)} cars, {data.dropped} dropped for a missing horsepower")
data.raw.head()

# %% [markdown]
# ## 2. Prepare
# Origin becomes three 0/1 columns, every feature is standardised with the training cars'
# mean and standard deviation, and the cars are split into training, validation and test.

# %%
import pandas as pd
from mllabs.labs import auto_mpg

print(f"train {len(data.train_idx)}, validation {len(data.val_idx)}, test {len(data.test_idx)}")
pd.DataFrame(data.x(data.train_idx), columns=auto_mpg.FEATURES).describe().round(2)

# %% [markdown]
# ## 3. The network

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run auto-mpg --profile PROFILE --seed SEED`: its run
# directory, report and checkpoints land in `runs/`. The result shows the headline numbers and the
# report's figures.

# %%
result = lab.train()
result

# %% [markdown]
# ## 5. Evaluate
# Test MAE in MPG, over the seeds, against least squares on the same cars:

# %%
print({k: v for k, v in result.metrics.items() if "mae" in k})
result.history.groupby("seed").last()

# %% [markdown]
# ## 6. Predict for your own cars
# A CSV with the raw columns (cylinders, displacement, horsepower, weight, acceleration,
# model_year, origin), or rows typed in Python.

# %%
data.raw.head(3).to_csv("my_cars.csv", index=False)
display(result.predict("my_cars.csv"))
result.predict([{"cylinders": 4, "displacement": 120, "horsepower": 90, "weight": 2400,
                 "acceleration": 15, "model_year": 80, "origin": "Japan"}])

# %% [markdown]
# ## Your turn
# Your own network in place of the lab's (9 standardised features in, 1 number out), for
# every seed; here a wider one trained with RMSprop.

# %%
from torch import nn

mine = nn.Sequential(nn.Linear(9, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
yours = lab.train(model=mine, optimizer="rmsprop", lr=0.002)
print(f"yours: {yours.metrics['test_mae']:.3f} MPG  lab's: {result.metrics['test_mae']:.3f} MPG")
