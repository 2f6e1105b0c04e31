"""Calibrated probabilities and the "unknown" output (docs/calibration.md), on a real trained
classifier whose outputs vary (tests/informative.py): the temperature is fitted, folded into
the model and saved with it; the unknown score depends on the image, its threshold is kept
in the saved model, and every export format takes the same unknown decisions."""
import numpy as np
import pytest

from imgclf import calibration
from imgclf import model as model_lib
from imgclf.dataset import batches
from imgclf.export import check, export, predictor
from imgclf.unknown import (figures, leave_one_out_scores, set_threshold, threshold_for,
                            with_references)
from tests.informative import SIZE, assert_informative, separable_images


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (4000, 5))
    confident = calibration.scaled(np.exp(logits), 1.0, False)  # softmax of the logits
    truth = calibration.scaled(confident, 2.5, False)  # the model is 2.5x over-confident
    labels = np.array([rng.choice(5, p=row) for row in truth])
    fitted = calibration.fit_temperature(confident, labels, False)
    assert fitted == pytest.approx(2.5, rel=0.1)
    before = calibration.expected_calibration_error(confident, labels, False)
    after = calibration.expected_calibration_error(calibration.scaled(confident, fitted, False),
                                                   labels, False)
    assert after < before / 3, (before, after)
    assert calibration.brier(calibration.scaled(confident, fitted, False), labels, False) < \
        calibration.brier(confident, labels, False)


def test_no_temperature_where_it_only_fits_vals_noise():
    # A calibrated, near-perfect model (labels drawn from its own probabilities, 3 mistakes
    # in 350): fitted on all of val the temperature moves off 1, but it does not lower the
    # loss of held-out val images, so the model is left as it is.
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 1, (350, 4))
    logits[np.arange(350), rng.integers(0, 4, 350)] += 7
    confident = calibration.scaled(np.exp(logits), 1.0, False)
    labels = np.array([rng.choice(4, p=row) for row in confident])
    assert 0 < np.sum(confident.argmax(axis=1) != labels) <= 10
    assert abs(calibration.minimising_temperature(confident, labels, False) - 1) > 0.03
    assert calibration.held_out_gain(confident, labels, False) <= 0
    assert calibration.fit_temperature(confident, labels, False) == 1.0
    # Three val images, one a mistake: every fold holds an image (no empty fold's NaN).
    three = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    assert np.isfinite(calibration.held_out_gain(three, np.array([0, 0, 1]), False))


def test_expected_calibration_error_and_brier_by_hand():
    # Two images at confidence 0.9 (one right), two at 0.6 (both right): bins 13 and 9.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    assert calibration.expected_calibration_error(probabilities, labels, False) == \
        pytest.approx((2 * abs(0.9 - 0.5) + 2 * abs(0.6 - 1.0)) / 4)
    assert calibration.brier(probabilities, labels, False) == \
        pytest.approx((0.02 + 1.62 + 0.32 + 0.32) / 4)
    rows = calibration.risk_coverage(probabilities, labels)
    assert [row["accuracy"] for row in rows] == [1.0, 0.5, 2 / 3, 0.75]


def test_the_threshold_keeps_the_share_asked_of_new_images_on_average():
    # Scores of 153 val images and of many new ones, all from one distribution: the split
    # conformal rank (147) keeps 0.955 of the new ones over many draws; numpy's quantile
    # (the 146th score) 0.948.
    rng = np.random.default_rng(0)
    kept = []
    for _ in range(400):
        val, new = rng.random(153), rng.random(2000)
        kept.append(np.mean(new <= threshold_for(val, 0.95)))
    assert np.mean(kept) >= 0.952, np.mean(kept)
    assert threshold_for(np.arange(10.0), 0.99) == 9.0  # rank beyond n: the highest score
    assert threshold_for(np.arange(99.0), 0.95) == 94.0  # the 95th of 99


def saved_copy(model, path):
    model.save(path)
    return model_lib.load(path)


def test_the_temperature_is_applied_inside_the_saved_model(tmp_path, classifier):
    model = saved_copy(classifier, tmp_path / "copy.keras")  # the fixture stays as it is
    images, labels = separable_images(3, 6, seed=5)
    images = images.astype(np.float32)
    before = model_lib.probabilities(model, images)
    assert_informative(before, labels)
    model_lib.set_temperature(model, 4.0)
    loaded = saved_copy(model, tmp_path / "calibrated.keras")
    after = model_lib.probabilities(loaded, images)
    assert model_lib.temperature(loaded) == pytest.approx(4.0)
    np.testing.assert_allclose(after, calibration.scaled(before, 4.0, False), atol=1e-5)
    assert np.abs(after - before).max() > 0.01  # softer: the scaling did something
    assert (after.argmax(axis=1) == before.argmax(axis=1)).all()


def test_multi_label_temperatures_keep_each_labels_decisions(tmp_path, classifier):
    model = saved_copy(classifier, tmp_path / "copy.keras")
    model_lib.set_thresholds(model, [0.3, 0.5, 0.8])  # as the finetune stage sets them
    images = separable_images(3, 6, seed=6)[0].astype(np.float32)
    before = model_lib.probabilities(model, images)
    model_lib.set_temperature(model, [0.5, 2.0, 3.0])
    after = model_lib.probabilities(model, images)
    # The sigmoid head's columns were scaled alike: each decision is where it was.
    assert ((after >= model_lib.thresholds(model)) == (before >= [0.3, 0.5, 0.8])).all()
    assert not np.allclose(model_lib.thresholds(model), [0.3, 0.5, 0.8])


def unlike_images(count, seed, size=40):
    """Images of none of separable_images' classes (40 px, as theirs): smooth colour
    gradients, no stripe."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)
    images = [np.stack([ramp[:, None] * rng.uniform(0, 255) + ramp[None, :] * rng.uniform(0, 255)
                        * (1 - ramp[:, None])] * 3, axis=-1) for _ in range(count)]
    return np.clip(np.stack(images), 0, 255).astype(np.float32)


@pytest.fixture
def calibrated(tmp_path, classifier):
    """The classifier with its unknown score, saved and loaded back."""
    model = saved_copy(classifier, tmp_path / "copy.keras")
    train, _ = separable_images(3, 16, seed=0)
    val, val_labels = separable_images(3, 20, seed=7)
    model = with_references(model, train, 16)
    val_scores = model_lib.outputs(model, batches(val, val_labels, 16))["unknown_score"]
    found = set_threshold(model, val_scores, 0.95)
    assert found["val_known_kept"] >= 0.95 and found["unknown_references"] == 48
    return saved_copy(model, tmp_path / "calibrated.keras"), found["unknown_threshold"]


def test_the_unknown_score_reads_the_image_and_its_threshold_is_saved(calibrated):
    model, threshold = calibrated
    assert model_lib.unknown_threshold(model) == pytest.approx(threshold)
    known, labels = separable_images(3, 10, seed=8)
    known_out = model_lib.outputs(model, known.astype(np.float32))
    unknown_out = model_lib.outputs(model, unlike_images(30, seed=9))
    assert_informative(known_out["probabilities"], labels)
    assert known_out["unknown_score"].std() > 0  # varies from image to image
    found = figures(known_out, unknown_out)
    assert found["unknown_auroc"] >= 0.95 and found["unknown_rejected"] >= 0.9, found
    assert found["known_kept"] >= 0.8, found
    # The model's own decision is its score against the stored threshold, with TTA too.
    scores = np.r_[known_out["unknown_score"], unknown_out["unknown_score"]]
    decided = np.r_[known_out["unknown"], unknown_out["unknown"]]
    assert (model_lib.unknown_decisions(model, scores) == decided).all()
    mirrored = model_lib.outputs(model, unlike_images(30, seed=9), tta=True)
    decided = model_lib.unknown_decisions(model, mirrored["unknown_score"])
    assert (mirrored["unknown"] == decided).all()


def test_every_format_takes_the_keras_models_unknown_decisions(tmp_path, calibrated):
    model, _ = calibrated
    written = export(model, str(tmp_path), ["saved_model", "tflite_float32"], None)
    predictors = {name: predictor(name, path, SIZE) for name, path in written.items()}
    known, labels = separable_images(3, 8, seed=10)
    images = np.r_[known.astype(np.float32), unlike_images(24, seed=11)]
    everything = np.r_[labels, np.zeros(24, int)]
    reference = model_lib.outputs(model, images)["unknown"]
    assert 0 < reference.mean() < 1  # some of each: the comparison can fail
    _, count, results = check(model, predictors, [(images, everything)])
    assert count == 48
    assert all(result["unknown_flipped"] == 0 for result in results.values()), results

    def inverted(images):  # a format that decides unknown the other way round
        outputs = predictors["saved_model"](images)
        return {**outputs, "unknown": 1 - outputs["unknown"]}
    results = check(model, {"inverted": inverted}, [(images, everything)])[2]
    assert results["inverted"]["unknown_flipped"] == 48 == results["inverted"]["flipped"]


def test_leave_one_out_scores_are_the_scores_train_images_get_without_themselves(classifier):
    train = separable_images(3, 16, seed=0)[0].astype(np.float32)
    model = with_references(classifier, train, 16)
    own = model_lib.outputs(model, train)["unknown_score"][:, 0]
    assert np.abs(own).max() < 1e-5  # each train image is its own nearest reference
    left_out = leave_one_out_scores(model)
    assert left_out.shape == (48,) and left_out.min() > 1e-4
    # The last image's score from a model whose references are the other 47 images.
    without_last = with_references(classifier, train[:-1], 16)
    expected = model_lib.outputs(without_last, train[-1:])["unknown_score"][0, 0]
    assert left_out[-1] == pytest.approx(expected, abs=1e-5)


def test_train_scores_may_raise_the_threshold_never_lower_it(calibrated):
    model, val_threshold = calibrated
    val_scores = np.linspace(0, val_threshold, 20)  # the 19th of 20 is the val threshold
    low, high = np.linspace(0, val_threshold / 2, 100), np.linspace(0, 3 * val_threshold, 100)
    assert set_threshold(model, val_scores, 0.95, low)["unknown_threshold"] == \
        pytest.approx(threshold_for(val_scores, 0.95))
    found = set_threshold(model, val_scores, 0.95, high)
    assert found["unknown_threshold"] == pytest.approx(threshold_for(high, 0.95))
    assert model_lib.unknown_threshold(model) == pytest.approx(found["unknown_threshold"])
    assert found["train_known_kept"] >= 0.95 and found["val_known_kept"] == 1.0


def test_a_model_without_the_unknown_output_still_predicts(classifier):
    images = separable_images(3, 2, seed=12)[0].astype(np.float32)
    outputs = model_lib.outputs(classifier, images, tta=True)
    assert list(outputs) == ["probabilities"] and model_lib.unknown_detector(classifier) == (None, None)
    assert model_lib.temperature(classifier) == 1.0
