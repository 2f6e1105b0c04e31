"""Which split each image goes to, recorded in a manifest: no image is copied.

The result is written by imgclf.manifest.

Single-label images without groups are split per class as split-folders' ratio() does
(sort, seed, shuffle, cut at int(ratio * n)): tests compare the two file by file. With
groups, or several labels per image, whole groups are split by iterative stratification
(the iterative-stratification package), so each label keeps about its share in every split.
"""
import os
import random
import stat

import numpy as np

from imgclf.errors import UserError
from imgclf.manifest import SPLITS, file_digest, write_split


def drop_duplicates(rows, data_dir):
    """rows with a sha256 column, one row per content: of files with the same bytes the
    first is kept (a given train split before val and test, then by file name), so the same
    image can never be in train and test. Returns the rows and [(path, reason)]."""
    rank = rows["split"].map({"train": 0, "val": 1, "test": 2, "": 3})
    rows = rows.assign(rank=rank).sort_values(["rank", "file"], kind="stable")
    rows = rows.drop(columns="rank").reset_index(drop=True)
    digests = [digest_or_reason(data_dir, file) for file in rows["file"]]
    rows["sha256"] = [digest for digest, _ in digests]
    skipped = [(os.path.join(data_dir, file), reason)
               for file, (_, reason) in zip(rows["file"], digests) if reason]
    rows = rows[rows["sha256"] != ""].reset_index(drop=True)
    first = rows.drop_duplicates("sha256").set_index("sha256")["file"]
    repeated = rows.duplicated("sha256")
    for file, digest in zip(rows.loc[repeated, "file"], rows.loc[repeated, "sha256"]):
        original = os.path.join(data_dir, first[digest])
        skipped.append((os.path.join(data_dir, file), f"same bytes as {original}: left out"))
    return rows[~repeated].reset_index(drop=True), skipped


def excluded_paths(exclude):
    """data.exclude's entries: its list, or the lines of its file (blank lines and #
    comments skipped; a byte-order mark, as Notepad writes one, ignored)."""
    if isinstance(exclude, str):
        try:
            with open(exclude, encoding="utf-8-sig", newline="\n") as f:
                lines = [line.strip() for line in f.read().split("\n")]
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"data.exclude {exclude!r} cannot be read as UTF-8 text "
                            f"({type(error).__name__}); expected one image path per line") from None
        return [line for line in lines if line and not line.startswith("#")]
    return list(exclude)


def leave_out_excluded(rows, skipped, exclude, data_dir):
    """rows without the images data.exclude names, and [(path, reason)] for them. An entry
    is a path as given or relative to data.dir (the audit and skipped lists print paths that
    start with it), either slash. One that names no image of data.dir is an error (a typo
    would silently exclude nothing)."""
    from imgclf.labels import posix_path

    known = set(rows["file"])
    left_out = {posix_path(path) for path, _ in skipped}
    top = posix_path(data_dir)
    chosen = set()
    for entry in excluded_paths(exclude):
        path = posix_path(entry)
        relative = path[len(top) + 1:] if path.startswith(top + "/") else path
        if relative in known:
            chosen.add(relative)
        elif not {path, f"{top}/{relative}"} & left_out:
            raise UserError(f"data.exclude names {entry!r}, which is not an image of data.dir "
                            f"{data_dir!r}; expected paths as data/split/manifest.csv or the "
                            "audit lists them")
    dropped = rows["file"].isin(chosen)
    reasons = [(os.path.join(data_dir, file), "in data.exclude: left out")
               for file in rows.loc[dropped, "file"]]
    return rows[~dropped].reset_index(drop=True), reasons


def digest_or_reason(data_dir, file):
    """(sha256 of the file's bytes, None), or ("", why it cannot be used): a name that the
    UTF-8 manifest cannot hold or that a line break would cut in two (files.txt has a
    name per line), or a file that cannot be read (a broken link, no permission)."""
    try:
        file.encode("utf-8")
    except UnicodeEncodeError:
        return "", "file name is not valid UTF-8: left out (rename the file)"
    if file.splitlines() != [file]:
        return "", "file name holds a line break or another line separator: left out (rename it)"
    try:
        if not stat.S_ISREG(os.stat(os.path.join(data_dir, file)).st_mode):
            return "", "not a regular file (a pipe or a device): left out"
        return file_digest(os.path.join(data_dir, file)), None
    except OSError as error:
        return "", f"cannot be read ({type(error).__name__}: {error.strerror}): left out"


def minimum_per_class(ratios):
    """The fewest images a class needs for every split to get at least one."""
    for n in range(1, 10_000):
        train, val = int(ratios[0] * n), int(ratios[1] * n)
        if train >= 1 and val >= 1 and (len(ratios) < 3 or n - train - val >= 1):
            return n
    raise UserError(f"split ratios {ratios} leave a split empty")


def ratio_split(rows, ratios, seed, given=False):
    """{row index: split}: per class, files sorted, shuffled with `seed`, cut at
    int(ratio * n) as split-folders does, the rest going to the last split. given: other
    rows have a split given (the count in a message is then of the rows to split)."""
    smallest = minimum_per_class(ratios)
    assignment = {}
    for (name,), members in rows.groupby("labels"):
        if len(members) < smallest:
            counted = "image(s) without a given split" if given else "image(s)"
            raise UserError(f"class {name!r} has {len(members)} {counted}; split "
                            f"{'/'.join(map(str, ratios))} needs at least {smallest} per class "
                            "(add images, or change split.*)")
        order = sorted(zip(members["file"], members.index))
        random.seed(seed)
        random.shuffle(order)
        train_end = int(ratios[0] * len(order))
        val_end = train_end + int(ratios[1] * len(order)) if len(ratios) == 3 else len(order)
        for position, (_, index) in enumerate(order):
            split = "train" if position < train_end else "val" if position < val_end else "test"
            assignment[index] = split
    return assignment


def units(rows):
    """Each row's unit, the thing that is split whole: its group, or the image alone."""
    return np.where(rows["group"] != "", "group:" + rows["group"], "file:" + rows["file"])


def given_unit_splits(rows, unit):
    """{unit: split} of units with a split given in some of their rows; a group given two
    splits is an error."""
    given = {}
    for key, split, file in zip(unit, rows["split"], rows["file"]):
        if split and given.setdefault(key, (split, file))[0] != split:
            raise UserError(f"group {key[6:]!r} is given two splits ({given[key][1]} in "
                            f"{given[key][0]}, {file} in {split}); a group stays in one split")
    return {key: split for key, (split, _) in given.items()}


def stratified_split(rows, ratios, seed, classes):
    """{row index: split}: whole units (groups), split by iterative stratification of the
    labels they contain, so that each label keeps about its share in every split."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    unit = units(rows)
    given = given_unit_splits(rows, unit)
    free = sorted(set(unit) - set(given))
    has_label = {key: np.zeros(len(classes), np.int8) for key in free}
    for key, labels in zip(unit, rows["labels"]):
        for name in labels if key in has_label else ():
            has_label[key][classes.index(name)] = 1
    smallest = minimum_per_class(ratios)
    if free and len(free) < smallest:
        raise UserError(f"{len(free)} group(s) to split; split {'/'.join(map(str, ratios))} "
                        f"needs at least {smallest}")
    chosen = dict(given)
    remaining = np.arange(len(free))
    y = np.stack([has_label[key] for key in free]) if free else None
    for split, share in [("test", ratios[2] if len(ratios) == 3 else 0), ("val", ratios[1])]:
        if not share or not len(remaining):
            continue
        fraction = share / (share + ratios[0]) if split == "val" else share
        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction,
                                                    random_state=seed)
        keep, taken = next(splitter.split(np.zeros(len(remaining)), y[remaining]))
        chosen.update({free[i]: split for i in remaining[taken]})
        remaining = remaining[keep]
    chosen.update({free[i]: "train" for i in remaining})
    return dict(zip(rows.index, (chosen[key] for key in unit)))


def check_classes(rows, classes, task, source, assigned):
    """Stop when the split cannot train: too few classes, a class without a train image, an
    empty train or val split (or test, when the split assigned it: `assigned`, the ratios)."""
    if len(classes) < (2 if task == "single_label" else 1):
        raise UserError(f"{source} has {len(classes)} class(es) with images; a classifier "
                        "needs at least 2 (<class>/<image> subfolders, or labels in data.labels)")
    in_train = {name for labels in rows.loc[rows["split"] == "train", "labels"] for name in labels}
    missing = [name for name in classes if name not in in_train]
    if missing:  # assigned: a class only in given val/test splits stopped assign_splits
        count = sum(missing[0] in labels for labels in rows["labels"])
        raise UserError(f"{source}: no train image has label {missing[0]!r} ({count} image(s) "
                        "have it, in groups or given splits that the split put elsewhere); add "
                        "images of it, or change seed or split.*")
    needed = ("train", "val", "test") if assigned and len(assigned) == 3 else ("train", "val")
    for split in needed:
        if not (rows["split"] == split).any():
            raise UserError(f"{source}: the {split} split is empty; give it images, or set split.*")


def check_separator(classes, task, separator):
    """multi_label: a class folder's name with the separator in it would be read back as
    several labels from the manifest."""
    joined = [name for name in classes if separator in name]
    if task == "multi_label" and joined:
        raise UserError(f"label {joined[0]!r} contains data.label_separator {separator!r}; "
                        "set data.label_separator to a character no label contains")


def assign_splits(rows, ratios, seed, task, source):
    """rows with every split filled in (given ones kept), and the label names in order."""
    classes = sorted({name for labels in rows["labels"] for name in labels})
    if len(classes) < 2 and task == "single_label":
        check_classes(rows, classes, task, source, None)
    trainable = rows["split"].isin(["train", ""])
    reachable = {name for labels in rows.loc[trainable, "labels"] for name in labels}
    unreachable = sorted(set(classes) - reachable)
    if unreachable:  # only in a given val or test split: no seed or ratio can fix it
        raise UserError(f"{source}: val/test have classes that train does not: "
                        f"{', '.join(unreachable)}")
    todo = rows["split"] == ""
    if todo.any():
        if task == "single_label" and not (rows["group"] != "").any():
            assignment = ratio_split(rows[todo], ratios, seed, given=not todo.all())
        else:
            assignment = stratified_split(rows, ratios, seed, classes)
        rows = rows.assign(split=[assignment.get(i, split) for i, split in rows["split"].items()])
    check_classes(rows, classes, task, source, ratios if todo.any() else None)
    return rows, classes


def val_carving_ratios(ratios):
    """The (train, val) ratios that carve a val split out of a given train split while
    keeping split.train : split.val (a given test split stays as it is)."""
    train, val = ratios[0], ratios[1]
    # Rounded: 0.6 / 0.8 is 0.7499999999999999, and int(0.7499999999999999 * 20) is 14.
    return round(train / (train + val), 12), round(val / (train + val), 12)


def split_dataset(data_dir, output, ratios, seed, labels=None, task="single_label",
                  separator=" ", max_bad_rows=1.0, exclude=()):
    """Read the labels (class folders, or the CSV `labels`), leave out what data.exclude
    names and duplicates, assign splits, write the manifest; returns {split: image count}
    and [(file, reason)] left out.
    Everything that would stop the run is found before anything is written."""
    from imgclf.labels import from_csv, from_folders

    if labels:
        rows, skipped = from_csv(labels, data_dir, task, separator, max_bad_rows)
    else:
        rows, skipped, folders = from_folders(data_dir)
        if folders and "val" not in folders:
            ratios = val_carving_ratios(ratios)
    rows, excluded = leave_out_excluded(rows, skipped, exclude, data_dir)
    skipped = skipped + excluded
    rows, duplicates = drop_duplicates(rows, data_dir)
    rows, classes = assign_splits(rows, ratios, seed, task, labels or data_dir)
    check_separator(classes, task, separator)
    write_split(output, rows, classes, skipped + duplicates, separator)
    counts = rows["split"].value_counts()
    return {split: int(counts[split]) for split in SPLITS if split in counts}, skipped + duplicates
