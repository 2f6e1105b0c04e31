"""End to end: real `dvc repro` and `dvc exp run` in a temporary git repository, on a slice
of the digits sample, with the real ImageNet weights from ../shared."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from PIL import Image
from sklearn.datasets import load_digits

from tests.conftest import ROOT

PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", "stages", "imgclf"]


def write_digit_slice(folder, per_class, size):
    digits = load_digits()
    for label in range(10):
        os.makedirs(os.path.join(folder, str(label)), exist_ok=True)
        for index in np.flatnonzero(digits.target == label)[:per_class]:
            gray = (255 - digits.images[index] * (255 / 16)).astype(np.uint8)
            Image.fromarray(gray).resize((size, size), Image.BICUBIC).save(
                os.path.join(folder, str(label), f"{index}.png"))


def run(repo, env, *command):
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def stages_run(output):
    return set(re.findall(r"Running stage '(\w+)'", output))


def stages_skipped(output):
    return set(re.findall(r"Stage '(\w+)' didn't change, skipping", output))


@pytest.fixture
def repo(tmp_path, shared_weights):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        source = os.path.join(ROOT, name)
        copy = shutil.copytree if os.path.isdir(source) else shutil.copy
        copy(source, repo / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                     if os.path.isdir(source) else {}))
    write_digit_slice(str(repo / "digits"), per_class=40, size=64)
    with open(repo / "params.yaml") as f:
        params = yaml.safe_load(f)
    params["data"]["dir"] = "digits"
    params["image_size"] = params["preprocess"]["size"] = 96
    params["transfer"]["epochs"] = 15
    params["finetune"].update(epochs=2, unfreeze=20)
    with open(repo / "params.yaml", "w") as f:
        yaml.safe_dump(params, f, sort_keys=False)
    env = {**os.environ, "KERAS_HOME": shared_weights, "PYTHONPATH": str(repo)}
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                    ["git", "config", "user.name", "test"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"]):
        run(repo, env, *command)
    return repo, env


def test_repro_then_experiments_rerun_only_what_changed(repo):
    repo, env = repo
    output = run(repo, env, "dvc", "repro")
    assert stages_run(output) == {"sample", "split", "preprocess", "features", "transfer",
                                  "finetune", "evaluate", "plot"}
    metrics = json.loads((repo / "metrics" / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "precision", "recall", "f1", "loss", "n_test"}
    assert metrics["n_test"] == 40  # 10% of 40 per class: the test split only
    # Random weights give about 0.1 here: this fails if the ImageNet weights or the
    # backbone's preprocessing are lost.
    assert metrics["accuracy"] >= 0.6, metrics
    for plot in ("training.png", "confusion.png"):
        assert (repo / "plots" / plot).stat().st_size > 5_000
    run(repo, env, "git", "add", "-A")
    run(repo, env, "git", "commit", "-qm", "baseline")

    output = run(repo, env, "dvc", "exp", "run", "-S", "finetune.unfreeze=10")
    assert stages_run(output) == {"finetune", "evaluate", "plot"}
    assert stages_skipped(output) == {"sample", "split", "preprocess", "features", "transfer"}
    diff = run(repo, env, "dvc", "metrics", "diff", "--all")
    assert re.search(r"metrics/finetune\.json\s+unfrozen_layers\s+20\s+10", diff), diff

    output = run(repo, env, "dvc", "exp", "run", "-S", "model=mobilenet")
    assert stages_skipped(output) == {"sample", "split", "preprocess"}
    assert stages_run(output) == {"features", "transfer", "finetune", "evaluate", "plot"}
    assert json.loads((repo / "metrics" / "metrics.json").read_text())["accuracy"] >= 0.6
