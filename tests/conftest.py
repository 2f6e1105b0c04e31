"""Fixtures: real image files written by the tests, models whose outputs vary
(tests/informative.py), and the pipeline run once per pytest session on a tiny dataset it
must learn: as plain stage processes for the default suite, with real DVC for `-m slow`."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.informative import (ROOT, SHARED_WEIGHTS, imagenet_file, separable_images,
                               trained_classifier)

PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", "stages", "imgclf"]
TINY_CLASSES = ["cat", "dog", "fox"]
TINY_PER_CLASS = 40  # a 50/25/25 split: 30 test images, 10 per class
TINY_UNFREEZE = 5
MOBILENET_075 = "mobilenet_7_5_224_tf_no_top.h5"  # the default backbone's ImageNet weights


def write_images(folder, classes, per_class, size=40, seed=0):
    """Real PNG files of separable_images, one folder per class."""
    images, labels = separable_images(len(classes), per_class, size, seed)
    for index, (pixels, label) in enumerate(zip(images, labels)):
        os.makedirs(os.path.join(folder, classes[label]), exist_ok=True)
        Image.fromarray(pixels).save(
            os.path.join(folder, classes[label], f"img_{index % per_class:03d}.png"))
    return folder


MULTI_LABELS = ["red", "green", "blue"]


def write_multi_label_images(folder, count, size=64, seed=0):
    """Real PNG files in folder/photos/ and folder/labels.csv (file, label with labels
    joined by commas): each label is a bright square of its colour at its own place, on grey
    noise; an image has each label with probability 0.45, so some have none, some all three."""
    rng = np.random.default_rng(seed)
    margin, side = size // 16, size * 3 // 8
    corners = [(margin, margin), (margin, size // 2 + margin), (size // 2 + margin, size // 4)]
    os.makedirs(os.path.join(folder, "photos"), exist_ok=True)
    lines = ["file,label"]
    for index in range(count):
        has = rng.random(len(MULTI_LABELS)) < 0.45
        pixels = rng.integers(60, 120, (size, size, 3)).astype(np.uint8)
        for channel, ((top, left), on) in enumerate(zip(corners, has)):
            if on:
                pixels[top:top + side, left:left + side] = 0
                pixels[top:top + side, left:left + side, channel] = 255
        name = f"photos/{index:04d}.png"
        Image.fromarray(pixels).save(os.path.join(folder, name))
        lines.append(f'{name},"{",".join(n for n, on in zip(MULTI_LABELS, has) if on)}"')
    with open(os.path.join(folder, "labels.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def image_folder(tmp_path):
    return write_images(str(tmp_path / "images"), ["cat", "dog", "fox"], per_class=10)


@pytest.fixture(scope="session")
def classifier():
    """A trained classifier with varied outputs (tests/informative.py); do not train it."""
    return trained_classifier()


@pytest.fixture(scope="session")
def keras_home(tmp_path_factory):
    """The Keras home of pipeline processes (Keras reads KERAS_HOME at import, so in-process
    tests pass a file path): a temporary one holding a copy of the shared ImageNet weights,
    or, without ../shared, Keras' own once it holds (or downloads) the default backbone's."""
    if not os.path.isdir(SHARED_WEIGHTS):
        path = imagenet_file(MOBILENET_075, "mobilenet")
        return os.path.dirname(os.path.dirname(path))
    home = tmp_path_factory.mktemp("keras_home")
    shutil.copytree(SHARED_WEIGHTS, home / "models")
    return str(home)


def run(repo, *command, env=None):
    """A command in a pipeline repo; its output, or a failure showing the end of it."""
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=900,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def stages_run(output):
    return set(re.findall(r"Running stage '(\w+)'", output))


def stages_skipped(output):
    return set(re.findall(r"Stage '(\w+)' didn't change, skipping", output))


def copy_project(repo, update_params):
    """A copy of the project's pipeline in repo, params changed by update_params."""
    repo.mkdir()
    for name in PROJECT_FILES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, repo / name)
    with open(repo / "params.yaml", encoding="utf-8") as f:
        values = yaml.safe_load(f)
    update_params(values)
    with open(repo / "params.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(values, f, sort_keys=False)
    return repo


def make_pipeline_repo(tmp_path, update_params):
    """A git + DVC repository holding a copy of the project, params changed by update_params.
    Its stages find Keras' cache through $KERAS_HOME, as a user's would."""
    repo = copy_project(tmp_path / "repo", update_params)
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                    ["git", "config", "user.name", "test"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "project"]):  # dvclive needs a commit (open_live)
        run(repo, *command)
    return repo


def tiny_params(values):
    """The default backbone (MobileNet-0.75, ImageNet weights) at 64 px on 120 generated
    images of three separable classes, few epochs: under two minutes for the whole run."""
    values["data"]["dir"] = "images"
    values["image_size"] = values["preprocess"]["resolution"] = 64
    values["split"].update(train=0.5, val=0.25, test=0.25)
    values["transfer"].update(epochs=10)
    values["finetune"].update(epochs=2, unfreeze=TINY_UNFREEZE)
    values["export"]["formats"] = ["saved_model", "tflite_float32"]


def tiny_project(folder):
    repo = copy_project(folder, tiny_params)
    write_images(str(repo / "images"), TINY_CLASSES, per_class=TINY_PER_CLASS, size=64)
    return repo


def stage_commands(repo):
    with open(repo / "dvc.yaml", encoding="utf-8") as f:
        return {name: stage["cmd"] for name, stage in yaml.safe_load(f)["stages"].items()}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, keras_home):
    """The tiny project after every stage of dvc.yaml ran, in its order, as DVC runs them
    (one process each), without DVC. The test split is moved away from the end of
    preprocess to the start of evaluate: a training stage that reads it fails the run."""
    repo = tiny_project(tmp_path_factory.mktemp("tiny_run") / "project")
    test_split = repo / "data" / "prepared" / "test"
    hidden = repo / "hidden_test_split"
    for name, command in stage_commands(repo).items():
        if name == "features":
            test_split.rename(hidden)
        if name == "evaluate":
            hidden.rename(test_split)
        run(repo, "bash", "-c", command, env={"KERAS_HOME": keras_home})
    return repo


@pytest.fixture(scope="session")
def tiny_dvc_repo(tmp_path_factory, keras_home):
    """The tiny project as a git + DVC repo after `dvc repro` and a commit; copy it
    (dvc_repo) before changing anything."""
    repo = make_pipeline_repo(tmp_path_factory.mktemp("tiny_dvc"), tiny_params)
    write_images(str(repo / "images"), TINY_CLASSES, per_class=TINY_PER_CLASS, size=64)
    run(repo, "dvc", "repro", env={"KERAS_HOME": keras_home})
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "tiny pipeline")
    return repo


@pytest.fixture
def dvc_repo(tiny_dvc_repo, tmp_path, keras_home, monkeypatch):
    """A copy of the reproduced tiny DVC repo, for one test to change."""
    monkeypatch.setenv("KERAS_HOME", keras_home)
    repo = tmp_path / "repo"
    shutil.copytree(tiny_dvc_repo, repo, symlinks=True)
    return repo
