"""Where the labels come from: class folders, train/ val/ [test/] of them, or a CSV table.

Each source becomes the same table, one row per image: file (relative to data.dir, with
forward slashes), labels (a tuple of names), split ("" = to be assigned) and group ("" = the
image alone), plus [(file, reason)] of what was left out.
"""
import os

from imgclf.dataset import SPLITS, image_files
from imgclf.errors import UserError

COLUMNS = ["file", "labels", "split", "group"]


def table(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=COLUMNS)


def relative(path, data_dir):
    return os.path.relpath(path, data_dir).replace(os.sep, "/")


def is_presplit(data_dir):
    return all(os.path.isdir(os.path.join(data_dir, name)) for name in ("train", "val"))


def class_folders(folder):
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.is_dir() and not entry.name.startswith("."))


def from_folders(data_dir):
    """<class>/<image> below data_dir, or below each of its train/ val/ [test/] (a given split).
    Images in nested subfolders of a class belong to it; empty class folders are reported."""
    if not os.path.isdir(data_dir):
        raise UserError(f"data.dir {data_dir!r} is not a folder; set data.dir in params.yaml "
                        "to a folder of <class>/<image> subfolders")
    roots = {"": data_dir}
    if is_presplit(data_dir):
        roots = {split: os.path.join(data_dir, split) for split in SPLITS
                 if os.path.isdir(os.path.join(data_dir, split))}
    rows, skipped = [], []
    for split, root in roots.items():
        for name in class_folders(root):
            files = list(image_files(os.path.join(root, name)))
            if not files:
                skipped.append((os.path.join(root, name), "empty class folder: left out"))
            rows += [(relative(path, data_dir), (name,), split, "") for path in files]
    return table(rows), skipped


def from_csv(path, data_dir, task, separator, max_bad_rows=1.0):
    """The rows of a CSV of file, label[, split][, group]; bad rows reported, and an error
    when they are more than max_bad_rows (a fraction) of all. In single_label a row with
    several labels is an error (the separator may be wrong)."""
    import pandas as pd

    if not os.path.isfile(path):
        raise UserError(f"data.labels {path!r} is not a file; give the path of a CSV with "
                        "columns file, label (and optionally split, group), or null")
    try:
        rows = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise UserError(f"{path} is not a readable CSV: {str(error).splitlines()[0]}") from None
    missing = [column for column in ("file", "label") if column not in rows.columns]
    if missing:
        raise UserError(f"{path} has no column {missing[0]!r}; its columns are "
                        f"{', '.join(rows.columns)}; expected file, label[, split][, group]")
    kept, bad = [], []
    for index, row in rows.iterrows():
        where = f"{path} row {index + 2}"  # the header is line 1
        labels = label_names(row["label"], separator)
        if task == "single_label" and len(labels) > 1:
            raise UserError(f"{where}: {len(labels)} labels ({row['label']!r}) with "
                            f"task: single_label; use task: multi_label, or set "
                            f"data.label_separator to a character the labels do not contain")
        file = posix_path(row["file"])
        reason = bad_row(row, file, labels, data_dir, task)
        if reason:
            bad.append((row["file"], f"{where}: {reason}"))
            continue
        kept.append((file, labels, row.get("split", "").strip(), row.get("group", "").strip()))
    kept, repeated, conflicting = drop_repeated_rows(table(kept), path)
    bad += conflicting
    if len(bad) > max_bad_rows * len(rows):
        file, reason = bad[0]
        raise UserError(f"{len(bad)} of {len(rows)} rows of {path} are bad, more than "
                        f"data.max_bad_rows ({max_bad_rows:g}); the first: {reason} ({file!r})")
    return kept, bad + repeated


def label_names(cell, separator):
    """A label cell's names: split on the separator, stripped, each once, sorted."""
    return tuple(sorted({name.strip() for name in cell.split(separator)} - {""}))


def posix_path(file):
    """A CSV's file name with forward slashes (a CSV written on Windows has backslashes),
    normalised: "./a//b.jpg" is "a/b.jpg"."""
    file = file.strip().replace("\\", "/")
    return os.path.normpath(file).replace(os.sep, "/") if file else ""


def bad_row(row, file, labels, data_dir, task):
    """Why a row cannot be used, or None."""
    if not file:
        return "empty file name"
    if os.path.isabs(file) or file.split("/")[0] == "..":
        return f"file outside data.dir {data_dir}: give its path relative to data.dir"
    if not os.path.isfile(os.path.join(data_dir, file)):
        return f"file not found in data.dir {data_dir}"
    if not labels and task == "single_label":
        return "empty label"
    split = row.get("split", "").strip()
    if split not in ("", *SPLITS):
        return f"unknown split {split!r}; expected train, val, test or empty"
    return None


def drop_repeated_rows(rows, path):
    """A file listed twice with the same labels is kept once (the repeat is reported, not
    counted as bad); with other labels (or another split or group), every row of it is left
    out and reported as bad. Returns the rows, the repeats and the conflicting rows."""
    repeats = rows.duplicated(keep="first")
    repeated = [(file, f"{path}: listed again with the same labels: the file is kept once")
                for file in rows.loc[repeats, "file"]]
    rows = rows[~repeats]
    conflicts = rows["file"].duplicated(keep=False)
    conflicting = [(file, f"{path}: listed more than once with different labels, split or group")
                   for file in rows.loc[conflicts, "file"]]
    return rows[~conflicts].reset_index(drop=True), repeated, conflicting
