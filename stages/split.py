"""split: data.dir -> data/split/{train,val,test}/<class>/..., seeded ratio split per class.

The ratio split is split-folders' algorithm (per class: sort, seed, shuffle, cut at
int(ratio * n)), done here so that nested subfolders, hidden files, empty classes and
duplicate files are handled. A data.dir that already has train/ and val/ (and optionally
test/) is used as that split. data.dir is only read. What is left out, and why, is listed in
data/split/skipped.csv.
"""
import csv
import hashlib
import os
import random
import shutil

from imgclf import params as params_lib
from imgclf.dataset import SPLITS, list_images
from imgclf.errors import UserError, run_stage
from imgclf.files import replaced_when_done

OUTPUT = "data/split"


def is_presplit(data_dir):
    return all(os.path.isdir(os.path.join(data_dir, name)) for name in ("train", "val"))


def by_class(folder):
    """{class name: [image paths]} with empty class folders left out, and their report."""
    classes, items = list_images(folder)
    files = {name: [] for name in classes}
    for path, label in items:
        files[classes[label]].append(path)
    empty = [(os.path.join(folder, name), "empty class folder: left out")
             for name, paths in files.items() if not paths]
    return {name: paths for name, paths in files.items() if paths}, empty


def drop_duplicates(files):
    """Keep one copy of files with the same bytes (the first by path), wherever they are,
    so the same image can never be in train and test. Returns kept files and the report."""
    first_with, skipped, kept = {}, [], {}
    for name in files:
        kept[name] = []
        for path in sorted(files[name]):
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            if digest in first_with:
                skipped.append((path, f"same bytes as {first_with[digest]}: left out"))
            else:
                first_with[digest] = path
                kept[name].append(path)
    return kept, skipped


def minimum_per_class(ratios):
    """The fewest images a class needs for every split to get at least one."""
    for n in range(1, 10_000):
        train, val = int(ratios[0] * n), int(ratios[1] * n)
        if train >= 1 and val >= 1 and (len(ratios) < 3 or n - train - val >= 1):
            return n
    raise UserError(f"split ratios {ratios} leave a split empty")


def ratio_split(files, ratios, seed):
    """{split: {class: [paths]}}: per class sorted, shuffled with `seed`, cut at
    int(ratio * n) as split-folders does, the rest going to the last split."""
    smallest = minimum_per_class(ratios)
    for name, paths in files.items():
        if len(paths) < smallest:
            raise UserError(f"class {name!r} has {len(paths)} image(s); split "
                            f"{'/'.join(map(str, ratios))} needs at least {smallest} per class "
                            "(add images, or change split.*)")
    result = {split: {} for split in SPLITS[:len(ratios)]}
    for name, paths in files.items():
        paths = sorted(paths)
        random.seed(seed)
        random.shuffle(paths)
        train_end = int(ratios[0] * len(paths))
        val_end = train_end + int(ratios[1] * len(paths))
        result["train"][name] = paths[:train_end]
        result["val"][name] = paths[train_end:val_end] if len(ratios) == 3 else paths[train_end:]
        if len(ratios) == 3:
            result["test"][name] = paths[val_end:]
    return result


def check_classes(data_dir, train_classes):
    if len(train_classes) < 2:
        raise UserError(f"{data_dir} has {len(train_classes)} class folder(s) with images; a "
                        "classifier needs at least 2 (<class>/<image> subfolders)")


def plan(data_dir, ratios, seed):
    """What goes where, {split: {class: [paths]}}, and [(path, reason)] of what is left out.
    Everything that would stop the run is found here, before any copying."""
    if not os.path.isdir(data_dir):
        raise UserError(f"data.dir {data_dir!r} is not a folder; set data.dir in params.yaml "
                        "to a folder of <class>/<image> subfolders")
    if not is_presplit(data_dir):
        files, empty = by_class(data_dir)
        files, duplicates = drop_duplicates(files)
        check_classes(data_dir, files)
        return ratio_split(files, ratios, seed), empty + duplicates
    layout, empty = {}, []
    for split in SPLITS:
        if os.path.isdir(os.path.join(data_dir, split)):
            layout[split], empty_here = by_class(os.path.join(data_dir, split))
            empty += empty_here
    unknown = sorted({name for split in layout for name in layout[split]} - set(layout["train"]))
    if unknown:
        raise UserError(f"{data_dir}: val/test have classes that train does not: "
                        f"{', '.join(unknown)}")
    kept, duplicates = drop_duplicates(
        {(split, name): paths for split in layout for name, paths in layout[split].items()})
    layout = {split: {name: kept[(split, name)] for name in layout[split]} for split in layout}
    check_classes(data_dir, layout["train"])
    return layout, empty + duplicates


def copy_split(data_dir, layout, skipped, output):
    """Copy the planned files into output/<split>/<class>/<path below the class folder>."""
    with replaced_when_done(output) as tmp:
        for split, classes in layout.items():
            root = os.path.join(data_dir, split) if is_presplit(data_dir) else data_dir
            for name, paths in classes.items():
                for path in paths:
                    target = os.path.join(tmp, split, name, os.path.relpath(path, os.path.join(root, name)))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copy2(path, target)
        with open(os.path.join(tmp, "skipped.csv"), "w", newline="") as f:
            csv.writer(f).writerows([("file", "reason"), *skipped])


def split_folder(data_dir, output, ratios, seed):
    """Plan, then copy; returns {split: image count} and the skipped files with reasons."""
    layout, skipped = plan(data_dir, ratios, seed)
    copy_split(data_dir, layout, skipped, output)
    return {split: sum(map(len, classes.values())) for split, classes in layout.items()}, skipped


def main():
    params = params_lib.load()
    split = params["split"]
    ratios = (split["train"], split["val"], split["test"]) if split["test"] else (
        split["train"], split["val"])
    counts, skipped = split_folder(params["data"]["dir"], OUTPUT, ratios, params["seed"])
    return (f"split: {params['data']['dir']} -> {OUTPUT}/: {counts}; {len(skipped)} left out "
            f"(empty class folders, duplicate files: listed in {OUTPUT}/skipped.csv)")


if __name__ == "__main__":
    run_stage(main)
