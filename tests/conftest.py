"""Fixtures: real image files written by the tests, and the shared ImageNet weights."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SHARED_WEIGHTS = os.path.join(SHARED, "keras", "models")
MOBILENET_V2_035 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def write_images(folder, classes, per_class, size=40, seed=0):
    """Real PNG files, one class per folder; each class has its own colour and stripe so a
    classifier can tell them apart."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            pixels[:, :, label % 3] += 150
            pixels[label * 4 % size:label * 4 % size + 6, :, :] = 255
            Image.fromarray(pixels).save(os.path.join(folder, name, f"img_{i:03d}.png"))
    return folder


@pytest.fixture
def image_folder(tmp_path):
    return write_images(str(tmp_path / "images"), ["cat", "dog", "fox"], per_class=10)


@pytest.fixture
def shared_weights(tmp_path):
    """A temporary Keras cache holding a copy of the shared ImageNet weights."""
    if not os.path.isdir(SHARED_WEIGHTS):
        pytest.skip(f"{SHARED_WEIGHTS} is absent: no real ImageNet weights on this machine")
    home = tmp_path / "keras_home"
    shutil.copytree(SHARED_WEIGHTS, home / "models")
    return str(home)
