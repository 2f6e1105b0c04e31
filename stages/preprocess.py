"""preprocess: decode every image of data/split once, as RGB at preprocess.resolution, into
uint8 arrays (data/prepared/<split>/images.npy) that tf.data reads batch by batch.

Backbone-independent on purpose: the model resizes to its own input size and applies its
own preprocess_input, so changing the backbone never reruns this stage.
"""
import csv
import functools
import hashlib
import json
import os
import shutil
import multiprocessing

import numpy as np
from tqdm import tqdm

from imgclf import params as params_lib
from imgclf.arrays import row_writer
from imgclf.dataset import SPLITS, list_images, try_load_image
from imgclf.errors import UserError, interactive, run_stage

SOURCE = "data/split"
OUTPUT = "data/prepared"


def prepare_split(items, folder, size, pool, seen):
    """Decode items [(path, label)] into folder/images.npy, labels.npy, files.txt, written
    image by image so memory stays flat. An image whose pixels equal one already kept in
    another split (`seen`: pixel hash -> (folder, path), updated here) is left out, so no
    test image leaks into training. Returns [(path, reason)] of unreadable and duplicates."""
    os.makedirs(folder, exist_ok=True)
    labels, files, unreadable, duplicates = [], [], [], []
    decoded = pool.imap(functools.partial(try_load_image, size=size), [p for p, _ in items], chunksize=16)
    progress = tqdm(decoded, total=len(items), desc=os.path.basename(folder), unit="img",
                    disable=not interactive())
    with row_writer(os.path.join(folder, "images.npy"), np.uint8, (size, size, 3),
                    len(items)) as write:
        for (path, label), (pixels, reason) in zip(items, progress):
            if pixels is None:
                unreadable.append((path, reason))
                continue
            digest = hashlib.sha1(pixels.tobytes()).hexdigest()
            first = seen.setdefault(digest, (folder, path))
            if first[0] != folder:
                duplicates.append((path, f"same pixels as {first[1]}: left out"))
                continue
            write(pixels[None])
            labels.append(label)
            files.append(path)
    np.save(os.path.join(folder, "labels.npy"), np.asarray(labels, dtype=np.int32))
    with open(os.path.join(folder, "files.txt"), "w") as f:
        f.write("".join(f"{file}\n" for file in files))
    return unreadable, duplicates


def prepare(source, output, size, max_unreadable=1.0, processes=None):
    """Every split of source into output; class names from train. Returns counts per split
    and the unreadable files; more than max_unreadable of them (a fraction) is an error."""
    classes, _ = list_images(os.path.join(source, "train"))
    tmp = output + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    counts, unreadable, duplicates, seen = {}, [], [], {}
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
            bad, same = prepare_split(items, os.path.join(tmp, split), size, pool, seen)
            unreadable, duplicates = unreadable + bad, duplicates + same
            counts[split] = len(items) - len(bad) - len(same)
    with open(os.path.join(tmp, "classes.json"), "w") as f:
        json.dump(classes, f)
    with open(os.path.join(tmp, "skipped.csv"), "w", newline="") as f:
        csv.writer(f).writerows([("file", "reason"), *unreadable, *duplicates])
    total = sum(counts.values()) + len(unreadable) + len(duplicates)
    if len(unreadable) > max_unreadable * total:
        raise UserError(f"{len(unreadable)} of {total} images could not be read, more than "
                        f"preprocess.max_unreadable ({max_unreadable:g}); they are listed in "
                        f"{tmp}/skipped.csv")
    shutil.rmtree(output, ignore_errors=True)
    os.replace(tmp, output)
    return counts, unreadable + duplicates


def main():
    params = params_lib.load()
    size = params["preprocess"]["resolution"]
    counts, skipped = prepare(SOURCE, OUTPUT, size, params["preprocess"]["max_unreadable"])
    return (f"preprocess: {counts} images at {size}x{size} -> {OUTPUT}/; {len(skipped)} "
            f"unreadable or duplicate file(s) left out (listed in {OUTPUT}/skipped.csv)")


if __name__ == "__main__":
    run_stage(main)
