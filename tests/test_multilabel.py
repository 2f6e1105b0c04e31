"""task: multi_label end to end: every stage of dvc.yaml in its own process on 160 generated
images with 0 to 3 labels each, listed in a CSV (tests/conftest.py). The run must learn
them; metrics, thresholds, predict and export must agree with the CSV and each other."""
import csv
import json

import numpy as np
import pytest

from imgclf.multilabel import score
from tests.conftest import (MULTI_LABELS, copy_project, run, stage_commands, tiny_params,
                            write_multi_label_images)


def multi_label_params(values):
    tiny_params(values)
    values["task"] = "multi_label"
    values["data"].update(dir="images", labels="images/labels.csv", label_separator=",")


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory, keras_home):
    repo = copy_project(tmp_path_factory.mktemp("multi") / "project", multi_label_params)
    write_multi_label_images(str(repo / "images"), 160)
    for command in stage_commands(repo).values():
        run(repo, "bash", "-c", command, env={"KERAS_HOME": keras_home})
    return repo


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def true_labels(repo):
    return {f"images/{row['file']}": set(filter(None, row["label"].split(",")))
            for row in csv_rows(repo / "images" / "labels.csv")}


def given_labels(rows, files):
    """{file: labels the model gave} from plots/confusion.csv's rows (an image with no label
    given or had has no row)."""
    given = {file: set() for file in files}
    for row in rows:
        if row["predicted"] != "(none)":
            given[row["file"]].add(row["predicted"])
    return given


def test_the_multi_label_run_learns_and_its_metrics_add_up(multi_run):
    metrics = json.loads((multi_run / "metrics" / "metrics.json").read_text())
    assert metrics["n_images"] == 40 and metrics["f1_macro"] >= 0.9 and metrics["map"] >= 0.95, metrics
    assert metrics["subset_accuracy"] >= 0.8 and metrics["hamming_loss"] <= 0.07, metrics
    truth = true_labels(multi_run)
    rows = csv_rows(multi_run / "plots" / "confusion.csv")
    # Each row's actual side is the CSV's label: a label it has, or (none) for one it lacks.
    for row in rows:
        assert (row["actual"] in truth[row["file"]]) == (row["actual"] != "(none)"), row
        assert row["actual"] == "(none)" or row["actual"] in MULTI_LABELS
    right = sum(row["actual"] == row["predicted"] for row in rows)
    wrong = len(rows) - right
    assert metrics["f1_micro"] == pytest.approx(2 * right / (2 * right + wrong))
    per_label = json.loads((multi_run / "metrics" / "per_class.json").read_text())
    test_files = (multi_run / "data" / "prepared" / "test" / "files.txt").read_text().split()
    for name in MULTI_LABELS:
        assert per_label[name]["support"] == sum(name in truth[f] for f in test_files)
        assert per_label[name]["average_precision"] >= 0.9
    # The split kept each label's share: no split without any of them.
    prepared = {split: np.load(multi_run / "data" / "prepared" / split / "labels.npy")
                for split in ("train", "val", "test")}
    for labels in prepared.values():
        assert labels.shape[1] == 3 and labels.sum(axis=0).min() >= 5


def test_thresholds_live_in_the_model_and_predict_prints_every_label_above_them(multi_run):
    import keras

    from imgclf.model import class_names, is_multi_label, thresholds

    model = keras.models.load_model(multi_run / "models" / "model.keras")
    assert is_multi_label(model) and class_names(model) == sorted(MULTI_LABELS)
    chosen = thresholds(model)
    assert model.get_layer("class_names").thresholds is not None
    assert 0 < chosen.min() < chosen.max() < 1
    exported = (multi_run / "models" / "export" / "thresholds.txt").read_text().split()
    assert np.allclose([float(v) for v in exported], chosen, atol=1e-6)
    test_files = (multi_run / "data" / "prepared" / "test" / "files.txt").read_text().split()
    output = run(multi_run, "python", "-m", "imgclf.predict", *test_files)
    printed = {}
    for line in output.splitlines():
        if line.startswith("images/"):
            file, _, result = line.partition("\t")
            if not result.startswith("unknown"):  # printed instead of labels: compared below
                printed[file] = set() if result.startswith("(no label") else set(result.split()[::2])
    given = given_labels(csv_rows(multi_run / "plots" / "confusion.csv"), test_files)
    assert printed == {file: given[file] for file in printed} and len(printed) >= 30
    truth = true_labels(multi_run)
    both = [f for f in printed if len(truth[f]) >= 2 and printed[f] == truth[f]]
    assert len(both) >= 5  # images with two or three labels, each printed
    # The thresholds predict uses are the model's: with tiny ones, every label is printed.
    from imgclf.model import set_thresholds

    set_thresholds(model, [1e-9] * 3)
    model.get_layer("unknown_score").threshold.assign([2.0])  # cosine distances: none above
    model.save(multi_run / "low_thresholds.keras")
    output = run(multi_run, "python", "-m", "imgclf.predict", *test_files[:5],
                 "-m", "low_thresholds.keras")
    assert [len(line.split("\t")[1].split()) for line in output.splitlines()
            if line.startswith("images/")] == [6] * 5  # three labels, each with its probability


def test_exported_models_pass_their_label_by_label_check(multi_run):
    figures = json.loads((multi_run / "metrics" / "export.json").read_text())
    assert figures["saved_model"]["passed"] == figures["tflite_float32"]["passed"] == 1
    assert figures["keras"]["n"] == 40 and figures["saved_model"]["flipped"] == 0
    assert figures["keras"]["accuracy"] >= 0.8  # every label of an image right


def test_multi_label_micro_scores_count_wrong_labels_the_test_split_lacks():
    labels = np.array([[1, 0], [1, 0]])
    probabilities = np.array([[0.9, 0.9], [0.9, 0.1]])  # the first also given b, wrongly
    metrics, report = score(probabilities, labels, np.array([0.5, 0.5]), ["a", "b"])
    assert metrics["precision_micro"] == pytest.approx(2 / 3) and metrics["hamming_loss"] == 0.25
    assert metrics["f1_macro"] == 1.0 and report["absent_classes"] == ["b"]  # macro: a only


def test_the_audit_checks_each_label_against_the_csv(multi_run):
    """One row per (image, label): a label the CSV gives that looks absent, or one it does
    not give that looks present. This clean set: every label is a bright square of its
    colour, drawn where the CSV says."""
    audit = json.loads((multi_run / "metrics" / "audit.json").read_text())
    rows = csv_rows(multi_run / "metrics" / "label_issues.csv")
    assert audit["enabled"] == 1 and audit["label_issues"] == len(rows)
    truth = true_labels(multi_run)
    for row in rows:
        given, suggested = row["label"], row["suggested"]
        assert "(absent)" in (given, suggested)
        assert {given, suggested} - {"(absent)"} <= set(MULTI_LABELS)
        if given != "(absent)":
            assert given in truth[row["file"]]
        else:
            assert suggested not in truth[row["file"]]
    assert audit["label_issues"] <= 2, rows  # 160 clean images: at most a borderline pair
    assert "test_accuracy_without_near_duplicates" not in audit  # single-label only
