"""preprocess: decode every image of data/split once, as RGB at preprocess.size, into
uint8 arrays (data/prepared/<split>/images.npy) that tf.data reads batch by batch.

Backbone-independent on purpose: the model resizes to its own input size and applies its
own preprocess_input, so changing the backbone never reruns this stage.
"""
import csv
import functools
import json
import os
import shutil
import multiprocessing

import numpy as np

from imgclf import params as params_lib
from imgclf.dataset import SPLITS, list_images, load_image
from imgclf.errors import UserError, run_stage

SOURCE = "data/split"
OUTPUT = "data/prepared"


def _decode(path, size):
    try:
        return load_image(path, size), None
    except Exception as error:  # any file PIL cannot read is reported, not fatal
        return None, f"{type(error).__name__}: {error}".splitlines()[0]


def prepare_split(items, folder, size, pool):
    """Decode items [(path, label)] into folder/images.npy, labels.npy, files.txt, written
    image by image so memory stays flat. Returns [(path, reason)] of skipped files."""
    os.makedirs(folder, exist_ok=True)
    images = np.lib.format.open_memmap(os.path.join(folder, "images.npy"), mode="w+",
                                       dtype=np.uint8, shape=(len(items), size, size, 3))
    kept, labels, files, skipped = 0, [], [], []
    decoded = pool.imap(functools.partial(_decode, size=size), [p for p, _ in items], chunksize=16)
    for (path, label), (pixels, reason) in zip(items, decoded):
        if pixels is None:
            skipped.append((path, reason))
            continue
        images[kept] = pixels
        labels.append(label)
        files.append(path)
        kept += 1
    images.flush()
    del images
    if skipped:  # shrink to the images kept (rare: only when files were unreadable)
        full = np.load(os.path.join(folder, "images.npy"), mmap_mode="r")
        np.save(os.path.join(folder, "images.npy.part"), full[:kept])
        del full
        os.replace(os.path.join(folder, "images.npy.part.npy"), os.path.join(folder, "images.npy"))
    np.save(os.path.join(folder, "labels.npy"), np.asarray(labels, dtype=np.int32))
    with open(os.path.join(folder, "files.txt"), "w") as f:
        f.write("".join(f"{file}\n" for file in files))
    return skipped


def prepare(source, output, size, processes=None):
    """Every split of source into output; class names from train. Returns counts per split."""
    classes, _ = list_images(os.path.join(source, "train"))
    tmp = output + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    counts, skipped = {}, []
    # spawn, not fork: the parent may have TensorFlow's threads loaded (params validation).
    with multiprocessing.get_context("spawn").Pool(processes or os.cpu_count()) as pool:
        for split in SPLITS:
            folder = os.path.join(source, split)
            if not os.path.isdir(folder):
                continue
            split_classes, items = list_images(folder)
            unknown = sorted(set(split_classes) - set(classes))
            if unknown:
                raise UserError(f"{folder} has classes that train does not: {', '.join(unknown)}")
            items = [(path, classes.index(split_classes[label])) for path, label in items]
            skipped += prepare_split(items, os.path.join(tmp, split), size, pool)
            counts[split] = len(items) - sum(1 for p, _ in skipped if p.startswith(folder + os.sep))
    with open(os.path.join(tmp, "classes.json"), "w") as f:
        json.dump(classes, f)
    with open(os.path.join(tmp, "skipped.csv"), "w", newline="") as f:
        csv.writer(f).writerows([("file", "reason"), *skipped])
    shutil.rmtree(output, ignore_errors=True)
    os.replace(tmp, output)
    return counts, skipped


def main():
    params = params_lib.load()
    size = params["preprocess"]["size"]
    counts, skipped = prepare(SOURCE, OUTPUT, size)
    print(f"preprocess: {counts} images at {size}x{size} -> {OUTPUT}/; "
          f"{len(skipped)} unreadable file(s) skipped (listed in {OUTPUT}/skipped.csv)")


if __name__ == "__main__":
    run_stage(main)
