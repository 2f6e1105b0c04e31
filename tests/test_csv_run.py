"""Labels from a CSV, one per image, with groups: every stage of dvc.yaml in its own process
on 120 generated images in one flat folder. The run must learn them, keep each group in one
split, and report on the CSV's labels. A whole pipeline: slow (test_split checks groups and
CSV rows as functions in the default suite)."""
import csv
import json
import os

import pytest

from tests.conftest import TINY_CLASSES, copy_project, run, stage_commands, tiny_params, write_images

pytestmark = pytest.mark.slow


def csv_params(values):
    tiny_params(values)
    values["data"].update(dir="images", labels="images/labels.csv")


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory, keras_home):
    """The images of tiny_run moved out of their class folders into images/all/, listed in
    images/labels.csv with a group per pair of images (say, two photos of one animal)."""
    repo = copy_project(tmp_path_factory.mktemp("csv") / "project", csv_params)
    write_images(str(repo / "images"), TINY_CLASSES, per_class=40, size=64)
    rows = []
    for name in TINY_CLASSES:
        for index, file in enumerate(sorted(os.listdir(repo / "images" / name))):
            os.makedirs(repo / "images" / "all", exist_ok=True)
            os.replace(repo / "images" / name / file, repo / "images" / "all" / f"{name}_{file}")
            rows.append((f"all/{name}_{file}", name, f"{name}{index // 2}"))
        os.rmdir(repo / "images" / name)
    with open(repo / "images" / "labels.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("file", "label", "group"), *rows])
    for command in stage_commands(repo).values():
        run(repo, "bash", "-c", command, env={"KERAS_HOME": keras_home})
    return repo, {f"images/{file}": (label, group) for file, label, group in rows}


def test_a_csv_labelled_run_learns_and_keeps_groups_whole(csv_run):
    repo, listed = csv_run
    metrics = json.loads((repo / "metrics" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9 and metrics["n_images"] >= 20, metrics  # chance: 0.33
    split_of = {}
    for split in ("train", "val", "test"):
        for file in (repo / "data" / "prepared" / split / "files.txt").read_text().split():
            split_of[file] = split
    assert sorted(split_of) == sorted(listed)
    groups = {}
    for file, split in split_of.items():
        groups.setdefault(listed[file][1], set()).add(split)
    assert len(groups) == 60 and all(len(splits) == 1 for splits in groups.values())
    with open(repo / "plots" / "confusion.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(row["actual"] == listed[row["file"]][0] for row in rows)
    assert len(rows) == metrics["n_images"]
