"""features: the frozen backbone's forward pass over the train and val images, cached.

data/features/<split>.npy holds the backbone's feature maps (float16, before pooling, so
every head.pooling choice can be trained from them), <split>_labels.npy their labels.
The train split can be passed augment.* views features.augmented_views extra times.
"""
import os
import shutil
import time

import numpy as np
from tqdm import tqdm

from imgclf import compute
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.arrays import read_rows, row_writer
from imgclf.augment import augmentation
from imgclf.dataset import batches, read_split
from imgclf.errors import UserError, interactive, run_stage
from imgclf.files import replaced_when_done, write_json
from imgclf.training import set_seed

SOURCE = "data/prepared"
OUTPUT = "data/features"
METRICS = "metrics/features.json"


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
    the first pass is unaugmented, the others go through augment (seeded per view)."""
    shape = tuple(forward.get_concrete_function().structured_outputs.shape[1:])
    progress = tqdm(total=len(labels) * views, desc="features", unit="img", disable=not interactive())
    with row_writer(path, np.float16, shape, len(labels) * views) as write:
        for view in range(views):
            dataset = batches(images, labels, batch_size, seed + view,
                              augment=augment if view else None)
            for x, _ in dataset:
                progress.update(len(x))
                write(float16_rows(forward(x).numpy(), path))
    progress.close()
    labels = np.asarray(labels)  # class indices, or 0/1 rows (multi_label)
    return np.tile(labels, (views, *[1] * (labels.ndim - 1)))


def main():
    params = params_lib.load()
    _, jit_compile = compute.apply(params["compute"])  # one device: see README, GPUs
    set_seed(params["seed"], compute.deterministic_ops(params["compute"]["deterministic"]))
    start = time.perf_counter()
    extractor = model_lib.feature_extractor(params["model"], params["weights"],
                                            params_lib.input_size(params),
                                            params_lib.backbone_args(params))
    augment = augmentation(params["augment"])
    views = {"train": 1 + params["features"]["augmented_views"], "val": 1}
    counts = {}
    splits = {split: read_split(SOURCE, split) for split in views}
    forward = traced_forward(extractor, splits["train"][0].shape[1:], jit_compile)
    from_scratch = params["weights"] == "none"
    with replaced_when_done(OUTPUT) as tmp:
        os.makedirs(tmp)
        for split, count in views.items():
            images, labels, _ = splits[split]
            path = os.path.join(tmp, f"{split}.npy")
            if from_scratch:
                # A random backbone's features carry nothing to train a head on: the
                # arrays are left empty (their shape is what transfer builds the head
                # from), and finetune trains the whole network from scratch.
                count, labels = 0, labels[:0]
            out_labels = extract(forward, images, labels, params["features"]["batch_size"],
                                 count, path, augment, params["seed"])
            np.save(os.path.join(tmp, f"{split}_labels.npy"), out_labels.astype(np.int32))
            counts[split] = len(out_labels)
            if not from_scratch:
                check_signal(np.load(path, mmap_mode="r"), path)
        # The class names travel with the features, so transfer needs nothing else.
        shutil.copy(os.path.join(SOURCE, "classes.json"), tmp)
    write_json(METRICS, {"seconds": round(time.perf_counter() - start, 1)})
    shape = tuple(extractor.output.shape[1:])
    if from_scratch:
        return (f"features: weights: none, so nothing is cached (random features carry no "
                f"signal); finetune trains the whole {params['model']} from scratch")
    return (f"features: {params['model']} feature maps {shape} of {counts} images "
            f"({views['train'] - 1} augmented view(s) of train) -> {OUTPUT}/")


if __name__ == "__main__":
    run_stage(main)
