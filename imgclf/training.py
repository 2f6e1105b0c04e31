"""Seeding, compiling and fitting, shared by the transfer and finetune stages."""
import json
import os
import time

import keras
import numpy as np


def set_seed(seed):
    """Same seed, same split and (on CPU) same numbers: Python, NumPy and TensorFlow."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compile_model(model, learning_rate):
    # Called again after every change of `trainable`: Keras fixes the trainable set at
    # compile time, so unfreezing without recompiling would train nothing new.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def fit(model, train, val, epochs, patience, history_csv, initial_epoch=0):
    """Train with early stopping on val_loss that restores the best weights; log each epoch
    to history_csv. Returns flat metrics of the phase for dvc metrics diff."""
    os.makedirs(os.path.dirname(history_csv) or ".", exist_ok=True)
    callbacks = [keras.callbacks.CSVLogger(history_csv)]
    if patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True))
    start = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=initial_epoch + epochs,
                        initial_epoch=initial_epoch, callbacks=callbacks, verbose=2,
                        shuffle=False)  # tf.data already shuffles, index by index
    seconds = time.perf_counter() - start
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss)) if patience else len(val_loss) - 1
    return {
        "best_val_accuracy": float(history.history["val_accuracy"][best]),
        "best_val_loss": float(val_loss[best]),
        "best_epoch": initial_epoch + best + 1,
        "epochs_run": len(val_loss),
        "seconds": round(seconds, 1),
    }


def write_json(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path):
    with open(path) as f:
        return json.load(f)
