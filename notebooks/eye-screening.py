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
# # Eye screening on your own fundus photos
#
# This lab trains on photos you bring (the iChallenge-PM photos may not be passed on), so it
# does nothing until `DATA_DIR` below names your folder: either the PALM-Training400 layout
# (file names starting with `P` are pathologic, `H` and `N` normal) or two sub-folders,
# `normal/` and `pathologic/`. Then every cell runs the lab step by step.

# %% tags=["parameters"]
import os

PROFILE = os.environ.get("MLLABS_PROFILE", "default")
SEED = 0
DATA_DIR = os.environ.get("MLLABS_EYE_DATA")  # e.g. "PALM-Training400"

# %%
try:
    import mllabs
except ImportError:  # a hosted Jupyter without mllabs: install it into this kernel
    # %pip install --quiet mllabs
    import mllabs

lab = mllabs.lab("eye-screening", profile=PROFILE, seed=SEED, data_dir=DATA_DIR)
display(lab.about())
if DATA_DIR is None:
    print("Set DATA_DIR (or the MLLABS_EYE_DATA environment variable) to your photo folder and "
          "run the notebook again; the cells below skip until then.")

# %% [markdown]
# ## 1. Load the photos

# %%
if DATA_DIR:
    photos = lab.data().photos
    print(photos.images.shape, photos.classes, {k: len(v) for k, v in photos.split.items()})
    display(mllabs.api.image_grid(photos.images[:16], [photos.classes[i] for i in photos.labels[:16]]))

# %% [markdown]
# ## 2. The networks
# LeNet-5 and a ResNet, compared on the same split; the settings:

# %%
display(lab.options().loc[["models", "image_size", "epochs", "batch_size", "optimizer", "lr"]])
lab.summary()

# %% [markdown]
# ## 3. Train and evaluate
# Sensitivity, specificity and the ROC curve of each network are in the result's figures.

# %%
if DATA_DIR:
    result = lab.train()
    display(result)

# %% [markdown]
# ## 4. Predict on a photo of your own

# %%
if DATA_DIR:
    display(result.predict(photos.paths[photos.split["test"][0]]))

# %% [markdown]
# ## Your turn
# The lab compares networks, so it takes none of yours (`lab.replaces`); train only one, at
# another image size or with another optimizer.

# %%
print(lab.replaces)
if DATA_DIR:
    yours = lab.train(models=("resnet18",), optimizer="momentum", lr=0.01)
    print(yours.metrics)
