"""The feature cache: the frozen backbone's feature maps of the train and val images.

<folder>/<split>.npy holds them (float16, before pooling, so every head.pooling choice can
be trained from them), <split>_labels.npy their labels, classes.json the class names and
cache.json whether anything is cached at all (weights: none caches nothing: random features
carry no signal, and finetune trains the whole network from scratch).
"""
import os
import shutil

import numpy as np
from tqdm import tqdm

from imgclf.arrays import read_rows, row_writer
from imgclf.dataset import batches
from imgclf.errors import UserError, interactive
from imgclf.files import read_json, write_json


def traced_forward(extractor, image_shape, jit_compile=False):
    """The extractor as one graph for batches of any count of image_shape images, traced
    once (called eagerly, the model pays Python's price for every layer of every batch)."""
    import tensorflow as tf

    return tf.function(lambda x: extractor(x, training=False), jit_compile=jit_compile,
                       input_signature=[tf.TensorSpec([None, *image_shape], tf.float32)])


def float16_rows(rows, path):
    """rows in float16, the cache's type; a value beyond its range would become inf."""
    largest = float(np.abs(rows).max(initial=0))
    if not largest <= np.finfo(np.float16).max:  # also catches NaN
        raise UserError(f"{path}: the backbone's feature maps reach {largest:.3g}, beyond "
                        f"float16's {np.finfo(np.float16).max:.0f}; this backbone cannot be "
                        "cached as features, check its weights and preprocessing")
    return rows.astype(np.float16)


def check_signal(features, path, rows_checked=256):
    """A UserError when the cached features cannot tell images apart: all but zero, or the
    same for every image (checked on up to rows_checked rows spread over the array)."""
    picks = np.linspace(0, len(features) - 1, min(rows_checked, len(features))).astype(int)
    rows = read_rows(features, np.unique(picks)).astype(np.float32)
    largest = float(np.abs(rows).max(initial=0))
    spread = float(rows.std(axis=0).max(initial=0))
    if largest < 1e-3 or spread < 1e-3 * largest:
        raise UserError(f"{path}: the backbone's feature maps carry no signal (largest value "
                        f"{largest:.3g}, largest spread across images {spread:.3g}); with "
                        "random weights use weights: none, which trains the whole network, "
                        "else check weights and preprocessing")


def extract(forward, images, labels, batch_size, views, path, augment=None, seed=0):
    """Write forward's outputs over `views` passes of images to path (.npy) batch by batch;
    the first pass is unaugmented, the others go through augment (seeded per view).
    Returns the labels of the rows written."""
    shape = tuple(forward.get_concrete_function().structured_outputs.shape[1:])
    total = len(labels) * views
    progress = tqdm(total=total, desc="features", unit="img", disable=not interactive())
    with row_writer(path, np.float16, shape, total) as write:
        for view in range(views):
            dataset = batches(images, labels, batch_size, seed + view,
                              augment=augment if view else None)
            for x, _ in dataset:
                progress.update(len(x))
                write(float16_rows(forward(x).numpy(), path))
    progress.close()
    labels = np.asarray(labels)  # class indices, or 0/1 rows (multi_label)
    return np.tile(labels, (views, *[1] * (labels.ndim - 1)))


def write_cache(folder, forward, splits, views, batch_size, augment, seed, classes_file):
    """Cache forward's outputs of each split's (images, labels) in `splits`, views[split]
    passes each, into folder (a new folder); views of 0 cache nothing. Returns the row
    count of each split."""
    os.makedirs(folder)
    counts = {}
    for split, (images, labels) in splits.items():
        path = os.path.join(folder, f"{split}.npy")
        rows = extract(forward, images, labels, batch_size, views[split], path, augment, seed)
        np.save(os.path.join(folder, f"{split}_labels.npy"), rows.astype(np.int32))
        counts[split] = len(rows)
        if views[split]:
            check_signal(np.load(path, mmap_mode="r"), path)
    shutil.copy(classes_file, os.path.join(folder, "classes.json"))
    write_json(os.path.join(folder, "cache.json"), {"cached": int(min(views.values()) > 0)})
    return counts


def is_cached(folder):
    """False when the features stage cached nothing (weights: none)."""
    return bool(read_json(os.path.join(folder, "cache.json"))["cached"])


def load(folder, split):
    """(feature maps, memory-mapped; labels) of one split."""
    return (np.load(os.path.join(folder, f"{split}.npy"), mmap_mode="r"),
            np.load(os.path.join(folder, f"{split}_labels.npy")))
