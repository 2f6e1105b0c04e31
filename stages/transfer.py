"""transfer: train the new head on the cached backbone features (backbone frozen).

Seconds, not minutes: the backbone ran once, in the features stage. Writes models/head.keras,
metrics/transfer.json and the epoch history in dvclive/transfer/ (dvclive). A killed run
resumes from backups/transfer/ (imgclf.backup).
"""
import os

import numpy as np

from imgclf import backup as backup_lib
from imgclf import compute
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.dataset import batches, is_multi_label, read_classes, training_batches
from imgclf.errors import run_stage
from imgclf.files import replaced_when_done, write_json
from imgclf.training import (class_weights, compile_model, fit, one_hot, open_live,
                             positive_weights, set_seed, steps_per_epoch)

FEATURES = "data/features"
HEAD = "models/head.keras"
METRICS = "metrics/transfer.json"
LIVE = "dvclive/transfer"
BACKUP = "backups/transfer"


def load_features(split):
    return (np.load(os.path.join(FEATURES, f"{split}.npy"), mmap_mode="r"),
            np.load(os.path.join(FEATURES, f"{split}_labels.npy")))


def train_head(train, val, class_names, params, live, strategy, jit_compile=False, backup=None):
    """A head for features shaped like train's, fitted on (features, labels) pairs, built
    and trained under the tf.distribute strategy, each epoch logged to live (dvclive)."""
    (train_x, train_y), (val_x, val_y) = train, val
    phase, count = params["transfer"], len(class_names)
    size = phase["batch_size"]
    steps = steps_per_epoch(len(train_y), size)
    multi_label = is_multi_label(train_y)
    weights = positive_weights(params["class_weight"], class_names, train_y) if multi_label else None
    with strategy.scope():
        head = model_lib.build_head(train_x.shape[1:], count, **params["head"],
                                    multi_label=multi_label)
        compile_model(head, phase, steps, jit_compile, multi_label, weights)

    def train_batches(epochs):
        return one_hot(training_batches(train_x, train_y, size, params["seed"], epochs), count)
    metrics = fit(head, (train_batches, steps), one_hot(batches(val_x, val_y, size), count),
                  phase, live, backup,
                  class_weight=class_weights(params["class_weight"], class_names, train_y))
    return head, metrics


def main():
    params = params_lib.load()
    strategy, jit_compile = compute.apply(params["compute"])
    set_seed(params["seed"], compute.deterministic_ops(params["compute"]["deterministic"]))
    classes = read_classes(FEATURES)
    train, val = load_features("train"), load_features("val")
    if len(train[1]) == 0:  # weights: none (features stage): nothing cached to train on
        head = model_lib.build_head(train[0].shape[1:], len(classes), **params["head"],
                                    multi_label=is_multi_label(train[1]))
        with replaced_when_done(HEAD) as tmp:
            head.save(tmp)
        open_live(LIVE).end()  # an empty history
        write_json(METRICS, {"epochs_run": 0, "best_epoch": 0, "seconds": 0.0})
        return ("transfer: no cached features (weights: none); the head is left untrained "
                "and finetune trains it with the whole network")
    made_from = backup_lib.fingerprint(params, [FEATURES, __file__])
    with open_live(LIVE) as live:
        head, metrics = train_head(train, val, classes, params, live, strategy, jit_compile,
                                   (BACKUP, made_from))
    with replaced_when_done(HEAD) as tmp:
        compute.float32_copy(head).save(tmp)
    write_json(METRICS, metrics)
    backup_lib.discard(BACKUP)
    return (f"transfer: best val accuracy {metrics['best_val_accuracy']:.4f} at epoch "
            f"{metrics['best_epoch']} of {metrics['epochs_run']} (training {metrics['seconds']} s; "
            f"{compute.summary(strategy, jit_compile)})")


if __name__ == "__main__":
    run_stage(main)
