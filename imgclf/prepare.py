"""The originals named by the split's manifest, decoded once as RGB at one resolution into
uint8 arrays (<output>/<split>/images.npy) that tf.data reads batch by batch.

Each file's bytes are checked against the sha256 the split recorded: a file changed since
the split stops the run (its split may no longer be what the manifest says).
"""
import csv
import functools
import hashlib
import io
import json
import multiprocessing
import os
import shutil

import numpy as np
from tqdm import tqdm

from imgclf.arrays import row_writer
from imgclf.images import pixel_count, try_load_image
from imgclf.errors import UserError, interactive
from imgclf.manifest import SPLITS, read_manifest

CHANGED = "changed since the split"


def load_checked(item, size):
    """(pixels, None), or (None, reason) for a file that cannot be read; a file whose bytes
    are not those the manifest recorded gives (None, CHANGED)."""
    path, digest = item
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return None, f"{CHANGED}: {type(error).__name__}: {error}"
    if hashlib.sha256(data).hexdigest() != digest:
        return None, f"{CHANGED}: its content hash differs from the manifest's"
    return try_load_image(io.BytesIO(data), size)


def label_array(rows, classes, multi_label):
    """Class indices (int32), or one 0/1 column per label (uint8) for multi_label."""
    if not multi_label:
        return np.asarray([classes.index(labels[0]) for labels in rows["labels"]], np.int32)
    hot = np.zeros((len(rows), len(classes)), np.uint8)
    for row, labels in enumerate(rows["labels"]):
        hot[row, [classes.index(name) for name in labels]] = 1
    return hot


def prepare_split(items, labels, folder, size, pool, seen):
    """Decode items [(path, sha256)] into folder/images.npy, labels.npy, files.txt, written
    image by image so memory stays flat. An image whose pixels equal one already kept in
    another split (`seen`: pixel hash -> (folder, path), updated here) is left out, so no
    test image leaks into training. Returns [(path, reason)] of unreadable and duplicates."""
    os.makedirs(folder, exist_ok=True)
    kept, files, unreadable, duplicates = [], [], [], []
    decoded = pool.imap(functools.partial(load_checked, size=size), items, chunksize=16)
    progress = tqdm(decoded, total=len(items), desc=os.path.basename(folder), unit="img",
                    disable=not interactive())
    with row_writer(os.path.join(folder, "images.npy"), np.uint8, (size, size, 3),
                    len(items)) as write:
        for row, ((path, _), (pixels, reason)) in enumerate(zip(items, progress)):
            if reason and reason.startswith(CHANGED):
                raise UserError(f"{path} {reason}; run dvc repro (the split stage reruns), "
                                "or restore the file")
            if pixels is None:
                unreadable.append((path, reason))
                continue
            digest = hashlib.sha1(pixels.tobytes()).hexdigest()
            first = seen.setdefault(digest, (folder, path))
            if first[0] != folder:
                duplicates.append((path, f"same pixels as {first[1]}: left out"))
                continue
            write(pixels[None])
            kept.append(row)
            files.append(path)
    np.save(os.path.join(folder, "labels.npy"), labels[kept])
    with open(os.path.join(folder, "files.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(f"{file}\n" for file in files))
    return unreadable, duplicates


def decode_workers(paths, cpus=None, available=None):
    """As many decoding processes as cores, but no more than half the free memory (bytes,
    default: psutil's reading) holds at the largest image's full size, 4 bytes a pixel: a
    PNG is decoded whole before it is reduced (images.reduced)."""
    import psutil

    largest = max((pixel_count(path) for path in paths), default=0)
    budget = (psutil.virtual_memory().available if available is None else available) // 2
    return max(1, min(cpus or os.cpu_count(), budget // max(4 * largest, 1)))


def prepare_splits(rows, classes, data_dir, folder, size, separator, processes):
    """Each split of the manifest's rows into folder/<split>/; counts per split and the
    unreadable files and the cross-split duplicates left out."""
    counts, unreadable, duplicates, seen = {}, [], [], {}
    processes = processes or decode_workers(os.path.join(data_dir, file) for file in rows["file"])
    # spawn, not fork: the parent may have TensorFlow's threads loaded (params validation).
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for split in SPLITS:
            members = rows[rows["split"] == split]
            if members.empty:
                continue
            items = [(os.path.join(data_dir, file), digest)
                     for file, digest in zip(members["file"], members["sha256"])]
            labels = label_array(members, classes, separator is not None)
            bad, same = prepare_split(items, labels, os.path.join(folder, split), size, pool, seen)
            unreadable, duplicates = unreadable + bad, duplicates + same
            counts[split] = len(items) - len(bad) - len(same)
    return counts, unreadable, duplicates


def prepare(split_dir, data_dir, output, size, max_unreadable=1.0, separator=None,
            processes=None):
    """Every split of split_dir's manifest, read from data_dir, into output. separator: the
    labels' (multi_label), or None for one class per image. Returns counts per split and
    the files left out; more than max_unreadable unreadable (a fraction) is an error."""
    with open(os.path.join(split_dir, "classes.json"), encoding="utf-8") as f:
        classes = json.load(f)
    rows = read_manifest(split_dir, separator)
    tmp = output + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        counts, unreadable, duplicates = prepare_splits(rows, classes, data_dir, tmp, size,
                                                        separator, processes)
        shutil.copy(os.path.join(split_dir, "classes.json"), tmp)
        with open(os.path.join(tmp, "skipped.csv"), "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("file", "reason"), *unreadable, *duplicates])
    except BaseException:  # a full disk, Ctrl-C, a changed file: no half-written copy left
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(counts.values()) + len(unreadable) + len(duplicates)
    if len(unreadable) > max_unreadable * total:
        for split in counts:  # the list stays for the message; the arrays (maybe GBs) go
            os.remove(os.path.join(tmp, split, "images.npy"))
        raise UserError(f"{len(unreadable)} of {total} images could not be read, more than "
                        f"preprocess.max_unreadable ({max_unreadable:g}); they are listed in "
                        f"{tmp}/skipped.csv")
    shutil.rmtree(output, ignore_errors=True)
    os.replace(tmp, output)
    return counts, unreadable + duplicates
