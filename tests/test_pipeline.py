"""End to end: real `dvc repro` and `dvc exp run` in a temporary git repository, on a slice
of the digits sample, with the real ImageNet weights from ../shared."""
import csv
import json
import os
import re

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from tests.conftest import make_pipeline_repo, run, stages_run, stages_skipped


def write_digit_slice(folder, per_class, size):
    digits = load_digits()
    for label in range(10):
        os.makedirs(os.path.join(folder, str(label)), exist_ok=True)
        for index in np.flatnonzero(digits.target == label)[:per_class]:
            gray = (255 - digits.images[index] * (255 / 16)).astype(np.uint8)
            Image.fromarray(gray).resize((size, size), Image.BICUBIC).save(
                os.path.join(folder, str(label), f"{index}.png"))


pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path, keras_home, monkeypatch):
    def params(values):
        values["data"]["dir"] = "digits"
        values["image_size"] = values["preprocess"]["resolution"] = 96
        values["transfer"]["epochs"] = 15
        values["finetune"].update(epochs=2, unfreeze=20)
        # float formats only: 40 test images are too few to hold int8 to a 1-point drop
        values["export"]["formats"] = ["saved_model", "tflite_float32"]

    monkeypatch.setenv("KERAS_HOME", keras_home)
    repo = make_pipeline_repo(tmp_path, params)
    write_digit_slice(str(repo / "digits"), per_class=40, size=64)
    return repo


def test_repro_then_experiments_rerun_only_what_changed(repo):
    output = run(repo, "dvc", "repro")
    assert stages_run(output) == {"sample", "weights", "split", "preprocess", "features", "probe",
                                  "transfer", "finetune", "calibrate", "evaluate", "export",
                                  "audit", "plot"}
    metrics = json.loads((repo / "metrics" / "metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "precision", "recall", "f1", "loss", "n_images"}
    assert metrics["n_images"] == 40  # 10% of 40 per class: the test split only
    # Random weights give about 0.1 here: this fails if the ImageNet weights or the
    # backbone's preprocessing are lost.
    assert metrics["accuracy"] >= 0.6, metrics
    for plot in ("training.png", "confusion.png"):
        assert (repo / "plots" / plot).stat().st_size > 5_000
    # The prediction command, from the model file alone, agrees with evaluate image by image.
    test_files = (repo / "data" / "prepared" / "test" / "files.txt").read_text().split()
    run(repo, "python", "-m", "imgclf.predict", *test_files, "-k", "1", "-o", "new.csv")
    with open(repo / "new.csv", newline="", encoding="utf-8") as f:
        predicted = {row["file"]: row["class_1"] for row in csv.DictReader(f)}
    with open(repo / "plots" / "confusion.csv", newline="", encoding="utf-8") as f:
        evaluated = {row["file"]: row["predicted"] for row in csv.DictReader(f)}
    assert predicted == evaluated and len(predicted) == 40
    os.remove(repo / "new.csv")
    # The exported models passed their own checks against the Keras model, on the test split.
    exported = json.loads((repo / "metrics" / "export.json").read_text())
    assert exported["keras"]["accuracy"] == metrics["accuracy"]
    assert exported["keras"]["n"] == exported["keras"]["full_size_n"] == 40
    assert all(exported[name]["agreement"] >= 0.99 and exported[name]["passed"]
               for name in ("saved_model", "tflite_float32")), exported
    labels = (repo / "models" / "export" / "labels.txt").read_text().split()
    assert labels == [str(digit) for digit in range(10)]
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "baseline")

    output = run(repo, "dvc", "exp", "run", "-S", "finetune.unfreeze=10")
    # weights and sample run in every repro; their outputs come out the same
    assert stages_run(output) == {"weights", "sample", "finetune", "calibrate", "evaluate",
                                  "export", "audit", "plot"}
    assert stages_skipped(output) == {"split", "preprocess", "features", "probe", "transfer"}
    diff = run(repo, "dvc", "metrics", "diff", "--all")
    assert re.search(r"metrics/finetune\.json\s+unfrozen_layers\s+20\s+10", diff), diff
    assert re.search(r"metrics/audit\.json\s+label_issues\s+\d+\s+\d+", diff), diff

    output = run(repo, "dvc", "exp", "run", "-S", "model=mobilenet_v2")
    assert stages_skipped(output) == {"split", "preprocess"}
    assert stages_run(output) == {"weights", "sample", "features", "probe", "transfer", "finetune",
                                  "calibrate", "evaluate", "export", "audit", "plot"}
    assert json.loads((repo / "metrics" / "metrics.json").read_text())["accuracy"] >= 0.6
