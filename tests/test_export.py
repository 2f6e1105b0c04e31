"""The export stage's pieces on a trained classifier whose outputs vary
(tests/informative.py): every format is written, runs on its own runtime, and gives the Keras
model's probabilities, column for column."""
import numpy as np

from stages.export import (check, export, failed_checks, predictor, representative_images,
                           size_in_bytes)
from tests.informative import SIZE, assert_informative, separable_images

FORMATS = ["saved_model", "tflite_float32", "tflite_float16", "tflite_int8"]


def test_every_format_runs_and_matches_the_keras_model(tmp_path, classifier):
    train, _ = separable_images(3, 8, size=80, seed=1)
    written = export(classifier, str(tmp_path), FORMATS, representative_images(train, 12, SIZE))
    assert sorted(written) == sorted(FORMATS)
    assert all(size_in_bytes(path) > 10_000 for path in written.values())

    # 80-pixel images: the SavedModel resizes inside, the .tflite callers resize to 64 first.
    images, labels = separable_images(3, 4, size=80, seed=2)
    images = images.astype(np.float32)
    expected = classifier.predict(images, verbose=0)
    assert_informative(expected, labels)
    # float16 weights move probabilities by ~0.02; int8 activations, calibrated on 12 images,
    # by up to ~0.4: for int8 the class of each image (checked below) is what must hold.
    tolerance = {"saved_model": 1e-5, "tflite_float32": 1e-4, "tflite_float16": 0.05,
                 "tflite_int8": 0.5}
    for name, path in written.items():
        probabilities = predictor(name, path, SIZE)(images)
        assert probabilities.shape == (12, 3), name
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=0.02, err_msg=name)
        np.testing.assert_allclose(probabilities, expected, atol=tolerance[name], err_msg=name)
        assert (probabilities.argmax(axis=1) == labels).all(), name

    predictors = {name: predictor(name, written[name], SIZE) for name in FORMATS}
    keras_accuracy, count, results = check(classifier, predictors, [(images[:6], labels[:6]),
                                                                    (images[6:], labels[6:])])
    assert (keras_accuracy, count) == (1.0, 12)
    assert results == {name: {"agreement": 1.0, "accuracy": 1.0} for name in FORMATS}


def test_the_check_notices_a_format_whose_columns_are_in_another_order(classifier):
    images, labels = separable_images(3, 4, seed=3)
    images = images.astype(np.float32)
    reversed_columns = {"tflite_float32": lambda x: classifier.predict(x, verbose=0)[:, ::-1]}
    keras_accuracy, _, results = check(classifier, reversed_columns, [(images, labels)])
    assert keras_accuracy == 1.0
    assert results["tflite_float32"]["agreement"] <= 0.34  # only the middle class agrees
    assert failed_checks(results, keras_accuracy)


def test_a_calibration_sample_covers_the_whole_split():
    train = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones((1, 4, 4, 3), np.uint8)
    sample = [batch[0] for batch in representative_images(train, 4, 4)()]
    assert [int(batch[0, 0, 0, 0]) for batch in sample] == [0, 3, 6, 9]
    assert all(batch.shape == (1, 4, 4, 3) and batch.dtype == np.float32 for batch in sample)


def test_failed_checks_name_the_format_and_the_bound():
    passing = {"saved_model": {"agreement": 1.0, "accuracy": 0.9},
               "tflite_float16": {"agreement": 0.99, "accuracy": 0.9},
               "tflite_int8": {"agreement": 0.8, "accuracy": 0.895}}
    assert failed_checks(passing, keras_accuracy=0.9) == []

    failing = {"tflite_float16": {"agreement": 0.985, "accuracy": 0.9},
               "tflite_int8": {"agreement": 0.95, "accuracy": 0.88}}
    assert failed_checks(failing, keras_accuracy=0.9) == [
        "tflite_float16 agrees with the Keras model on 98.5% of the test images "
        "(at least 99% needed)",
        "tflite_int8 is 2.0 points less accurate than the Keras model (0.8800 against 0.9000; "
        "at most 1 allowed)"]
