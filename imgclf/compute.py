"""Where and how training runs, from the compute.* params: the tf.distribute strategy,
mixed precision and XLA. `auto` turns each on where it helps (GPUs) and off on CPU.

Batch sizes in params are global: a strategy splits each batch across its replicas.
"""
import json
import os

import keras

from imgclf.errors import UserError


def gpus():
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def workers_in_tf_config():
    """How many workers TF_CONFIG names (0 when it is unset)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw)["cluster"]
    except (ValueError, KeyError, TypeError):
        raise UserError("TF_CONFIG is set but is not JSON with a \"cluster\" key; see "
                        "docs/distributed.md: several machines") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def strategy_name(setting):
    """compute.distribute resolved: auto is multi_worker when TF_CONFIG names more than one
    worker, mirrored with more than one GPU, else one_device."""
    if setting != "auto":
        return setting
    if workers_in_tf_config() > 1:
        return "multi_worker"
    return "mirrored" if len(gpus()) > 1 else "one_device"


def strategy(setting):
    """The tf.distribute strategy that models are built, compiled and trained under."""
    import tensorflow as tf

    name = strategy_name(setting)
    if name == "multi_worker":
        if not workers_in_tf_config():
            raise UserError("params.yaml: compute.distribute is multi_worker but TF_CONFIG is "
                            "not set; set it on every machine (docs/distributed.md: several "
                            "machines) or use auto, one_device or mirrored")
        _average_logs_across_workers()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        # Every visible GPU; without one, every logical CPU device (one unless configured).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()  # the default: one device, no replication


# Keras 3.15's fit under MultiWorkerMirroredStrategy fails twice (keras-team/keras#20585):
# it builds the model from a first batch averaged across workers, which cannot run eagerly,
# and it averages each step's scalar logs along axis 0, which scalars do not have. The two
# functions below do both another way, for multi-worker training only; tests/test_compute.py
# trains two workers on localhost and fails if a Keras upgrade breaks them.

def _average_logs_across_workers():
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "averages_scalars", False):
        return
    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return keras_reduce(values, strategy, reduction)
    reduce_per_replica.averages_scalars = True
    trainer.reduce_per_replica = reduce_per_replica


def ready_to_fit(model, dataset):
    """Under MultiWorkerMirroredStrategy, build the model's training state from the dataset's
    shapes, so that fit and evaluate have nothing left to build from a batch; elsewhere,
    nothing to do."""
    import tensorflow as tf

    if not isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=(*dataset.element_spec, None))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def mixed_precision_on(setting):
    """compute.mixed_precision resolved: auto is on when every visible GPU has float16
    tensor cores (compute capability 7.0 or newer), off on CPU."""
    if setting != "auto":
        return setting
    import tensorflow as tf

    devices = gpus()
    return bool(devices) and all(
        tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) >= (7, 0)
        for gpu in devices)


def jit_compile(setting):
    """compute.xla resolved: auto compiles training and feature extraction with XLA when a
    GPU is visible (fused kernels); off on CPU."""
    return bool(gpus()) if setting == "auto" else setting


def deterministic_ops(setting):
    """compute.deterministic resolved: auto is on without a GPU (where it costs little) and
    off with one (slower kernels, and some ops have none that is deterministic)."""
    return not gpus() if setting == "auto" else setting


def apply(compute):
    """Set the global dtype policy for models built after this; returns (strategy,
    jit_compile) to build and compile them with."""
    policy = "mixed_float16" if mixed_precision_on(compute["mixed_precision"]) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return strategy(compute["distribute"]), jit_compile(compute["xla"])


def resolved(compute, strategy, jit):
    """What compute's settings came to on this machine (auto depends on its GPUs): a backup
    made under other settings (mixed_float16 on a GPU, say) must not resume here."""
    return {"replicas": strategy.num_replicas_in_sync,
            "dtype_policy": keras.mixed_precision.global_policy().name, "xla": bool(jit),
            "deterministic": bool(deterministic_ops(compute["deterministic"]))}


def summary(strategy, jit):
    return (f"{strategy.num_replicas_in_sync} replica(s), "
            f"{keras.mixed_precision.global_policy().name}, XLA {'on' if jit else 'off'}")


def float32_copy(model):
    """The same model with every layer in float32: what is saved, so a model trained in mixed
    precision on a GPU loads and predicts the same way anywhere (its weights already are
    float32; only the compute dtype changes)."""
    config = json.dumps(keras.saving.serialize_keras_object(model))
    if '"mixed_float16"' not in config:
        return model
    copy = keras.saving.deserialize_keras_object(
        json.loads(config.replace('"mixed_float16"', '"float32"')))
    copy.set_weights(model.get_weights())
    return copy


def set_seed(seed, deterministic_ops=True):
    """Same seed, same split and (with deterministic ops) same numbers: Python, NumPy and
    TensorFlow. Deterministic ops cost speed on a GPU, and some GPU ops have no
    deterministic kernel (compute.deterministic)."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
