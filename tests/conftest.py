"""Fixtures: real image files written by the tests, and the shared ImageNet weights."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
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


PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", "stages", "imgclf"]


def run(repo, *command):
    """A command in a pipeline repo; its output, or a failure showing the end of it."""
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def stages_run(output):
    return set(re.findall(r"Running stage '(\w+)'", output))


def stages_skipped(output):
    return set(re.findall(r"Stage '(\w+)' didn't change, skipping", output))


def make_pipeline_repo(tmp_path, update_params):
    """A git + DVC repository holding a copy of the project, params changed by update_params.
    Its stages find Keras' cache through $KERAS_HOME, as a user's would."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, repo / name)
    with open(repo / "params.yaml") as f:
        values = yaml.safe_load(f)
    update_params(values)
    with open(repo / "params.yaml", "w") as f:
        yaml.safe_dump(values, f, sort_keys=False)
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                    ["git", "config", "user.name", "test"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"]):
        run(repo, *command)
    return repo


def tiny_pipeline_repo(tmp_path):
    """A pipeline repo on 30 generated 32-pixel images with random weights: seconds a stage."""
    def params(values):
        values.update(weights="none", image_size=32)
        values["data"]["dir"] = "images"
        values["preprocess"]["size"] = 32
        values["transfer"].update(epochs=1, patience=0)
        values["finetune"].update(epochs=1, patience=0, unfreeze=5)
        values["export"]["formats"] = []  # the formats: tests/test_export.py, test_pipeline.py

    repo = make_pipeline_repo(tmp_path, params)
    write_images(str(repo / "images"), ["a", "b", "c"], per_class=10)
    return repo
