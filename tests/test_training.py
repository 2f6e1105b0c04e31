import copy

import keras
import numpy as np
import pytest
import yaml

from imgclf import params
from imgclf.errors import UserError
from imgclf.model import WeightedBinaryCrossentropy
from imgclf.training import (class_weights, compile_model, learning_rate, optimizer,
                             positive_weights)


@pytest.fixture
def phase():
    with open("params.yaml") as f:
        phase = copy.deepcopy(params.validate(yaml.safe_load(f))["finetune"])
    return {**phase, "schedule": "constant", "warmup_epochs": 0}  # tests set their schedule


def rate_at(schedule, step):
    return float(schedule(step)) if callable(schedule) else schedule


def test_constant_rate_with_and_without_warmup(phase):
    phase.update(learning_rate=0.01, schedule="constant", epochs=10, warmup_epochs=0)
    assert learning_rate(phase, steps_per_epoch=5) == 0.01
    phase["warmup_epochs"] = 2
    schedule = learning_rate(phase, steps_per_epoch=5)
    assert rate_at(schedule, 0) == 0
    assert rate_at(schedule, 5) == pytest.approx(0.005)
    assert rate_at(schedule, 10) == pytest.approx(0.01)
    assert rate_at(schedule, 49) == pytest.approx(0.01)


def test_cosine_decays_to_zero_after_warmup(phase):
    phase.update(learning_rate=0.01, schedule="cosine", epochs=10, warmup_epochs=1)
    schedule = learning_rate(phase, steps_per_epoch=10)
    assert rate_at(schedule, 10) == pytest.approx(0.01)
    assert rate_at(schedule, 55) == pytest.approx(0.005, rel=0.01)
    assert rate_at(schedule, 100) == pytest.approx(0.0, abs=1e-7)


def test_step_decay(phase):
    phase.update(learning_rate=0.01, schedule="step", step_every=3, step_factor=0.5)
    schedule = learning_rate(phase, steps_per_epoch=4)
    assert [rate_at(schedule, s) for s in (0, 11, 12, 24)] == pytest.approx([0.01, 0.01, 0.005, 0.0025])


@pytest.mark.parametrize("name, kind", [("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW),
                                        ("sgd", keras.optimizers.SGD), ("rmsprop", keras.optimizers.RMSprop)])
def test_optimizer_choice_and_its_settings(phase, name, kind):
    phase.update(optimizer=name, weight_decay=0.01, clipnorm=1.0, momentum=0.8)
    chosen = optimizer(phase, steps_per_epoch=3)
    assert type(chosen) is kind
    assert chosen.weight_decay == 0.01 and chosen.clipnorm == 1.0
    if name in ("sgd", "rmsprop"):
        assert chosen.momentum == 0.8


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_weight_decay_leaves_biases_and_normalisation_alone(phase, name):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(x))
    images = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    labels = np.eye(2)[[0, 1] * 4]
    after = {}
    for decay in (0.0, 0.5):
        trained = keras.models.clone_model(model)
        trained.set_weights(model.get_weights())
        phase.update(optimizer=name, weight_decay=decay, learning_rate=0.1)
        compile_model(trained, phase, steps_per_epoch=1)
        trained.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
        after[decay] = {v.path: v.numpy() for v in trained.trainable_variables}
    for path, value in after[0.0].items():
        decayed = not np.allclose(after[0.5][path], value, atol=1e-6)
        assert decayed == (value.ndim == 2), path  # kernels decay; biases, gamma, beta do not


def test_label_smoothing_reaches_the_loss(phase):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    confident = np.array([[1.0, 0.0]])
    phase["label_smoothing"] = 0.2
    compile_model(model, phase, steps_per_epoch=1)
    assert float(model.loss(confident, np.array([[0.9, 0.1]]))) > float(
        keras.losses.categorical_crossentropy(confident, np.array([[0.9, 0.1]]))[0])


def test_class_weights():
    labels = np.array([0, 0, 0, 1])
    assert class_weights("none", ["a", "b"], labels) is None
    assert class_weights("balanced", ["a", "b"], labels) == pytest.approx({0: 4 / 6, 1: 2.0})
    assert class_weights({"b": 3}, ["a", "b"], labels) == {0: 1.0, 1: 3.0}
    with pytest.raises(UserError, match="class_weight names c, which are not classes; the classes are: a, b"):
        class_weights({"c": 2}, ["a", "b"], labels)


def test_multi_label_class_weights_weigh_each_labels_positive_term(phase, tmp_path):
    labels = np.array([[1, 0], [1, 0], [1, 1], [0, 0]])  # a: 3 of 4, b: 1 of 4
    assert positive_weights("balanced", ["a", "b"], labels) == pytest.approx([1 / 3, 3.0])
    assert positive_weights({"b": 2}, ["a", "b"], labels) == [1.0, 2.0]
    assert positive_weights("none", ["a", "b"], labels) is None
    assert class_weights("balanced", ["a", "b"], labels) is None  # not fit's: the loss's
    truth, predicted = np.array([[1.0, 0.0]]), np.array([[0.8, 0.3]])
    plain = keras.losses.binary_crossentropy(truth, predicted)[0]
    same = WeightedBinaryCrossentropy([1.0, 1.0])(truth, predicted)
    assert float(same) == pytest.approx(float(plain), rel=1e-5)
    doubled = WeightedBinaryCrossentropy([2.0, 1.0])(truth, predicted)  # a's positive term x2
    assert float(doubled) == pytest.approx(float(plain) + (-np.log(0.8)) / 2, rel=1e-5)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="sigmoid")])
    compile_model(model, phase, 1, multi_label=True, positive_weights=[1 / 3, 3.0])
    assert model.loss.positive_weights == pytest.approx([1 / 3, 3.0])
    model.save(tmp_path / "m.keras")  # the loss travels with the model
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.loss.positive_weights == pytest.approx([1 / 3, 3.0])


def test_schedule_conflicts_are_refused_up_front():
    with open("params.yaml") as f:
        values = yaml.safe_load(f)
    values["finetune"].update(schedule="step", warmup_epochs=2)
    with pytest.raises(UserError, match="finetune.warmup_epochs is 2 with finetune.schedule: step"):
        params.validate(copy.deepcopy(values))
    values["finetune"].update(schedule="cosine", warmup_epochs=0, reduce_on_plateau=2)
    with pytest.raises(UserError, match="finetune.reduce_on_plateau needs finetune.schedule: constant"):
        params.validate(values)


def contradicting_features(seed=0):
    """Features whose train labels the head can learn, and a val set of the same features
    with the labels swapped: the better the head learns, the worse val gets."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(64, 2, 2, 8)).astype(np.float32)
    labels = (features.mean(axis=(1, 2, 3)) > 0).astype(np.int32)
    return features, labels, 1 - labels


def train_head(phase, live_dir, seed=0):
    from imgclf import model as model_lib
    from imgclf.dataset import batches, training_batches
    from imgclf.compute import set_seed
    from imgclf.training import fit, one_hot, open_live

    set_seed(seed)
    features, labels, swapped = contradicting_features()
    head = model_lib.build_head(features.shape[1:], 2, "avg", [16], 0.0)
    compile_model(head, phase, steps_per_epoch=4)
    train = (lambda epochs: one_hot(training_batches(features, labels, 16, seed, epochs), 2), 4)
    val = one_hot(batches(features, swapped, 64), 2)
    with open_live(str(live_dir)) as live:
        metrics = fit(head, train, val, phase, live)
    return head, metrics, val


def test_the_best_epoch_is_kept_not_the_last(tmp_path):
    """patience (more than the epochs here, so no early stop) restores the epoch with the
    lowest val_loss, and the metrics say which."""
    from imgclf.charts import live_history

    phase = {**copy.deepcopy(params.validate(yaml.safe_load(open("params.yaml")))["transfer"]),
             "epochs": 6, "patience": 10, "learning_rate": 0.01}
    head, metrics, val = train_head(phase, tmp_path / "live")
    val_losses = [row["val_loss"] for row in live_history(tmp_path / "live")]
    assert len(val_losses) == 6 and metrics["epochs_run"] == 6
    best = int(np.argmin(val_losses))
    assert best < 5 and val_losses[-1] > val_losses[best] + 0.05, val_losses
    assert metrics["best_epoch"] == best + 1 and metrics["best_val_loss"] == val_losses[best]
    loss, _ = head.evaluate(val, verbose=0)
    assert loss == pytest.approx(val_losses[best], abs=1e-5)
    assert metrics["stopped_because"] == "all 6 epochs run"
    # the same swapped val labels with patience 2: val loss rises after the best epoch
    _, metrics, _ = train_head({**phase, "patience": 2, "epochs": 20}, tmp_path / "live2")
    assert metrics["epochs_run"] < 20
    assert metrics["stopped_because"] == "early stopping: val loss not better for 2 epochs"


def test_set_seed_makes_training_repeatable(tmp_path):
    phase = {**copy.deepcopy(params.validate(yaml.safe_load(open("params.yaml")))["transfer"]),
             "epochs": 2, "patience": 0}
    first, _, _ = train_head(phase, tmp_path / "a", seed=3)
    again, _, _ = train_head(phase, tmp_path / "b", seed=3)
    other, _, _ = train_head(phase, tmp_path / "c", seed=4)
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, c) for a, c in zip(first.get_weights(), other.get_weights()))


def test_averaged_weights_are_the_ones_val_scores_and_fit_keeps(tmp_path):
    """ema_epochs: each epoch's val loss is the averaged weights' (not the raw ones'), and the
    weights fit ends with are the best epoch's average, whether all epochs ran or early
    stopping ended the phase (Keras' finalize would otherwise leave the raw weights)."""
    from imgclf.charts import live_history
    from imgclf.training import ema_momentum

    phase = {**copy.deepcopy(params.validate(yaml.safe_load(open("params.yaml")))["transfer"]),
             "epochs": 6, "patience": 10, "learning_rate": 0.01}
    assert ema_momentum({**phase, "ema_epochs": 0}, 94) is None
    assert ema_momentum({**phase, "ema_epochs": 1}, 94) == pytest.approx(1 - 1 / 94)
    # One step an epoch: the average of one step is that step's weights, not a 0.99 average
    # of the first step that fine-tuning would then barely move.
    assert optimizer({**phase, "ema_epochs": 1}, steps_per_epoch=1).ema_momentum == 0
    assert optimizer({**phase, "ema_epochs": 1}, steps_per_epoch=8).ema_momentum == 0.875
    train_head({**phase, "ema_epochs": 0}, tmp_path / "raw")
    raw_losses = [row["val_loss"] for row in live_history(tmp_path / "raw")]
    for patience, folder in [(10, "all"), (2, "stopped")]:
        averaged = {**phase, "ema_epochs": 2, "patience": patience, "epochs": 12}
        head, metrics, val = train_head(averaged, tmp_path / folder)
        losses = [row["val_loss"] for row in live_history(tmp_path / folder)]
        assert not np.allclose(losses[:6], raw_losses[:len(losses[:6])])
        loss, _ = head.evaluate(val, verbose=0)
        assert loss == pytest.approx(min(losses), abs=1e-5), (patience, losses)
        assert metrics["best_val_loss"] == min(losses)
    assert metrics["epochs_run"] < 12  # the second run did stop early
