"""Library behind the pipeline stages: params, backbones, images, models, training."""
import os

# TensorFlow takes nearly all of a GPU's memory when it first uses it, so a second queued
# experiment (dvc queue start -j 2) on the same GPU would fail out of memory. It reads this
# variable when it creates its GPU devices, after this package is imported; a user's own
# setting (e.g. false) wins.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
