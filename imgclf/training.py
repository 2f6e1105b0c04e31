"""Seeding, optimizers and schedules, compiling and fitting, for the transfer and finetune
stages. A phase is the transfer.* or finetune.* section of params.yaml."""
import math
import time

import keras
import numpy as np

from imgclf import compute
from imgclf.errors import interactive
from imgclf.files import replaced_when_done


def set_seed(seed, deterministic_ops=True):
    """Same seed, same split and (with deterministic ops) same numbers: Python, NumPy and
    TensorFlow. Deterministic ops cost speed on a GPU, and some GPU ops have no
    deterministic kernel (compute.deterministic)."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


def learning_rate(phase, steps_per_epoch):
    """phase.learning_rate with its schedule (constant, cosine or step) and linear warm-up."""
    rate, schedule = phase["learning_rate"], phase["schedule"]
    total = max(1, phase["epochs"] * steps_per_epoch)
    warmup = phase["warmup_epochs"] * steps_per_epoch
    if schedule == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            rate, decay_steps=phase["step_every"] * steps_per_epoch,
            decay_rate=phase["step_factor"], staircase=True)
    if schedule == "constant" and not warmup:
        return rate
    # Cosine decay to 0 after the warm-up; alpha=1 keeps a constant rate after it instead.
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else rate, decay_steps=max(1, total - warmup),
        alpha=1.0 if schedule == "constant" else 0.0,
        warmup_target=rate if warmup else None, warmup_steps=warmup)


def optimizer(phase, steps_per_epoch):
    common = {"learning_rate": learning_rate(phase, steps_per_epoch),
              "weight_decay": phase["weight_decay"] or None,
              "clipnorm": phase["clipnorm"] or None}
    name = phase["optimizer"]
    if name == "sgd":
        return keras.optimizers.SGD(momentum=phase["momentum"], **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=phase["momentum"], **common)
    if name == "adamw":
        return keras.optimizers.AdamW(**{**common, "weight_decay": phase["weight_decay"]})
    return keras.optimizers.Adam(**common)


def compile_model(model, phase, steps_per_epoch, jit_compile=False):
    # Called again after every change of `trainable`: Keras fixes the trainable set at
    # compile time, so unfreezing without recompiling would train nothing new. Under a
    # mixed_float16 policy Keras wraps the optimizer in loss scaling itself.
    chosen = optimizer(phase, steps_per_epoch)
    if phase["weight_decay"]:
        # Decay the weight matrices only: not biases, nor normalisation scales and shifts
        # (every variable of rank 0 or 1), which decay would only pull away from their role.
        chosen.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
    model.compile(optimizer=chosen,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=phase["label_smoothing"]),
                  metrics=["accuracy"], jit_compile=jit_compile)


def one_hot(dataset, class_count):
    """Integer labels -> one-hot, which label smoothing needs."""
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, tf.one_hot(y, class_count)))


def class_weights(setting, class_names, train_labels):
    """class_weight param -> {class index: weight}, or None. 'balanced' weighs each class by
    n_samples / (n_classes * its count), as scikit-learn does; a mapping names classes."""
    from sklearn.utils.class_weight import compute_class_weight

    from imgclf.errors import UserError

    if setting == "none":
        return None
    if setting == "balanced":
        indices = np.arange(len(class_names))
        present = np.unique(train_labels)
        weights = compute_class_weight("balanced", classes=present, y=train_labels)
        by_class = dict(zip(present.tolist(), weights.tolist()))
        return {int(i): float(by_class.get(i, 1.0)) for i in indices}
    unknown = sorted(set(setting) - set(class_names))
    if unknown:
        raise UserError(f"params.yaml: class_weight names {', '.join(map(str, unknown))}, which "
                        f"are not classes; the classes are: {', '.join(class_names)}")
    return {i: float(setting.get(name, 1.0)) for i, name in enumerate(class_names)}


def fit(model, train, val, phase, history_csv, initial_epoch=0, class_weight=None):
    """Train one phase with early stopping on val_loss that restores the best weights (and
    reduce-on-plateau if asked); log each epoch to history_csv. Returns flat metrics."""
    with replaced_when_done(history_csv) as tmp:
        history, seconds = _fit(model, train, val, phase, tmp, initial_epoch, class_weight)
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss)) if phase["patience"] else len(val_loss) - 1
    return {
        "best_val_accuracy": float(history.history["val_accuracy"][best]),
        "best_val_loss": float(val_loss[best]),
        "best_epoch": initial_epoch + best + 1,
        "epochs_run": len(val_loss),
        "seconds": round(seconds, 1),
    }


def _fit(model, train, val, phase, history_csv, initial_epoch, class_weight):
    callbacks = [keras.callbacks.CSVLogger(history_csv)]
    if phase["patience"]:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=phase["patience"], restore_best_weights=True))
    if phase["reduce_on_plateau"]:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.2, patience=phase["reduce_on_plateau"], verbose=1))
    compute.ready_to_fit(model, train)
    start = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=initial_epoch + phase["epochs"],
                        initial_epoch=initial_epoch, callbacks=callbacks,
                        verbose=1 if interactive() else 2,  # a bar, or a line per epoch
                        class_weight=class_weight,
                        shuffle=False)  # tf.data already shuffles, index by index
    return history, time.perf_counter() - start


def write_empty_history(history_csv):
    """The history of a phase that trained no epoch: its header only (the plot then shows
    the other phase alone)."""
    import csv

    with replaced_when_done(history_csv) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerow(["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])


def steps_per_epoch(example_count, batch_size):
    return math.ceil(example_count / batch_size)
