"""The export stage's pieces on a real (tiny, random-weight) classifier: every format is
written, runs on its own runtime, and gives the Keras model's probabilities."""
import numpy as np

from stages.export import (check, export, failed_checks, predictor, representative_images,
                           size_in_bytes)
from tests.test_model import tiny_classifier

FORMATS = ["saved_model", "tflite_float32", "tflite_float16", "tflite_int8"]


def test_every_format_runs_and_matches_the_keras_model(tmp_path):
    model = tiny_classifier(size=32)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (20, 40, 40, 3), dtype=np.uint8)
    written = export(model, str(tmp_path), FORMATS, representative_images(train, 8, 32))
    assert sorted(written) == sorted(FORMATS)
    assert all(size_in_bytes(path) > 10_000 for path in written.values())

    # 40-pixel images: the SavedModel resizes inside, the .tflite callers resize to 32 first.
    images = rng.uniform(0, 255, (6, 40, 40, 3)).astype(np.float32)
    expected = model.predict(images, verbose=0)
    tolerance = {"saved_model": 1e-5, "tflite_float32": 1e-4, "tflite_float16": 2e-2,
                 "tflite_int8": 0.1}
    for name, path in written.items():
        probabilities = predictor(name, path, 32)(images)
        assert probabilities.shape == (6, 3), name
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=0.02, err_msg=name)
        np.testing.assert_allclose(probabilities, expected, atol=tolerance[name], err_msg=name)

    labels = np.argmax(expected, axis=1)
    float_formats = {name: predictor(name, written[name], 32)
                     for name in ("saved_model", "tflite_float32")}
    keras_accuracy, count, results = check(model, float_formats, [(images, labels)])
    assert (keras_accuracy, count) == (1.0, 6)
    assert results == {name: {"agreement": 1.0, "accuracy": 1.0} for name in float_formats}


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
