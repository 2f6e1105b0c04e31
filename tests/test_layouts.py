"""The folder layouts that labelling tools export are read as splits, never as classes:
Roboflow's train/ valid/ test/, Ultralytics' (and many Kaggle sets') train/ test/, FiftyOne's
and TFDS' train/ validation/ test/, in any case."""
import os
import shutil
import subprocess
import sys

import pytest

from imgclf.errors import UserError
from imgclf.labels import describe_layout
from imgclf.manifest import read_manifest
from imgclf.splitting import split_dataset
from tests.conftest import write_images
from tests.informative import ROOT

CLASSES = ["ant", "bee"]


def exported(root, folders, per_class=10):
    """A tool's export: each split folder holds a folder per class of real PNG files."""
    for seed, name in enumerate(folders):
        write_images(str(root / name), CLASSES, per_class=per_class, seed=seed)
    return root


def manifest(split_dir):
    rows = read_manifest(str(split_dir), None)
    return rows.assign(folder=[file.split("/")[0] for file in rows["file"]])


@pytest.mark.parametrize("folders", [["train", "valid", "test"],      # Roboflow
                                     ["train", "validation", "test"],  # FiftyOne, TFDS
                                     ["Train", "VAL", "Testing"]])
def test_an_exported_split_is_kept_as_it_is(tmp_path, folders):
    source = exported(tmp_path / "export", folders)
    counts, skipped = split_dataset(str(source), str(tmp_path / "split"), (0.7, 0.2, 0.1), seed=0)
    rows = manifest(tmp_path / "split")
    assert counts == {"train": 20, "val": 20, "test": 20} and skipped == []
    assert sorted({labels for labels in rows["labels"]}) == [("ant",), ("bee",)]
    assert dict(zip(rows["folder"], rows["split"])) == dict(zip(folders, ["train", "val", "test"]))
    assert describe_layout(str(source)) == f"pre-split folders {' '.join(f + '/' for f in folders)}"


def test_without_a_val_folder_val_is_carved_out_of_train_per_class_and_test_is_kept(tmp_path):
    source = exported(tmp_path / "export", ["train", "test"], per_class=10)  # Ultralytics
    write_images(str(source / "train"), CLASSES, per_class=20, seed=5)  # 20 train per class
    counts, _ = split_dataset(str(source), str(tmp_path / "split"), (0.6, 0.2, 0.2), seed=3)
    rows = manifest(tmp_path / "split")
    # split.train : split.val = 3 : 1 of train/: 15 and 5 of each class's 20
    assert counts == {"train": 30, "val": 10, "test": 20}
    for name in CLASSES:
        carved = rows[(rows["split"] == "val") & (rows["labels"] == (name,))]
        assert len(carved) == 5 and set(carved["folder"]) == {"train"}
    test = rows[rows["split"] == "test"]
    assert set(test["folder"]) == {"test"} and len(test) == 20
    def val_files(folder):
        rows = manifest(folder)
        return set(rows.loc[rows["split"] == "val", "file"])

    split_dataset(str(source), str(tmp_path / "again"), (0.6, 0.2, 0.2), seed=3)
    split_dataset(str(source), str(tmp_path / "other"), (0.6, 0.2, 0.2), seed=4)
    assert val_files(tmp_path / "again") == val_files(tmp_path / "split")  # seeded
    assert val_files(tmp_path / "other") != val_files(tmp_path / "split")
    assert describe_layout(str(source)) == (
        "pre-split folders train/ test/, val carved out of train/")


def test_a_top_level_folder_that_is_not_a_split_is_named_not_dropped_silently(tmp_path):
    source = exported(tmp_path / "export", ["train", "valid"])
    write_images(str(source / "extras"), CLASSES, per_class=2)
    write_images(str(source / "train"), ["loose"], per_class=1)
    os.replace(source / "train" / "loose" / "img_000.png", source / "train" / "stray.png")
    shutil.copy(source / "train" / "stray.png", source / "top.png")  # beside the split folders
    counts, skipped = split_dataset(str(source), str(tmp_path / "split"), (0.7, 0.2, 0.1), seed=0)
    reasons = dict(skipped)
    assert reasons[str(source / "extras")].startswith("not a split folder")
    assert reasons[str(source / "train" / "stray.png")] == "image outside any class folder: left out"
    assert reasons[str(source / "top.png")] == "image outside any class folder: left out"
    assert counts == {"train": 20, "val": 20}


def test_two_folders_of_one_split_are_refused(tmp_path):
    source = exported(tmp_path / "export", ["train", "val", "valid"])
    with pytest.raises(UserError, match=r"two val folders, val/ and valid/"):
        split_dataset(str(source), str(tmp_path / "split"), (0.7, 0.2, 0.1), seed=0)


def test_class_folders_named_like_nothing_in_particular_stay_class_folders(tmp_path):
    source = tmp_path / "photos"
    write_images(str(source), ["train", "tulip"], per_class=10)  # a class may be called train
    counts, _ = split_dataset(str(source), str(tmp_path / "split"), (0.6, 0.2, 0.2), seed=0)
    assert counts == {"train": 12, "val": 4, "test": 4}
    assert describe_layout(str(source)) == "class folders"


def test_the_split_stage_says_which_layout_it_found(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            text = f.read()
        (project / name).write_text(text.replace("dir: data/sample", "dir: export"), encoding="utf-8")
    exported(project / "export", ["train", "test"])
    write_images(str(project / "export" / "notes"), CLASSES, per_class=1)
    result = subprocess.run([sys.executable, "-m", "stages.split"], cwd=project, text=True,
                            capture_output=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    assert ("(pre-split folders train/ test/, val carved out of train/; not a split, not used: "
            "notes/)") in result.stdout


def test_a_class_only_in_the_given_test_folder_is_named_not_blamed_on_the_seed(tmp_path):
    source = exported(tmp_path / "export", ["train", "test"])
    write_images(str(source / "test"), ["cow"], per_class=3, seed=9)
    with pytest.raises(UserError, match="val/test have classes that train does not: cow"):
        split_dataset(str(source), str(tmp_path / "split"), (0.7, 0.2, 0.1), seed=0)
