"""The whole pipeline, every stage of dvc.yaml in its own process, on 120 generated images of
three separable classes with the default backbone's ImageNet weights (tests/conftest.py:
tiny_run). The run must learn them, and every output must agree with the images' folders."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from imgclf.charts import live_history
from tests.conftest import TINY_CLASSES, TINY_UNFREEZE, run


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def folder_class(path):
    """The class of an image by its folder in data.dir: <class>/x."""
    return os.path.normpath(path).split(os.sep)[-2]


def test_the_pipeline_learns_a_separable_dataset(tiny_run):
    metrics = json.loads((tiny_run / "metrics" / "metrics.json").read_text())
    assert metrics["n_images"] == 30 and metrics["evaluated_on_val"] == 0
    assert metrics["accuracy"] >= 0.9 and metrics["transfer_accuracy"] >= 0.9, metrics  # chance: 0.33
    assert metrics["f1"] >= 0.9, metrics
    assert metrics["probe_accuracy"] >= 0.9 and metrics["probe_f1"] >= 0.9, metrics  # baseline
    # Calibrated on val (the calibrate stage); scored on test, before and after.
    calibrated = json.loads((tiny_run / "metrics" / "calibration.json").read_text())
    assert calibrated["temperature"] > 0  # 1 when val has no mistake (float rounding aside:)
    assert calibrated["val_loss"] <= calibrated["val_loss_before"] + 1e-6, calibrated
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["ece_before"] <= 1 and metrics["brier"] < 0.3
    assert metrics["known_kept"] >= 0.8 and calibrated["unknown_references"] == 60
    # The training stages ran without the test split on disk (conftest hides it), so none
    # of them read it; the splits share no file.
    splits = {split: {os.path.basename(path) + folder_class(path)
                      for path in (tiny_run / "data" / "prepared" / split / "files.txt")
                      .read_text().split()} for split in ("train", "val", "test")}
    assert not (splits["train"] & splits["test"]) and not (splits["val"] & splits["test"])
    assert not (splits["train"] & splits["val"])
    assert [len(files) for files in splits.values()] == [60, 30, 30]


def test_evaluation_rows_are_each_test_image_with_its_own_class(tiny_run):
    """The metrics come from the true labels: recomputed here from the folders."""
    rows = read_csv(tiny_run / "plots" / "confusion.csv")
    test_files = (tiny_run / "data" / "prepared" / "test" / "files.txt").read_text().split()
    assert sorted(row["file"] for row in rows) == sorted(test_files)
    assert all(row["actual"] == folder_class(row["file"]) for row in rows)
    correct = sum(row["predicted"] == row["actual"] for row in rows)
    metrics = json.loads((tiny_run / "metrics" / "metrics.json").read_text())
    assert metrics["accuracy"] == correct / len(rows)
    assert len({row["predicted"] for row in rows}) == 3
    per_class = json.loads((tiny_run / "metrics" / "per_class.json").read_text())
    assert [per_class[name]["support"] for name in TINY_CLASSES] == [10, 10, 10]


def test_predict_agrees_with_evaluate_and_the_folders_file_by_file(tiny_run):
    test_files = (tiny_run / "data" / "prepared" / "test" / "files.txt").read_text().split()
    run(tiny_run, "python", "-m", "imgclf.predict", *test_files, "-k", "1", "-o",
        "predicted.csv")
    predicted = {row["file"]: row["class_1"] for row in read_csv(tiny_run / "predicted.csv")}
    evaluated = {row["file"]: row["predicted"]
                 for row in read_csv(tiny_run / "plots" / "confusion.csv")}
    assert predicted == evaluated and len(predicted) == 30
    right = sum(name == folder_class(path) for path, name in predicted.items())
    assert right >= 27, predicted


def test_fine_tuning_trained_what_was_asked(tiny_run):
    finetune = json.loads((tiny_run / "metrics" / "finetune.json").read_text())
    transfer = json.loads((tiny_run / "metrics" / "transfer.json").read_text())
    assert finetune["unfrozen_layers"] == TINY_UNFREEZE and finetune["epochs_run"] == 2
    probe = json.loads((tiny_run / "metrics" / "probe.json").read_text())
    assert finetune["kept"] in ("probe", "transfer", "finetuned"), finetune
    assert finetune["kept_because"].startswith(finetune["kept"] + ": right on")
    # Never below the probe on val, within one image: the probe's own figure is on the
    # float16 cached features, the kept model's on the images.
    assert finetune["kept_val_accuracy"] >= probe["val_accuracy"] - 0.05
    assert transfer["epochs_run"] == 10 and 1 <= transfer["best_epoch"] <= 10
    history = live_history(tiny_run / "dvclive" / "transfer")
    best = int(np.argmin([row["val_loss"] for row in history]))
    assert transfer["best_epoch"] == best + 1
    assert transfer["best_val_loss"] == history[best]["val_loss"]
    # One history of both phases on one step axis: transfer's epochs, then fine-tuning's.
    both = live_history(tiny_run / "dvclive" / "training")
    assert [row["epoch"] for row in both] == list(range(12)) and both[:10] == history


def test_exported_models_and_labels_name_each_test_image_right(tiny_run):
    """labels.txt and every exported file, used as the README shows, classify the test
    images by their folders; the export stage's own check compared them with Keras."""
    from ai_edge_litert.interpreter import Interpreter

    labels = (tiny_run / "models" / "export" / "labels.txt").read_text().split("\n")[:-1]
    assert labels == TINY_CLASSES
    exported = json.loads((tiny_run / "metrics" / "export.json").read_text())
    assert exported["keras"]["n"] == 30
    assert exported["keras"]["full_size_n"] == 30  # every test file, at its original size
    for name in ("saved_model", "tflite_float32"):
        assert exported[name]["agreement"] >= 0.99 and exported[name]["passed"] == 1, exported
    test_files = (tiny_run / "data" / "prepared" / "test" / "files.txt").read_text().split()
    pixels = np.stack([np.asarray(Image.open(tiny_run / path).convert("RGB"), np.float32)
                       for path in test_files])
    # The outputs by name, as docs/export.md shows: their tensor order is not fixed.
    file = tiny_run / "models" / "export" / "model_float32.tflite"
    runner = Interpreter(model_path=str(file)).get_signature_runner()
    (image_input,) = runner.get_input_details()
    outputs = runner(**{image_input: pixels})
    names = [labels[i] for i in outputs["probabilities"].argmax(axis=1)]
    right = sum(name == folder_class(path) for name, path in zip(names, test_files))
    assert right >= 27, list(zip(names, test_files))
    # Most are known, as the Keras model found in evaluate (a threshold keeping 0.95 of val).
    known_kept = json.loads((tiny_run / "metrics" / "metrics.json").read_text())["known_kept"]
    assert 1 - outputs["unknown"].mean() == pytest.approx(known_kept, abs=1 / 30)
    assert known_kept >= 0.8


def test_plots_and_report_are_written(tiny_run):
    for name in ("training", "confusion", "per_class", "mistakes", "gradcam", "precision_recall",
                 "label_issues", "near_duplicates", "calibration", "risk_coverage", "unknowns"):
        assert (tiny_run / "plots" / f"{name}.png").stat().st_size > 5_000, name
    page = (tiny_run / "plots" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 11


def test_the_audit_tables_name_real_images_and_agree_with_its_counts(tiny_run):
    audit = json.loads((tiny_run / "metrics" / "audit.json").read_text())
    issues = read_csv(tiny_run / "metrics" / "label_issues.csv")
    pairs = read_csv(tiny_run / "metrics" / "near_duplicates.csv")
    assert audit["enabled"] == 1 and audit["label_issues"] == len(issues)
    assert sum(audit[f"label_issues_{split}"] for split in ("train", "val", "test")) == len(issues)
    assert audit["near_duplicates"] == len(pairs)
    # a clean set (every image drawn apart, labelled by its folder): nothing to report
    assert audit["label_issues"] == 0 and audit["near_duplicates"] == 0, (issues, pairs)
    metrics = json.loads((tiny_run / "metrics" / "metrics.json").read_text())
    assert audit["test_accuracy_without_near_duplicates"] == metrics["accuracy"]
    files = {split: (tiny_run / "data" / "prepared" / split / "files.txt").read_text().split()
             for split in ("train", "val", "test")}
    for row in issues:
        assert row["file"] in files[row["split"]] and row["label"] == folder_class(row["file"])
        assert row["suggested"] in TINY_CLASSES and row["suggested"] != row["label"]
    for row in pairs:
        assert row["file_a"] in files[row["split_a"]] and row["file_b"] in files[row["split_b"]]
    straddling = [row["split_a"] != row["split_b"] for row in pairs]
    assert straddling == sorted(straddling, reverse=True)  # pairs across splits first
    assert audit["test_images_with_near_duplicates"] == len(
        {row["file_b"] for row in pairs if row["split_b"] == "test" and row["split_a"] != "test"})
    report = (tiny_run / "plots" / "report.html").read_text()
    assert "Audit: " in report and "near-duplicate pairs (audit)" in report
