"""The split stage's manifest: the same split as split-folders for class folders, labels and
splits from a CSV with every bad row reported, groups kept whole, label shares kept, and the
originals read through it with their content checked."""
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imgclf.dataset import read_classes
from imgclf.errors import UserError
from imgclf.manifest import read_manifest
from imgclf.prepare import prepare
from imgclf.splitting import split_dataset


def write_png(path, index):
    """A small PNG whose colour (and so bytes) is its own."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    colour = (index % 256, (index // 256) * 40 % 256, 255 - index % 256)
    Image.new("RGB", (8, 8), colour).save(path)


def write_csv(folder, rows, columns=("file", "label", "split", "group")):
    path = os.path.join(folder, "labels.csv")
    pd.DataFrame(rows, columns=list(columns)[:len(rows[0])]).to_csv(path, index=False)
    return path


def assignment(split_dir, separator=None):
    rows = read_manifest(str(split_dir), separator)
    return dict(zip(rows["file"], rows["split"])), rows


@pytest.mark.parametrize("ratios", [(0.7, 0.2, 0.1), (0.8, 0.2)])
def test_class_folders_split_file_by_file_as_split_folders_does(tmp_path, ratios):
    import splitfolders

    source = tmp_path / "photos"
    for index in range(13 + 17 + 22):
        name = "ant" if index < 13 else "bee" if index < 30 else "cow"
        write_png(str(source / name / f"{index:03d}.png"), index)
    split_dataset(str(source), str(tmp_path / "split"), ratios, seed=7)
    splitfolders.ratio(str(source), str(tmp_path / "copies"), seed=7, ratio=ratios)
    theirs = {f"{name}/{file}": split for split in os.listdir(tmp_path / "copies")
              for name in os.listdir(tmp_path / "copies" / split)
              for file in os.listdir(tmp_path / "copies" / split / name)}
    ours, rows = assignment(tmp_path / "split")
    assert ours == theirs and len(ours) == 52
    assert len(set(rows["split"])) == len(ratios)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    for index in range(40):
        write_png(str(folder / "img" / f"{index:02d}.png"), index)
    return folder


def test_every_bad_row_of_a_label_csv_is_reported(photos, tmp_path):
    rows = [(f"img/{i:02d}.png", "cat" if i % 2 else "dog", "", "") for i in range(30)]
    rows += [
        ("img/missing.png", "cat", "", ""),
        ("img/30.png", "", "", ""),                   # empty label
        ("img/31.png", "cat", "", ""), ("img/31.png", "dog", "", ""),  # conflicting labels
        ("img/32.png", "cat", "holdout", ""),         # unknown split
        ("img/33.png", "dog", "", ""), ("img/33.png", "dog", "", ""),  # the same row twice
        ("../photos/img/34.png", "dog", "", ""),      # outside data.dir, though it exists
        ("img\\35.png", " cat ", "", ""),              # Windows separators, spaces
    ]
    labels = write_csv(str(photos), rows)
    counts, skipped = split_dataset(str(photos), str(tmp_path / "split"), (0.7, 0.2, 0.1), seed=0,
                                    labels=labels, max_bad_rows=0.2)
    reasons = dict(skipped)
    assert "row 32: file not found" in reasons["img/missing.png"]
    assert reasons["img/30.png"].endswith("row 33: empty label")
    assert "different labels" in reasons["img/31.png"]
    assert "unknown split 'holdout'" in reasons["img/32.png"]
    assert "kept once" in reasons["img/33.png"]
    assert "row 39: file outside data.dir" in reasons["../photos/img/34.png"]
    assert len(skipped) == 7 and sum(counts.values()) == 32  # 30 + img/33 once + img/35
    rows = read_manifest(str(tmp_path / "split"), None)
    assert rows.loc[rows["file"] == "img/35.png", "label"].item() == "cat"
    with pytest.raises(UserError, match=r"6 of 39 rows of .*labels.csv are bad, more than "
                                        r"data.max_bad_rows \(0.1\); the first: .*row 32"):
        split_dataset(str(photos), str(tmp_path / "again"), (0.7, 0.2, 0.1), seed=0,
                      labels=labels, max_bad_rows=0.1)
    assert not os.path.exists(tmp_path / "again")


def test_a_single_label_cell_is_one_label_spaces_and_all(photos, tmp_path):
    names = ["golden retriever", "german shepherd dog"]
    labels = write_csv(str(photos), [(f"img/{i:02d}.png", names[i % 2]) for i in range(20)])
    split_dataset(str(photos), str(tmp_path / "split"), (0.7, 0.3), seed=0, labels=labels)
    rows = read_manifest(str(tmp_path / "split"), None)
    assert set(rows["labels"]) == {(name,) for name in names}
    counts, _ = prepare(str(tmp_path / "split"), str(photos), str(tmp_path / "prepared"), 8,
                        processes=1)
    assert read_classes(str(tmp_path / "prepared")) == sorted(names)
    assert counts == {"train": 14, "val": 6}


def test_given_splits_are_kept_and_groups_never_straddle_splits(photos, tmp_path):
    rows = []
    for index in range(40):  # 13 groups of 1 to 5 images; two rows come with a given split
        group = f"patient{index % 13}" if index % 7 else ""
        split = "test" if index == 5 else ""
        rows.append((f"img/{index:02d}.png", "cat" if index % 3 else "dog", split, group))
    labels = write_csv(str(photos), rows)
    split_dataset(str(photos), str(tmp_path / "split"), (0.6, 0.2, 0.2), seed=3, labels=labels)
    ours, manifest = assignment(tmp_path / "split")
    assert len(ours) == 40 and ours["img/05.png"] == "test"
    grouped = manifest[manifest["group"] != ""]
    assert grouped.groupby("group")["split"].nunique().max() == 1
    assert set(manifest.loc[manifest["group"] == "patient5", "split"]) == {"test"}  # img/05's group
    assert set(manifest["split"]) == {"train", "val", "test"}

    rows[18] = (rows[18][0], rows[18][1], "val", rows[18][3])  # patient5 again, in another split
    labels = write_csv(str(photos), rows)
    with pytest.raises(UserError, match="group 'patient5' is given two splits"):
        split_dataset(str(photos), str(tmp_path / "again"), (0.6, 0.2, 0.2), seed=3, labels=labels)


def test_multi_label_splits_keep_each_labels_share(tmp_path):
    folder = tmp_path / "photos"
    rng = np.random.default_rng(0)
    names = ["sky", "water", "tree", "rock", "snow"]
    shares = [0.5, 0.3, 0.2, 0.1, 0.05]
    rows = []
    for index in range(400):
        write_png(str(folder / f"{index:03d}.png"), index)
        chosen = [name for name, share in zip(names, shares) if rng.random() < share]
        rows.append((f"{index:03d}.png", ";".join(chosen)))  # some images have no label
    labels = write_csv(str(folder), rows, ("file", "label"))
    split_dataset(str(folder), str(tmp_path / "split"), (0.7, 0.15, 0.15), seed=1, labels=labels,
                  task="multi_label", separator=";")
    _, manifest = assignment(tmp_path / "split", ";")
    overall = {name: np.mean([name in labels for labels in manifest["labels"]]) for name in names}
    for split, members in manifest.groupby("split"):
        assert abs(len(members) / 400 - {"train": 0.7, "val": 0.15, "test": 0.15}[split]) < 0.03
        for name in names:
            share = np.mean([name in labels for labels in members["labels"]])
            assert abs(share - overall[name]) < 0.03, (split, name, share, overall[name])
    assert any(labels == () for labels in manifest["labels"])
    assert (tmp_path / "split" / "manifest.csv").read_text().count(";") > 50  # joined back


def test_preprocess_reads_the_originals_and_stops_at_a_changed_file(photos, tmp_path):
    labels = write_csv(str(photos), [(f"img/{i:02d}.png", "a b" if i % 2 else "b") for i in range(40)],
                       ("file", "label"))
    split_dataset(str(photos), str(tmp_path / "split"), (0.5, 0.25, 0.25), seed=0, labels=labels,
                  task="multi_label")
    counts, _ = prepare(str(tmp_path / "split"), str(photos), str(tmp_path / "prepared"), 8,
                        separator=" ", processes=1)
    assert sum(counts.values()) == 40
    hot = np.load(tmp_path / "prepared" / "train" / "labels.npy")
    files = (tmp_path / "prepared" / "train" / "files.txt").read_text().split()
    assert hot.shape == (counts["train"], 2) and hot.dtype == np.uint8
    odd = ("1.png", "3.png", "5.png", "7.png", "9.png")  # the images labelled "a b"
    assert [list(row) for row in hot] == [[int(f.endswith(odd)), 1] for f in files]
    write_png(str(photos / "img" / "07.png"), 99)  # edited after the split
    with pytest.raises(UserError, match=r"img/07.png changed since the split"):
        prepare(str(tmp_path / "split"), str(photos), str(tmp_path / "again"), 8, separator=" ",
                processes=1)


@pytest.mark.parametrize("content, message", [
    (None, r"data.labels '.*labels.csv' is not a file"),
    ("file,labels\nimg/00.png,cat\n", r"labels.csv has no column 'label'; its columns are file, labels"),
])
def test_an_unusable_label_csv_stops_with_one_line(photos, tmp_path, content, message):
    path = photos / "labels.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        split_dataset(str(photos), str(tmp_path / "split"), (0.7, 0.3), seed=0, labels=str(path))



def test_a_folder_name_holding_the_label_separator_is_refused_for_multi_label(tmp_path):
    for index in range(20):
        name = "golden retriever" if index % 2 else "cat"
        write_png(str(tmp_path / "photos" / name / f"{index:02d}.png"), index)
    with pytest.raises(UserError, match=r"label 'golden retriever' contains data.label_separator ' '"):
        split_dataset(str(tmp_path / "photos"), str(tmp_path / "split"), (0.7, 0.3), seed=0,
                      task="multi_label")
    split_dataset(str(tmp_path / "photos"), str(tmp_path / "split"), (0.7, 0.3), seed=0,
                  task="multi_label", separator=";")
    _, manifest = assignment(tmp_path / "split", ";")
    assert set(manifest["labels"]) == {("cat",), ("golden retriever",)}
