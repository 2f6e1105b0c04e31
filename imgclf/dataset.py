"""Prepared splits (data/prepared) -> tf.data batches, augmented on the fly by imgclf.augment."""
import json
import os

import numpy as np

from imgclf.arrays import read_rows
from imgclf.errors import UserError

def is_multi_label(labels):
    """task: multi_label's labels are 0/1 rows, a column per label (imgclf.prepare); one
    label per image is a class index."""
    return np.ndim(labels) == 2


def read_split(prepared_dir, split):
    """A prepared split: images (memory-mapped, not loaded: batches() reads them a batch at
    a time), labels, file names."""
    folder = os.path.join(prepared_dir, split)
    images = np.load(os.path.join(folder, "images.npy"), mmap_mode="r")
    labels = np.load(os.path.join(folder, "labels.npy"))
    # One name per "\n" only: splitlines() would also cut at \x1c, \u2028 and the like.
    with open(os.path.join(folder, "files.txt"), encoding="utf-8", newline="\n") as f:
        files = f.read().split("\n")[:-1]
    return images, labels, files


def read_classes(prepared_dir):
    with open(os.path.join(prepared_dir, "classes.json"), encoding="utf-8") as f:
        return json.load(f)


def has_split(prepared_dir, split):
    return os.path.exists(os.path.join(prepared_dir, split, "labels.npy")) and len(
        np.load(os.path.join(prepared_dir, split, "labels.npy"))) > 0


def evaluation_split(prepared_dir):
    """The split that final scores come from: test, or val when there is no test split."""
    return "test" if has_split(prepared_dir, "test") else "val"


def batches(arrays, labels, batch_size, seed=0, augment=None):
    """A tf.data pipeline over arrays that may be memory-mapped, in file order: only a batch
    at a time is read, so memory does not grow with the dataset. augment is
    imgclf.augment.augmentation's function; its randomness comes from seed and the batch."""
    import tensorflow as tf

    indices = tf.data.Dataset.range(_count(labels)).batch(batch_size).enumerate()
    return _read(indices.map(lambda batch, rows: (rows, _batch_seed(seed, 0, batch))),
                 arrays, labels, augment)


def training_batches(arrays, labels, batch_size, seed, epochs, augment=None):
    """Shuffled batches of every epoch in `epochs` (a range of epoch numbers), back to back:
    fit them with steps_per_epoch. An epoch's order and augmentation are a function of
    (seed, epoch) alone, so a run resumed at epoch k sees the batches an uninterrupted run
    would (tf.data's reshuffle_each_iteration depends on how many epochs this process ran)."""
    import tensorflow as tf

    count = _count(labels)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=_batch_seed(seed, epoch, -1))
        rows = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return rows.map(lambda batch, indices: (indices, _batch_seed(seed, epoch, batch)))

    indices = tf.data.Dataset.range(epochs.start, epochs.stop).flat_map(epoch_batches)
    return _read(indices, arrays, labels, augment)


def _count(labels):
    if len(labels) == 0:
        raise UserError("no examples to make batches from")
    return len(labels)


def _batch_seed(seed, epoch, batch):
    """The stateless seed pair of one batch of one epoch (batch -1: the epoch's order)."""
    import tensorflow as tf

    pair = tf.constant([seed, 0], dtype=tf.int64)
    pair = tf.random.experimental.stateless_fold_in(pair, tf.cast(epoch, tf.int64))
    return tf.random.experimental.stateless_fold_in(pair, tf.cast(batch, tf.int64))


def _read(indices, arrays, labels, augment):
    """(row indices, seed) batches -> (images, labels) batches, augmented if asked. Reads
    sorted rows: sequential on disk."""
    import tensorflow as tf

    item_shape = arrays.shape[1:]
    dtype = tf.as_dtype(arrays.dtype)
    labels = np.asarray(labels, dtype=np.int32)  # class indices, or 0/1 rows (multi_label)

    def gather(rows):
        rows = np.sort(rows)
        return read_rows(arrays, rows), labels[rows]

    def read(rows, seed):
        x, y = tf.numpy_function(gather, [rows], [dtype, tf.int32], stateful=False)
        x.set_shape((None, *item_shape))
        y.set_shape((None, *labels.shape[1:]))
        x = tf.cast(x, tf.float32)
        return (x if augment is None else augment(x, seed)), y

    return indices.map(read, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
