"""The split's record, data/split/: no image is copied.

manifest.csv has one row per image: file (relative to data.dir), label (names joined by
data.label_separator), split, group and sha256 (of the file's bytes, checked by preprocess
when it reads the original). classes.json holds the label names in order, and skipped.csv
what was left out and why.
"""
import csv
import hashlib
import json
import os

from imgclf.files import replaced_when_done

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.csv"


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_split(output, rows, classes, skipped, separator):
    """The manifest (rows in split order, then by file), classes.json and skipped.csv."""
    order = rows.assign(rank=rows["split"].map(SPLITS.index)).sort_values(["rank", "file"])
    manifest = order.assign(label=[separator.join(labels) for labels in order["labels"]])
    with replaced_when_done(output) as tmp:
        os.makedirs(tmp)
        manifest[["file", "label", "split", "group", "sha256"]].to_csv(
            os.path.join(tmp, MANIFEST), index=False)
        with open(os.path.join(tmp, "classes.json"), "w", encoding="utf-8") as f:
            json.dump(classes, f)
        # backslashreplace: a file name that is not UTF-8 is listed with its odd bytes escaped.
        with open(os.path.join(tmp, "skipped.csv"), "w", newline="", encoding="utf-8",
                  errors="backslashreplace") as f:
            csv.writer(f).writerows([("file", "reason"), *skipped])


def read_manifest(folder, separator):
    """The manifest's rows, labels as tuples of names."""
    import pandas as pd

    rows = pd.read_csv(os.path.join(folder, MANIFEST), dtype=str, keep_default_na=False)
    rows["labels"] = [tuple(name for name in label.split(separator) if name) if separator
                      else (label,) for label in rows["label"]]
    return rows
