"""The learning-rate finder on real features and the tiny pipeline's outputs: the sweep
finds where the loss falls and where it diverges, and the rate it suggests trains."""
import re

import keras
import numpy as np

from imgclf import lr_find
from imgclf.model import build_head
from imgclf.training import compile_model
from tests.conftest import run
from tests.informative import pretrained_extractor, separable_images


def test_smoothing_is_bias_corrected_and_the_suggestion_read_off_the_curve():
    np.testing.assert_allclose(lr_find.smoothed([2.0, 2.0, 2.0]), [2.0, 2.0, 2.0])
    rates = lr_find.rates(1e-4, 1e0, 1000)
    # A new head: the loss falls to its lowest at 1e-2 (seen about 0.2 decades later through
    # the smoothing's lag, as fastai's), then climbs: a tenth of the lowest.
    falls_then_climbs = 1 + (np.log10(rates) + 2) ** 2
    assert -3.0 < np.log10(lr_find.suggestion(rates, falls_then_climbs)) < -2.6
    # A trained model: the loss is low and flat until training breaks at 1e-2.
    flat_then_breaks = 0.05 + np.maximum(0, np.log10(rates) + 2)
    assert -3.3 < np.log10(lr_find.suggestion(rates, flat_then_breaks)) < -2.7


def head_and_data(seed=0, noisy=0):
    """A head on real features of separable images, `noisy` of their labels replaced at
    random (so the loss cannot reach 0, and too high a rate makes it climb)."""
    keras.utils.set_random_seed(seed)
    images, labels = separable_images(3, 16, seed=seed)
    rng = np.random.default_rng(seed)
    changed = rng.choice(len(labels), noisy, replace=False)
    labels[changed] = rng.integers(0, 3, noisy)
    features = pretrained_extractor().predict(images.astype("float32"), verbose=0)
    head = build_head(features.shape[1:], 3, "avg", [16], 0.0)
    # SGD: Adam's normalised steps fit these separable features even at a rate of 10.
    phase = {"optimizer": "sgd", "momentum": 0.9, "learning_rate": 1e-7, "weight_decay": 0.0, "clipnorm": 0.0,
             "label_smoothing": 0.0, "epochs": 1, "schedule": "constant", "warmup_epochs": 0,
             "ema_epochs": 0}
    compile_model(head, phase, steps_per_epoch=1)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((features, np.eye(3)[labels])).shuffle(48, seed=0).batch(8)
    return head, dataset


def test_the_sweep_finds_the_fall_and_the_divergence_and_the_suggestion_trains():
    head, dataset = head_and_data(noisy=12)
    used, losses = lr_find.sweep(head, dataset, lr_find.rates(1e-7, 10.0, 300))
    curve = lr_find.smoothed(losses)
    assert used[0] == 1e-7 and np.all(np.diff(used) > 0)
    assert curve.min() < 0.7 * curve[:20].mean()  # it learned somewhere in the sweep
    assert len(losses) < 300 or curve[-1] > 2 * curve.min()  # and then diverged
    suggested = lr_find.suggestion(used, losses)
    assert 1e-5 < suggested < 1.0, suggested

    def loss_after_training(rate):
        model, data = head_and_data(seed=1)
        model.optimizer.learning_rate = rate
        history = model.fit(data, epochs=20, verbose=0)
        return history.history["loss"][-1]

    initial = float(np.log(3))
    assert loss_after_training(suggested) < 0.5 * initial
    assert loss_after_training(suggested / 1e4) > 0.9 * initial  # too small a rate: stuck


def test_the_command_suggests_a_rate_for_each_phase(tiny_run, keras_home):
    for phase, steps in (("transfer", 100), ("finetune", 30)):
        output = run(tiny_run, "python", "-m", "imgclf.lr_find", "--phase", phase, "--steps",
                     str(steps), env={"KERAS_HOME": keras_home})
        assert re.search(rf"lr_find: \d+ {phase} steps from 1e-07 to .*; suggested "
                         rf"{phase}\.learning_rate [\d.e-]+ \(dvc exp run -S {phase}\.learning_rate=",
                         output), output[-2000:]
        assert (tiny_run / f"lr_find_{phase}.png").stat().st_size > 5_000
