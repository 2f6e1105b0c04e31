"""split: data.dir -> data/split/{train,val,test}/<class>/, seeded ratio split per class.

A data.dir that already has train/ and val/ (and optionally test/) is copied as it is.
"""
import os
import shutil

import splitfolders

from imgclf import params as params_lib
from imgclf.dataset import SPLITS, list_images
from imgclf.errors import UserError, run_stage

OUTPUT = "data/split"


def is_presplit(data_dir):
    return all(os.path.isdir(os.path.join(data_dir, name)) for name in ("train", "val"))


def check_source(data_dir):
    """Stop before any copying when data.dir cannot give a classifier anything to learn."""
    if not os.path.isdir(data_dir):
        raise UserError(f"data.dir {data_dir!r} is not a folder; set data.dir in params.yaml "
                        "to a folder of <class>/<image> subfolders")
    folders = [os.path.join(data_dir, s) for s in SPLITS] if is_presplit(data_dir) else [data_dir]
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        classes, items = list_images(folder)
        counted = {name: 0 for name in classes}
        for _, label in items:
            counted[classes[label]] += 1
        usable = [name for name, n in counted.items() if n]
        if len(usable) < 2:
            raise UserError(f"{folder} has {len(usable)} class folder(s) with images; "
                            "a classifier needs at least 2 (<class>/<image> subfolders)")


def split_folder(data_dir, output, ratios, seed):
    """Copy data_dir into output/{train,val,test}; returns the layout it found."""
    check_source(data_dir)
    tmp = output + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if is_presplit(data_dir):
        for name in SPLITS:
            if os.path.isdir(os.path.join(data_dir, name)):
                shutil.copytree(os.path.join(data_dir, name), os.path.join(tmp, name))
        layout = "presplit"
    else:
        splitfolders.ratio(data_dir, output=tmp, seed=seed, ratio=ratios)
        layout = "ratio"
    shutil.rmtree(output, ignore_errors=True)
    os.replace(tmp, output)
    return layout


def main():
    params = params_lib.load()
    split = params["split"]
    ratios = (split["train"], split["val"], split["test"]) if split["test"] else (
        split["train"], split["val"])
    layout = split_folder(params["data"]["dir"], OUTPUT, ratios, params["seed"])
    counts = {name: len(list_images(os.path.join(OUTPUT, name))[1])
              for name in SPLITS if os.path.isdir(os.path.join(OUTPUT, name))}
    print(f"split: {layout} split of {params['data']['dir']} -> {OUTPUT}/: {counts}")


if __name__ == "__main__":
    run_stage(main)
