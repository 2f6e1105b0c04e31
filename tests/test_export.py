"""The export stage's pieces on a trained classifier whose outputs vary
(tests/informative.py): every format is written, runs on its own runtime, and gives the Keras
model's probabilities, column for column."""
import numpy as np

import pytest
from PIL import Image

from imgclf.images import load_image
from imgclf.errors import UserError
from imgclf.export import (check, export, failed_checks, full_size_batches, leave_out_failed,
                           predictor, representative_images, size_in_bytes)
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
        probabilities = predictor(name, path, SIZE)(images)["probabilities"]
        assert probabilities.shape == (12, 3), name
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=0.02, err_msg=name)
        np.testing.assert_allclose(probabilities, expected, atol=tolerance[name], err_msg=name)
        assert (probabilities.argmax(axis=1) == expected.argmax(axis=1)).all(), name

    predictors = {name: predictor(name, written[name], SIZE) for name in FORMATS}
    keras_accuracy, count, results = check(classifier, predictors, [(images[:6], labels[:6]),
                                                                    (images[6:], labels[6:])])
    right = float(np.mean(expected.argmax(axis=1) == labels))
    assert (keras_accuracy, count) == (right, 12)
    assert results == {name: {"flipped": 0, "unknown_flipped": 0, "agreement": 1.0, "accuracy": right}
                       for name in FORMATS}

    # Originals of several sizes, far above the model's input, one per batch.
    files = []
    for index, (pixels, size) in enumerate(zip(images.astype(np.uint8), [300, 512, 1000] * 4)):
        files.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(pixels).resize((size, size), Image.NEAREST).save(files[-1])
    keras_accuracy, count, results = check(classifier, predictors, full_size_batches(files, labels))
    assert keras_accuracy >= 0.9 and count == 12
    assert all(result["flipped"] == 0 for result in results.values()), results


def test_the_check_notices_a_format_whose_columns_are_in_another_order(classifier):
    images, labels = separable_images(3, 4, seed=3)
    images = images.astype(np.float32)
    reversed_columns = {"tflite_float32": lambda x: classifier.predict(x, verbose=0)[:, ::-1]}
    keras_accuracy, count, results = check(classifier, reversed_columns, [(images, labels)])
    assert keras_accuracy == 1.0
    assert results["tflite_float32"]["flipped"] == 8  # only the middle class agrees
    assert failed_checks(results, keras_accuracy, count)


def test_the_models_resize_matches_how_training_images_were_prepared(tmp_path, classifier):
    # A large photo given to the model is shrunk inside it as preprocess shrank the training
    # images (PIL, antialiased); plain bilinear would sample noise into aliasing.
    rng = np.random.default_rng(0)
    smooth = np.linspace(0, 255, 1024)[None, :, None] * np.ones((1024, 1, 3))
    photo = np.clip(smooth + rng.normal(0, 60, (1024, 1024, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    prepared = load_image(str(tmp_path / "photo.png"), SIZE).astype(np.float32)
    inside = classifier.get_layer("resize")(photo[None].astype(np.float32)).numpy()[0]
    assert np.abs(inside - prepared).mean() < 1.0  # grey levels; bilinear alone: 20


def test_a_calibration_sample_covers_the_whole_split():
    train = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones((1, 4, 4, 3), np.uint8)
    sample = [batch[0] for batch in representative_images(train, 4, 4)()]
    assert [int(batch[0, 0, 0, 0]) for batch in sample] == [0, 3, 6, 9]
    assert all(batch.shape == (1, 4, 4, 3) and batch.dtype == np.float32 for batch in sample)


def result(flipped, accuracy, count=190):
    return {"flipped": flipped, "agreement": 1 - flipped / count, "accuracy": accuracy}


def test_failed_checks_judge_flipped_images_and_accuracy_on_small_splits():
    # Two flips in 190 (the float16 MobileNetV2-0.35 of the sample) is noise, not a bad file.
    passing = {"saved_model": result(0, 0.963), "tflite_float16": result(2, 0.963 - 2 / 190),
               "tflite_int8": result(3, 0.963 - 1 / 190)}
    assert failed_checks(passing, keras_accuracy=0.963, count=190) == {}
    failing = {"tflite_float16": result(4, 0.963), "tflite_int8": result(3, 0.963 - 3 / 190)}
    assert failed_checks(failing, keras_accuracy=0.963, count=190) == {
        "tflite_float16": "tflite_float16 changes the answer (class or unknown) for 4 of 190 "
                          "images (at most 3 allowed)",
        "tflite_int8": "tflite_int8 is 1.6 points less accurate than the Keras model (0.9472 "
                       "against 0.9630; at most 1.1 allowed on 190 images)"}
    # On 1,000 images the bounds are 2% of the images and 1 point.
    assert failed_checks({"tflite_int8": result(20, 0.95, 1000)}, 0.96, 1000) == {}
    assert failed_checks({"tflite_int8": result(21, 0.96, 1000)}, 0.96, 1000)


def test_a_failed_format_is_left_out_with_a_warning_unless_strict(tmp_path, capsys):
    written = {}
    for name in ("saved_model", "tflite_float16"):
        written[name] = str(tmp_path / name)
        (tmp_path / name).write_text("model")
    failures = {"tflite_float16": ["tflite_float16 changes the answer (class or unknown) for "
                                   "4 of 190 images (at most 3 allowed)"]}
    with pytest.raises(UserError, match="export.strict is true"):
        leave_out_failed(dict(written), failures, True, "metrics/export.json")
    assert (tmp_path / "tflite_float16").exists()
    assert leave_out_failed(written, failures, False, "metrics/export.json") == ["tflite_float16"]
    assert list(written) == ["saved_model"] and (tmp_path / "saved_model").exists()
    assert not (tmp_path / "tflite_float16").exists()
    assert "warning: tflite_float16 changes the answer (class or unknown) for 4 of 190" in capsys.readouterr().err
