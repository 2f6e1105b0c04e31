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
from imgclf.arrays import row_writer
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


def extract(forward, images, labels, batch_size, views, path, augment=None, seed=0):
    """Write forward's outputs over `views` passes of images to path (.npy) batch by batch;
    the first pass is unaugmented, the others go through augment (seeded per view)."""
    shape = tuple(forward.get_concrete_function().structured_outputs.shape[1:])
    progress = tqdm(total=len(labels) * views, desc="features", unit="img", disable=not interactive())
    with row_writer(path, np.float16, shape, len(labels) * views) as write:
        for view in range(views):
            dataset = batches(images, labels, batch_size, seed=seed + view,
                              augment=augment if view else None)
            for x, _ in dataset:
                progress.update(len(x))
                write(float16_rows(forward(x).numpy(), path))
    progress.close()
    return np.tile(np.asarray(labels), views)


def main():
    params = params_lib.load()
    _, jit_compile = compute.apply(params["compute"])  # one device: see README, GPUs
    set_seed(params["seed"])
    start = time.perf_counter()
    extractor = model_lib.feature_extractor(params["model"], params["weights"],
                                            params_lib.input_size(params),
                                            params_lib.backbone_args(params))
    augment = augmentation(params["augment"])
    views = {"train": 1 + params["features"]["augmented_views"], "val": 1}
    counts = {}
    splits = {split: read_split(SOURCE, split) for split in views}
    forward = traced_forward(extractor, splits["train"][0].shape[1:], jit_compile)
    with replaced_when_done(OUTPUT) as tmp:
        os.makedirs(tmp)
        for split, count in views.items():
            images, labels, _ = splits[split]
            out_labels = extract(forward, images, labels, params["features"]["batch_size"],
                                 count, os.path.join(tmp, f"{split}.npy"), augment,
                                 params["seed"])
            np.save(os.path.join(tmp, f"{split}_labels.npy"), out_labels.astype(np.int32))
            counts[split] = len(out_labels)
        # The class names travel with the features, so transfer needs nothing else.
        shutil.copy(os.path.join(SOURCE, "classes.json"), tmp)
    write_json(METRICS, {"seconds": round(time.perf_counter() - start, 1)})
    shape = tuple(extractor.output.shape[1:])
    return (f"features: {params['model']} feature maps {shape} of {counts} images "
            f"({views['train'] - 1} augmented view(s) of train) -> {OUTPUT}/")


if __name__ == "__main__":
    run_stage(main)
