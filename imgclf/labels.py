"""Where the labels come from: class folders, train/ val/ [test/] of them, or a CSV table.

Each source becomes the same table, one row per image: file (relative to data.dir, with
forward slashes), labels (a tuple of names), split ("" = to be assigned) and group ("" = the
image alone), plus [(file, reason)] of what was left out.
"""
import os
import unicodedata

from imgclf.images import IMAGE_EXTENSIONS, image_files, linked_folders
from imgclf.manifest import SPLITS
from imgclf.errors import UserError

COLUMNS = ["file", "labels", "split", "group"]


def table(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=COLUMNS)


def relative(path, data_dir):
    return os.path.relpath(path, data_dir).replace(os.sep, "/")


# The folder names of the split layouts that tools export, in any case: Roboflow writes
# train/ valid/ test/, Ultralytics and many Kaggle sets train/ test/, FiftyOne and TFDS
# train/ validation/ test/.
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}


def class_name(text, where):
    """A label as the pipeline keeps it: NFC (café typed and café from a Mac's file system
    are one class); a control character (a newline inside a quoted CSV cell) stops the run,
    since labels.txt holds one name per line and would shift every later class index."""
    name = unicodedata.normalize("NFC", text)
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise UserError(f"{where}: label {name!r} holds the control character {control!r}; "
                        "labels must be one line of printable text")
    return name


def split_of(name):
    """The split a folder name (or a CSV's split cell) means, or None."""
    return SPLIT_NAMES.get(name.strip().lower())


def split_folders(data_dir):
    """{split: folder name} when data_dir is pre-split (a train folder and a val or test
    folder, under any name of SPLIT_NAMES), else {}; two folders of one split are an error."""
    found = {}
    for name in class_folders(data_dir):
        split = split_of(name)
        if split and split in found:
            raise UserError(f"data.dir {data_dir!r} has two {split} folders, {found[split]}/ "
                            f"and {name}/; merge them or rename one")
        if split:
            found[split] = name
    return found if "train" in found and len(found) > 1 else {}


def unused_folders(data_dir, folders):
    """The top-level folders of a pre-split data_dir that are not split folders."""
    return [name for name in class_folders(data_dir) if folders and not split_of(name)]


def describe_layout(data_dir):
    """The split stage's words for data_dir's layout, naming the folders it does not use."""
    folders = split_folders(data_dir)
    if not folders:
        return "class folders"
    names = " ".join(f"{folders[split]}/" for split in SPLITS if split in folders)
    carved = "" if "val" in folders else f", val carved out of {folders['train']}/"
    unused = ", ".join(f"{name}/" for name in unused_folders(data_dir, folders))
    return f"pre-split folders {names}{carved}" + (f"; not a split, not used: {unused}"
                                                   if unused else "")


def class_folders(folder):
    """The folders in folder, but hidden ones and links (linked_folders: listed, skipped)."""
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."))


def from_folders(data_dir):
    """<class>/<image> below data_dir, or below each of its split folders (split_folders: a
    given split; without a val folder, train's rows get split "" and val is carved out of
    them). Images in nested subfolders of a class belong to it; empty class folders, other
    top-level folders of a pre-split layout and images outside any class are reported.
    Returns the table, what was left out and the split folders found."""
    if not os.path.isdir(data_dir):
        raise UserError(f"data.dir {data_dir!r} is not a folder; set data.dir in params.yaml "
                        "to a folder of <class>/<image> subfolders")
    folders = split_folders(data_dir)
    roots = {"": data_dir}
    if folders:
        # Without a val folder, train's rows get no split: the split carves val out of them.
        carve = "val" not in folders
        roots = {"" if carve and split == "train" else split: os.path.join(data_dir, name)
                 for split, name in folders.items()}
    skipped = [(os.path.join(data_dir, name), "not a split folder (train, val, valid, "
                "validation, test, testing): left out")
               for name in unused_folders(data_dir, folders)]
    skipped += [(path, "link to a folder: left out (DVC does not look inside it, so it "
                "would not see its images change); move or copy the folder in")
                for path in linked_folders(data_dir)]
    tops = ([data_dir] if folders else []) + list(roots.values())
    skipped += [(path, "image outside any class folder: left out")
                for root in tops for path in loose_images(root)]
    rows = []
    for split, root in roots.items():
        for name in class_folders(root):
            files = list(image_files(os.path.join(root, name)))
            if not files:
                skipped.append((os.path.join(root, name), "empty class folder: left out"))
            label = class_name(name, f"class folder {os.path.join(root, name)!r}")
            rows += [(relative(path, data_dir), (label,), split, "") for path in files]
    return table(rows), skipped, folders


def loose_images(folder):
    """Image files directly in folder, where only class folders belong."""
    return sorted(entry.path for entry in os.scandir(folder) if entry.is_file()
                  and not entry.name.startswith(".")
                  and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS)


def from_csv(path, data_dir, task, separator, max_bad_rows=1.0):
    """The rows of a CSV of file, label[, split][, group]; bad rows reported, and an error
    when they are more than max_bad_rows (a fraction) of all. The separator splits a label
    cell in multi_label only: in single_label a cell is one label ("golden retriever")."""
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
        labels = label_names(row["label"], separator if task == "multi_label" else None, where)
        file = posix_path(row["file"])
        reason = bad_row(row, file, labels, data_dir, task)
        if reason:
            bad.append((row["file"], f"{where}: {reason}"))
            continue
        split = split_of(row.get("split", "")) or ""
        kept.append((file, labels, split, row.get("group", "").strip()))
    kept, repeated, conflicting = drop_repeated_rows(table(kept), path)
    bad += conflicting
    if len(bad) > max_bad_rows * len(rows):
        file, reason = bad[0]
        raise UserError(f"{len(bad)} of {len(rows)} rows of {path} are bad, more than "
                        f"data.max_bad_rows ({max_bad_rows:g}); the first: {reason} ({file!r})")
    return kept, bad + repeated


def label_names(cell, separator, where):
    """A label cell's names: split on the separator (None: the cell is one label, spaces
    and all), stripped, each once, sorted; class_name's rules (where: the row)."""
    names = cell.split(separator) if separator else [cell]
    return tuple(sorted({class_name(name.strip(), where) for name in names} - {""}))


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
    if split and not split_of(split):
        return f"unknown split {split!r}; expected train, val (valid), test or empty"
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
