"""Distribution strategies, mixed precision and XLA on this CPU: mirrored training over two
logical CPU devices, two workers on localhost, and float32 copies of mixed-precision models.
Training runs in subprocesses (devices are fixed once TensorFlow starts), bounded in time."""
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from imgclf import compute
from imgclf.errors import UserError
from tests.conftest import ROOT
from tests.informative import assert_informative, separable_images, trained_classifier

# Trains a head with the transfer stage's own function on fixed random features, under the
# strategy named by argv[1], and writes its weights to argv[2].
TRAIN_HEAD = """
import sys
import numpy as np
import tensorflow as tf
import yaml

if sys.argv[1] == "mirrored":  # two logical CPU devices, as if there were two GPUs
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from imgclf import compute, params as params_lib
from imgclf.compute import set_seed
from imgclf.training import open_live
from imgclf.head import train_head

params = params_lib.validate(yaml.safe_load(open(sys.argv[3])))
params["head"].update(dense=[16], dropout=0.0)
params["transfer"].update(epochs=2, batch_size=16, patience=0)
params["compute"]["distribute"] = sys.argv[1]
strategy, jit = compute.apply(params["compute"])
set_seed(0)
rng = np.random.default_rng(0)
features = rng.normal(size=(96, 2, 2, 8)).astype(np.float16)
labels = (features.mean(axis=(1, 2, 3)) > 0).astype(np.int32)
head, metrics = train_head((features, labels), (features[:32], labels[:32]), ["a", "b"],
                           params, open_live(sys.argv[2] + "_live"), strategy, jit)
np.savez(sys.argv[2], *head.get_weights(), replicas=strategy.num_replicas_in_sync,
         steps=int(head.optimizer.iterations.numpy()))
"""


def train_head_under(strategy, out, env=None):
    # Run outside the project's DVC repo: two workers' dvclive loggers would race to
    # remove its .dvc/tmp signal file (a FileNotFoundError seen once in the default suite).
    return subprocess.Popen([sys.executable, "-c", TRAIN_HEAD, strategy, str(out),
                             os.path.join(ROOT, "params.yaml")], cwd=os.path.dirname(out),
                            env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process, timeout=240):
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"no result in {timeout} s: {output[-2000:]}")
    assert process.returncode == 0, output[-3000:]


def trained(path):
    """Replicas, optimizer steps and weights of a head that TRAIN_HEAD wrote."""
    saved = np.load(path)
    return (int(saved["replicas"]), int(saved["steps"]),
            [saved[f"arr_{i}"] for i in range(len(saved.files) - 2)])


def test_mirrored_over_two_devices_takes_the_global_batch(tmp_path):
    for name in ("one_device", "mirrored"):
        finished(train_head_under(name, tmp_path / name))
    replicas_one, steps_one, one = trained(tmp_path / "one_device.npz")
    replicas_two, steps_two, two = trained(tmp_path / "mirrored.npz")
    # The batch size is global: 96 examples in batches of 16 are 6 steps an epoch however
    # many replicas share each batch (8 each here), not 3.
    assert (replicas_one, replicas_two) == (1, 2)
    assert steps_one == steps_two == 2 * 6
    # Same start, same data and steps; only the shuffled order differs (the distributed
    # input pipeline draws its first order one iteration later), so the weights stay close.
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=0.02)


def test_auto_is_one_device_without_gpus_or_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert compute.strategy_name("auto") == "one_device"
    assert compute.mixed_precision_on("auto") is False and compute.jit_compile("auto") is False
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert compute.strategy_name("auto") == "multi_worker"


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_train_one_model(tmp_path):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = [train_head_under("auto", tmp_path / f"worker{index}", env={"TF_CONFIG": json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})})
        for index in range(2)]
    try:
        for process in processes:
            finished(process)
    finally:
        for process in processes:
            process.kill()
    replicas_0, steps_0, first = trained(tmp_path / "worker0.npz")
    replicas_1, steps_1, second = trained(tmp_path / "worker1.npz")
    assert (replicas_0, replicas_1) == (2, 2)  # auto chose multi_worker from TF_CONFIG
    assert steps_0 == steps_1 == 2 * 6  # the global batch of 16 is 8 on each worker
    for a, b in zip(first, second):  # synchronous: both workers end with the same weights
        np.testing.assert_array_equal(a, b)


def test_multi_worker_without_tf_config_names_what_to_set(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="compute.distribute is multi_worker but TF_CONFIG"):
        compute.strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is set but is not JSON"):
        compute.strategy("auto")


def test_a_mixed_precision_model_is_saved_in_float32(tmp_path, classifier):
    images, labels = separable_images(3, 3, seed=5)
    images = images.astype(np.float32)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = trained_classifier()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.get_layer("backbone").compute_dtype == "float16"
    assert mixed.output.dtype == "float32"  # probabilities, loss and early stopping in float32
    copy = compute.float32_copy(mixed)
    copy.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert {layer.compute_dtype for layer in loaded.get_layer("backbone").layers} == {"float32"}
    expected = mixed.predict(images, verbose=0)
    assert_informative(expected, labels)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=2e-2)
    assert compute.float32_copy(classifier) is classifier


@pytest.mark.parametrize("setting", ["auto", True, False])
def test_deterministic_ops_follow_compute_deterministic(setting):
    enabled = not compute.gpus() if setting == "auto" else setting  # auto: on on CPU
    # A fresh process: TensorFlow cannot turn deterministic ops off once they are on.
    # (is_op_determinism_enabled is private; only this test reads it.)
    code = ("from imgclf import compute; from imgclf.compute import set_seed; "
            "from tensorflow.python.framework import config; "
            f"set_seed(0, compute.deterministic_ops({setting!r})); "
            "print(config.is_op_determinism_enabled())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip().splitlines()[-1] == str(enabled), result.stderr[-2000:]
