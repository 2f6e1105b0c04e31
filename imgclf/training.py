"""Optimizers and schedules, compiling and fitting, for the transfer and finetune
stages. A phase is the transfer.* or finetune.* section of params.yaml."""
import math
import os
import time

import keras
import numpy as np

from imgclf import backup as backup_lib
from imgclf import compute
from imgclf.dataset import is_multi_label
from imgclf.errors import interactive


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


def ema_momentum(phase, steps_per_epoch):
    """The per-step momentum of the weight average that spans about phase.ema_epochs epochs
    (its time constant 1 / (1 - momentum) steps); None when ema_epochs is 0. In epochs, not
    a fixed momentum: 0.99 spans a tenth of an epoch on a large set and the whole run on 8
    steps an epoch."""
    if not phase["ema_epochs"]:
        return None
    return 1 - 1 / max(1.0, phase["ema_epochs"] * steps_per_epoch)


def optimizer(phase, steps_per_epoch):
    momentum = ema_momentum(phase, steps_per_epoch)
    common = {"learning_rate": learning_rate(phase, steps_per_epoch),
              "weight_decay": phase["weight_decay"] or None,
              "clipnorm": phase["clipnorm"] or None,
              "use_ema": momentum is not None,
              "ema_momentum": 0.99 if momentum is None else momentum}  # 0: one step an epoch
    name = phase["optimizer"]
    if name == "sgd":
        return keras.optimizers.SGD(momentum=phase["momentum"], **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=phase["momentum"], **common)
    if name == "adamw":
        return keras.optimizers.AdamW(**{**common, "weight_decay": phase["weight_decay"]})
    return keras.optimizers.Adam(**common)


def compile_model(model, phase, steps_per_epoch, jit_compile=False, multi_label=False,
                  positive_weights=None):
    # Called again after every change of `trainable`: Keras fixes the trainable set at
    # compile time, so unfreezing without recompiling would train nothing new. Under a
    # mixed_float16 policy Keras wraps the optimizer in loss scaling itself.
    chosen = optimizer(phase, steps_per_epoch)
    if phase["weight_decay"]:
        # Decay the weight matrices only: not biases, nor normalisation scales and shifts
        # (every variable of rank 0 or 1), which decay would only pull away from their role.
        chosen.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
    model.compile(optimizer=chosen, loss=loss_for(phase, multi_label, positive_weights),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy") if multi_label
                           else "accuracy"], jit_compile=jit_compile)


def loss_for(phase, multi_label, positive_weights=None):
    """Categorical cross-entropy on softmax; binary cross-entropy per label for
    multi_label, its positive terms weighted by positive_weights (class_weight) if given."""
    from imgclf.model import WeightedBinaryCrossentropy

    smoothing = phase["label_smoothing"]
    if not multi_label:
        return keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
    if positive_weights is not None:
        return WeightedBinaryCrossentropy(positive_weights, smoothing)
    return keras.losses.BinaryCrossentropy(label_smoothing=smoothing)


def one_hot(dataset, class_count):
    """Integer labels -> one-hot, which label smoothing needs; rows of 0/1 per label
    (multi_label) -> float."""
    import tensorflow as tf

    if len(dataset.element_spec[1].shape) == 2:
        return dataset.map(lambda x, y: (x, tf.cast(y, tf.float32)))
    return dataset.map(lambda x, y: (x, tf.one_hot(y, class_count)))


def positive_weights(setting, class_names, train_labels):
    """class_weight param for multi_label -> a weight per label on its positive term, or
    None. 'balanced' gives each label negatives / positives in train (1 without either)."""
    if setting == "none":
        return None
    if setting == "balanced":
        positives = np.asarray(train_labels).sum(axis=0)
        negatives = len(train_labels) - positives
        return [float(n / p) if p and n else 1.0 for p, n in zip(positives, negatives)]
    _check_named(setting, class_names)
    return [float(setting.get(name, 1.0)) for name in class_names]


def _check_named(setting, class_names):
    from imgclf.errors import UserError

    unknown = sorted(set(setting) - set(class_names))
    if unknown:
        raise UserError(f"params.yaml: class_weight names {', '.join(map(str, unknown))}, which "
                        f"are not classes; the classes are: {', '.join(class_names)}")


def class_weights(setting, class_names, train_labels):
    """class_weight param -> {class index: weight} for fit, or None (always for multi_label:
    its weights go into the loss, positive_weights). 'balanced' weighs each class by
    n_samples / (n_classes * its count), as scikit-learn does; a mapping names classes."""
    from sklearn.utils.class_weight import compute_class_weight

    if setting == "none" or is_multi_label(train_labels):
        return None
    if setting == "balanced":
        indices = np.arange(len(class_names))
        present = np.unique(train_labels)
        weights = compute_class_weight("balanced", classes=present, y=train_labels)
        by_class = dict(zip(present.tolist(), weights.tolist()))
        return {int(i): float(by_class.get(i, 1.0)) for i in indices}
    _check_named(setting, class_names)
    return {i: float(setting.get(name, 1.0)) for i, name in enumerate(class_names)}


def open_live(folder, resume=False):
    """dvclive's logger for a training stage. It writes no dvc.yaml and makes no experiment
    of its own: dvc.yaml declares its files, and `dvc exp run` makes the experiments."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    from imgclf.errors import UserError

    try:
        return Live(folder, resume=resume, save_dvc_exp=False, dvcyaml=False)
    except SCMError as error:  # dvclive 3.49 in a Git repo without commits (dvclive#522)
        raise UserError(f"dvclive cannot log in this Git repository ({error}): commit "
                        "once (git add -A && git commit -m start), then rerun") from error


def continue_live(earlier, folder):
    """dvclive's logger at folder, continuing the history in the folder `earlier` on the same
    step axis (fine-tuning's epochs follow transfer's: one history of both phases)."""
    import shutil

    if os.path.isdir(folder):
        shutil.rmtree(folder)
    shutil.copytree(earlier, folder)
    return open_live(folder, resume=True)


def fit(model, train, val, phase, live, backup=None, initial_epoch=0, class_weight=None):
    """Train one phase and log each epoch to `live` (a dvclive.Live whose step is the
    epoch, continuing across phases). train is (batches, steps): batches(epochs) gives the
    training batches of a range of epoch numbers, steps per epoch. Early stopping on
    val_loss restores the best weights (reduce-on-plateau if asked). backup is
    (folder, fingerprint) or None: the state is saved there each epoch and a run killed
    mid-phase resumes from it (imgclf.backup; the stage deletes it once its outputs are
    written). Returns the phase's flat metrics, over all its epochs, resumed or not."""
    batches, steps = train
    last_epoch = initial_epoch + phase["epochs"]
    callbacks = _callbacks(model, phase, live)
    state = backup_lib.restore(*backup, model, live.dir) if backup else None
    epoch_logs = state["logs"] if state else []
    start = state["epoch"] if state else initial_epoch
    began = time.perf_counter() - (epoch_logs[-1]["seconds"] if epoch_logs else 0.0)

    def after_epoch(epoch, logs):
        epoch_logs.append({**{key: float(value) for key, value in logs.items()},
                           "seconds": time.perf_counter() - began})
        if backup:
            backup_lib.save(*backup, model, epoch + 1, epoch_logs, callbacks, live.dir)
    callbacks.append(keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: backup_lib.apply_state(state, callbacks) if state else None,
        on_epoch_end=after_epoch))
    live.step = start
    if state and state["callbacks"].get("EarlyStopping", {}).get("stopped_epoch"):
        start = last_epoch  # killed after early stopping ended the phase
    if start < last_epoch:
        compute.ready_to_fit(model, val)
        model.fit(batches(range(start, last_epoch)), steps_per_epoch=steps,
                  validation_data=val, epochs=last_epoch, initial_epoch=start,
                  callbacks=callbacks, class_weight=class_weight,
                  verbose=1 if interactive() else 2,  # a bar, or a line per epoch
                  shuffle=False)  # the batches come shuffled, epoch by epoch
    elif state and state.get("best_weights") is not None:
        model.set_weights(state["best_weights"])
    seconds = time.perf_counter() - began
    val_loss = [logs["val_loss"] for logs in epoch_logs]
    best = int(np.argmin(val_loss)) if phase["patience"] else len(val_loss) - 1
    stopped_early = len(val_loss) < phase["epochs"]
    return {
        "stopped_because": (f"early stopping: val loss not better for {phase['patience']} epochs"
                            if stopped_early else f"all {phase['epochs']} epochs run"),
        "first_epoch_val_accuracy": float(epoch_logs[0]["val_accuracy"]),
        "best_val_accuracy": float(epoch_logs[best]["val_accuracy"]),
        "best_val_loss": float(val_loss[best]),
        "best_epoch": initial_epoch + best + 1,
        "epochs_run": len(val_loss),
        "seconds": round(seconds, 1),
    }


def _callbacks(model, phase, live):
    """The learning rate into each epoch's logs, dvclive's logger, early stopping and
    reduce-on-plateau as asked."""
    from dvclive.keras import DVCLiveCallback

    def log_rate(epoch, logs):  # a MirroredVariable under tf.distribute: convert, not float()
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=log_rate), DVCLiveCallback(live=live)]
    if phase["ema_epochs"]:
        # Before early stopping: from each epoch's end to the next one's start the model holds
        # the averaged weights, so val, the best weights early stopping keeps and the backup
        # are the average's; fit ends with them (Keras' finalize and restore_best_weights).
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if phase["patience"]:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=phase["patience"], restore_best_weights=True))
    if phase["reduce_on_plateau"]:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.2, patience=phase["reduce_on_plateau"], verbose=1))
    return callbacks


def set_val_thresholds(model, images, labels, batch_size):
    """multi_label: choose each label's threshold on the validation images (the F1-best,
    imgclf.multilabel) and store it in the model."""
    from imgclf.dataset import batches
    from imgclf.model import set_thresholds
    from imgclf.multilabel import choose_thresholds

    probabilities = model.predict(batches(images, labels, batch_size), verbose=0)
    set_thresholds(model, choose_thresholds(probabilities, np.asarray(labels)))


def steps_per_epoch(example_count, batch_size):
    return math.ceil(example_count / batch_size)
