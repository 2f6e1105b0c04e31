"""A training phase's state at the end of every epoch, so that a run killed mid-phase (a
preempted machine, Ctrl-C) resumes at the next epoch and ends where an uninterrupted run would.

Keras' BackupAndRestore saves the weights, the optimizer and the epoch, but not early
stopping's or reduce-on-plateau's memory (best value, epochs waited, best weights): a resumed
run would then stop and restore differently. So the state is saved here, with public Keras
calls: the weights file of model.save_weights (which holds the optimizer's variables too),
dropout's random state (which it leaves out), the callbacks' counters, every epoch's logs and
a copy of the dvclive folder.

A backup is used only when its fingerprint (the phase's params and the contents of its inputs)
is the one of this run: a changed param or input starts afresh.
"""
import glob
import hashlib
import json
import os
import shutil

import numpy as np

# The counters each stateful Keras callback keeps between epochs (public attributes; the
# kill-and-resume test in tests/test_resume.py fails if an upgrade renames them).
CALLBACK_STATE = {"EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
                  "ReduceLROnPlateau": ("wait", "best", "cooldown_counter")}


def fingerprint(params, paths, compute_settings):
    """sha256 of the params (a dict), of every file below paths (the stage's inputs and its
    own script), of a weights file the params name, of the project's library code, of the
    versions of TensorFlow, Keras and NumPy and of the compute settings as resolved on this
    machine (imgclf.compute.resolved): a resumed run must not mix two versions of any of them."""
    import keras
    import tensorflow as tf

    versions = {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}
    made_from = {"params": params, "versions": versions, "compute": compute_settings}
    digest = hashlib.sha256(json.dumps(made_from, sort_keys=True, default=str).encode())
    code = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "*.py")))
    weights = [params["weights"]] if params.get("weights") not in (None, "imagenet", "none") else []
    for path in [*paths, *weights, *code]:
        files = [path] if os.path.isfile(path) else sorted(
            os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
        for file in files:
            digest.update(file.encode())
            with open(file, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def restore(folder, made_from, model, live_dir):
    """Load the latest backup in folder into model (weights and optimizer) and live_dir;
    its state ({"epoch", "logs", "callbacks"}), or None when there is none or it was made
    from other params or inputs (then it is deleted, with one line saying so)."""
    latest = _latest(folder)
    if latest is None:
        return None
    with open(os.path.join(latest, "state.json"), encoding="utf-8") as f:
        state = json.load(f)
    if state["fingerprint"] != made_from:
        print(f"{folder}: backup made from other params or inputs; starting afresh")
        discard(folder)
        return None
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(latest, "model.weights.h5"))
    with np.load(os.path.join(latest, "random_states.npz")) as arrays:
        for index, variable in enumerate(random_states(model)):
            variable.assign(arrays[f"arr_{index}"])
    best = os.path.join(latest, "best_weights.npz")
    if os.path.exists(best):
        with np.load(best) as arrays:
            state["best_weights"] = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    if os.path.isdir(live_dir):
        shutil.rmtree(live_dir)
    shutil.copytree(os.path.join(latest, "live"), live_dir)
    print(f"{folder}: resuming after epoch {state['epoch']}")
    return state


def apply_state(state, callbacks):
    """Give the restored counters (and best weights) back to the callbacks that had them."""
    import keras

    for callback in callbacks:
        for name in CALLBACK_STATE.get(type(callback).__name__, ()):
            setattr(callback, name, state["callbacks"][type(callback).__name__][name])
        if hasattr(callback, "best_weights") and "best_weights" in state:
            callback.best_weights = state["best_weights"]
        if isinstance(callback, keras.callbacks.SwapEMAWeights):
            # Saved at an epoch's end, the model held the averaged weights and the optimizer
            # the raw ones: the callback swaps them back at the next epoch's start only if it
            # knows (a private flag of Keras 3.15; tests/test_resume.py fails without it).
            callback._ema_weights_in_model = True


def save(folder, made_from, model, epoch, logs, callbacks, live_dir):
    """Write the state after `epoch` epochs into a new folder, then point `latest` at it
    (an atomic rename): a kill while saving leaves the previous backup whole."""
    target = os.path.join(folder, f"epoch-{epoch}")
    if os.path.isdir(target):
        shutil.rmtree(target)
    os.makedirs(target)
    model.save_weights(os.path.join(target, "model.weights.h5"))
    np.savez(os.path.join(target, "random_states.npz"),
             *[variable.numpy() for variable in random_states(model)])
    state = {"fingerprint": made_from, "epoch": epoch, "logs": logs, "callbacks": {}}
    for callback in callbacks:
        names = CALLBACK_STATE.get(type(callback).__name__)
        if names:
            state["callbacks"][type(callback).__name__] = {
                name: _plain(getattr(callback, name)) for name in names}
        if getattr(callback, "best_weights", None) is not None:
            np.savez(os.path.join(target, "best_weights.npz"), *callback.best_weights)
    with open(os.path.join(target, "state.json"), "w", encoding="utf-8") as f:
        json.dump(state, f)
    shutil.copytree(live_dir, os.path.join(target, "live"))
    pointer = os.path.join(folder, "latest")
    with open(pointer + ".tmp", "w", encoding="utf-8") as f:
        f.write(os.path.basename(target))
    os.replace(pointer + ".tmp", pointer)
    for entry in os.listdir(folder):
        if entry.startswith("epoch-") and entry != os.path.basename(target):
            shutil.rmtree(os.path.join(folder, entry))


def random_states(model):
    """Dropout's seed-generator states: variables that save_weights leaves out (Keras 3.15);
    without them a resumed run would draw other dropout masks from the next epoch on."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def discard(folder):
    """A finished phase leaves no backup behind."""
    shutil.rmtree(folder, ignore_errors=True)


def _latest(folder):
    try:
        with open(os.path.join(folder, "latest"), encoding="utf-8") as f:
            latest = os.path.join(folder, f.read().strip())
    except FileNotFoundError:
        return None
    return latest if os.path.exists(os.path.join(latest, "state.json")) else None


def _plain(value):
    """A callback counter as JSON: numpy and TensorFlow scalars become floats."""
    return value if isinstance(value, (int, type(None))) else float(value)
