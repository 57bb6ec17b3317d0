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
# # Flowers: a plain CNN and a network pretrained on ImageNet
#
# The lab step by step: five flower species from photos, the networks, training the CNN from
# scratch beside EfficientNet-Lite0 with ImageNet's weights (frozen, and with its top block
# fine-tuned), where each looks (Grad-CAM), then a photo of your own.
# `PROFILE` below picks the budget: `quick` runs in seconds, `default` gives the lab's real
# result (on 2 CPU cores without native bfloat16 about 16 minutes, "your turn" included,
# which trains the CNN again), and `scratch` trains the CNN against ResNet-18 from scratch at
# 96 px instead (about 40 minutes with AVX-512, 50-55 with AVX2 only).

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

lab = mllabs.lab("flowers", profile=PROFILE, seed=SEED)
lab.about()


# %% [markdown]
# ## 1. Load the data
# The photos are decoded once, resized, and cached; a split keeps each species' share in
# training, validation and test.

# %%
data = lab.data()
photos = data.photos
print(photos.images.shape, {k: len(v) for k, v in photos.split.items()})
mllabs.api.image_grid(photos.images[:16], [photos.classes[i] for i in photos.labels[:16]])

# %% [markdown]
# ## 2. Prepare
# During training each batch is cropped, flipped and colour-jittered at random; the settings:

# %%
lab.options().loc[["models", "image_size", "epochs", "batch_size", "optimizer", "lr", "augment", "limit",
                   "transfer_size", "tune_blocks"]]

# %% [markdown]
# ## 3. The networks

# %%
lab.summary()

# %% [markdown]
# ## 4. Train
# An ordinary run, exactly as `mllabs run flowers --profile PROFILE --seed SEED`: its run
# directory, report and checkpoints land in `runs/`. The result shows the headline numbers and the
# report's figures.

# %%
result = lab.train()
result

# %% [markdown]
# ## 5. Evaluate

# %%
print(result.metrics)
result.history.groupby("network").last() if "network" in result.history else result.history.tail()

# %% [markdown]
# ## 6. Predict on your own photo
# Any JPEG or PNG; here one of the test photos. Top 3 species with probabilities.

# %%
photo = photos.paths[photos.split["test"][0]]
print("true species:", photos.classes[photos.labels[photos.split["test"][0]]])
result.predict(photo)

# %% [markdown]
# ## Your turn
# This lab compares networks, so it takes none of yours (`lab.replaces`); train only the CNN
# with another optimizer, or compare ResNet-18 with and without its skips
# (`models=("resnet18", "plain18"), image_size=96`).

# %%
print(lab.replaces)
yours = lab.train(models=("cnn",), optimizer="momentum", lr=0.02)
print(yours.metrics)
