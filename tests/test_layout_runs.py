"""The exported layouts of tests/test_layouts.py, and a single-label CSV whose labels hold
spaces, through every stage of dvc.yaml (one process each, as DVC runs them): each run must
learn the real classes, never the split folders' names."""
import csv
import json

import pytest

from tests.conftest import TINY_CLASSES, copy_project, run, stage_commands, tiny_params, write_images

pytestmark = pytest.mark.slow

SPACED = ["grey cat", "brown dog", "red fox"]


def folders(names, counts):
    """A tool's export: images/<split folder>/<class>/, counts images per class in each."""
    def write(repo):
        for seed, (name, count) in enumerate(zip(names, counts)):
            write_images(str(repo / "images" / name), TINY_CLASSES, per_class=count, size=64,
                         seed=seed)
        return TINY_CLASSES
    return write


def spaced_csv(repo):
    """Class folders flattened into images/all/, labelled in images/labels.csv with names
    holding spaces."""
    write_images(str(repo / "images" / "all"), TINY_CLASSES, per_class=40, size=64)
    rows = []
    for name, label in zip(TINY_CLASSES, SPACED):
        for file in sorted((repo / "images" / "all" / name).iterdir()):
            target = repo / "images" / "all" / f"{name}_{file.name}"
            file.rename(target)
            rows.append((f"all/{target.name}", label))
        (repo / "images" / "all" / name).rmdir()
    with open(repo / "images" / "labels.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("file", "label"), *rows])
    return sorted(SPACED)


LAYOUTS = {
    "roboflow": (folders(["train", "valid", "test"], [24, 8, 8]), "train/ valid/ test/"),
    "ultralytics": (folders(["train", "test"], [30, 10]), "train/ test/, val carved out of train/"),
    "fiftyone": (folders(["train", "validation", "test"], [24, 8, 8]), "train/ validation/ test/"),
    "csv_with_spaces": (spaced_csv, "a CSV of labels"),
}


def layout_params(layout):
    def update(values):
        tiny_params(values)
        values["finetune"]["epochs"] = 1
        values["export"]["formats"] = []
        if layout == "csv_with_spaces":
            values["data"]["labels"] = "images/labels.csv"
    return update


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_an_exported_layout_runs_end_to_end_on_its_real_classes(tmp_path, keras_home, layout):
    write, described = LAYOUTS[layout]
    repo = copy_project(tmp_path / "project", layout_params(layout))
    classes = write(repo)
    outputs = {name: run(repo, "bash", "-c", command, env={"KERAS_HOME": keras_home})
               for name, command in stage_commands(repo).items()}
    assert described in outputs["split"], outputs["split"]
    metrics = json.loads((repo / "metrics" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["accuracy"] >= 0.9 and metrics["n_images"] >= 24, metrics  # chance: 0.33
    per_class = json.loads((repo / "metrics" / "per_class.json").read_text(encoding="utf-8"))
    assert [name for name in per_class if name in classes] == classes
    with open(repo / "plots" / "confusion.csv", newline="", encoding="utf-8") as f:
        actual = {row["actual"] for row in csv.DictReader(f)}
    assert actual == set(classes)
    if layout != "csv_with_spaces":  # the given test folder is the test split, file for file
        test_files = (repo / "data" / "prepared" / "test" / "files.txt").read_text(encoding="utf-8")
        assert {line.split("/")[1] for line in test_files.split()} == {"test"}
