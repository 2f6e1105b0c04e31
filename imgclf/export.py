"""Exporting a Keras model as a SavedModel and TensorFlow Lite files, and checking each
file against the Keras model before it is shipped (the export stage; docs/export.md).

models/export/saved_model/          signature "serve": float32 RGB images, 0-255, any size
                                    (resized inside, antialiased, as training images were)
models/export/model_<kind>.tflite   float32, float16 (weights) or int8 (weights and
                                    activations, calibrated on train images); input
                                    [batch, size, size, 3] float32 0-255 (resize first),
                                    outputs probabilities, unknown_score, unknown (0/1)
models/export/labels.txt            the class of each output column, one per line
metrics/export.json                 per format: bytes, flipped images, accuracy, passed

Each format is checked on the test split as prepared, and on up to FULL_SIZE_IMAGES of its
files at their original size (what apps are given). A format fails when more images change
class than a small test set can explain, or when it loses accuracy (see failed_checks). A
failed format is left out of models/export/ with a warning and its figures, and the stage
still finishes, so a good experiment is not thrown away; export.strict: true makes a failed
format stop the stage (for release builds).
"""
import math
import os
import shutil
import sys

import numpy as np

from imgclf.dataset import batches
from imgclf.images import load_image
from imgclf.errors import UserError
from imgclf.model import as_outputs, label_thresholds
from imgclf.multilabel import decide

MAX_FLIPPED = 0.02  # a format may change the class of 2% of the images (at least 3 images)
MAX_DROP_POINTS = 1.0  # and lose at most 1 point of accuracy (at least 2 images' worth)
FULL_SIZE_IMAGES = 50
# Originals larger than this on their longer side are checked reduced to it: a 170-megapixel
# photo at full size was 2 GB of float32; 2,048 px is still 3x the largest backbone input.
FULL_SIZE_SIDE = 2048


def tflite_options(kind, representative):
    """Converter settings of each TensorFlow Lite kind; only built-in ops, so the files run
    on the plain LiteRT runtime."""
    import tensorflow as tf

    builtins = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if kind == "float32":
        return {"target_spec": builtins}
    if kind == "float16":
        return {"optimizations": [tf.lite.Optimize.DEFAULT],
                "target_spec": {**builtins, "supported_types": [tf.float16]}}
    # Every op in int8; the input and output stay float32, so all files take the same pixels.
    return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative,
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}}


def representative_images(images, count, size):
    """A calibration sample for int8: `count` train images spread evenly over the split
    (which is ordered by class, so every class is in it), one per call, at the model's size."""
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).astype(int)

    def generate():
        for index in picks:
            yield [resized(np.asarray(images[index:index + 1], np.float32), size)]
    return generate


def resized(images, size):
    """Images at the exported models' fixed input size, resized as the Keras model's own
    Resizing layer does (bilinear, antialiased); unchanged when they already have it."""
    if images.shape[1:3] == (size, size):
        return images
    import tensorflow as tf

    return tf.image.resize(images, (size, size), antialias=True).numpy()


def export(model, path, formats, representative):
    """Write each format under path; returns {format: file or folder}."""
    import tensorflow as tf

    from imgclf.model import fixed_size_model, input_resolution

    size = input_resolution(model)
    written = {}
    if "saved_model" in formats:
        written["saved_model"] = os.path.join(path, "saved_model")
        model.export(written["saved_model"], format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    for kind in ("float32", "float16", "int8"):
        if f"tflite_{kind}" in formats:
            file = os.path.join(path, f"model_{kind}.tflite")
            fixed_size_model(model).export(file, format="litert", verbose=False,
                         input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)],
                         **tflite_options(kind, representative))
            written[f"tflite_{kind}"] = file
    return written


def predictor(name, path, size):
    """A function from a batch of images (at any size) to the exported model's outputs
    (as_outputs); .tflite files run on the LiteRT interpreter that apps use."""
    import tensorflow as tf

    if name == "saved_model":
        loaded = tf.saved_model.load(path)  # kept referenced: serve needs its variables
        return lambda images: as_outputs(loaded.serve(tf.convert_to_tensor(images, tf.float32)))
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path, num_threads=os.cpu_count()).get_signature_runner()
    (input_name,) = runner.get_input_details()

    def predict(images):  # the runner resizes its input to the batch
        return as_outputs(runner(**{input_name: resized(np.asarray(images, np.float32), size)}))
    return predict


def decisions(model, probabilities):
    """Class indices (single_label: the most probable), or 0/1 per label (multi_label: each
    label at or above its threshold)."""
    thresholds = label_thresholds(model)
    if thresholds is None:
        return np.asarray(probabilities).argmax(axis=-1)
    return decide(probabilities, thresholds)


def check(model, predictors, dataset):
    """Per format, how many images it answers otherwise than the Keras model (flipped: the
    class, for multi_label any label at the model's thresholds, or the unknown decision;
    unknown_flipped: the unknown decision alone) and how many right (multi_label: every
    label); the Keras model's accuracy and the image count. dataset yields (images, labels)
    batches; images of one batch share a size."""
    flipped = {n: 0 for n in predictors}
    unknown_flipped, correct = dict(flipped), dict(flipped)
    keras_correct, count = 0, 0

    def differs(a, b):  # per image
        return (a != b).reshape(len(a), -1).any(axis=1)

    for images, labels in dataset:
        labels = np.asarray(labels)
        outputs = as_outputs(model(images, training=False))
        reference = decisions(model, outputs["probabilities"])
        keras_correct += int(np.sum(~differs(reference, labels)))
        count += len(labels)
        for name, predict in predictors.items():
            exported = as_outputs(predict(images))
            predicted = decisions(model, exported["probabilities"])
            unknown = np.zeros(len(labels), bool)
            if "unknown" in outputs:
                unknown = differs(exported["unknown"], outputs["unknown"])
            flipped[name] += int(np.sum(differs(predicted, reference) | unknown))
            unknown_flipped[name] += int(np.sum(unknown))
            correct[name] += int(np.sum(~differs(predicted, labels)))
    return keras_correct / count, count, {
        name: {"flipped": flipped[name], "unknown_flipped": unknown_flipped[name],
               "agreement": 1 - flipped[name] / count,
               "accuracy": correct[name] / count} for name in predictors}


def full_size_batches(files, labels, limit=FULL_SIZE_IMAGES):
    """Up to `limit` of the files, spread over the split, each decoded at its own size (up
    to FULL_SIZE_SIDE on its longer side) as a batch of one."""
    picks = np.unique(np.linspace(0, len(files) - 1, min(limit, len(files))).astype(int))
    for index in picks:
        pixels = load_image(files[index], max_side=FULL_SIZE_SIDE)
        yield pixels[None].astype(np.float32), labels[index:index + 1]


def allowed_flips(count):
    return max(3, math.floor(MAX_FLIPPED * count))


def failed_checks(results, keras_accuracy, count):
    """{format: why it fails} for each format that fails on `count` images."""
    allowed = allowed_flips(count)
    allowed_drop = max(MAX_DROP_POINTS / 100, 2 / count)
    failures = {}
    for name, result in results.items():
        drop = keras_accuracy - result["accuracy"]
        if result["flipped"] > allowed:
            failures[name] = (f"{name} changes the answer (class or unknown) for "
                              f"{result['flipped']} of {count} images (at most {allowed} allowed)")
        elif drop > allowed_drop + 1e-9:
            failures[name] = (f"{name} is {100 * drop:.1f} points less accurate than the Keras "
                              f"model ({result['accuracy']:.4f} against {keras_accuracy:.4f}; "
                              f"at most {100 * allowed_drop:.1f} allowed on {count} images)")
    return failures


def size_in_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, file))
               for root, _, files in os.walk(path) for file in files)


def leave_out_failed(written, failures, strict, figures_file):
    """Delete each format that failed its check ({format: [why]}) from written (and disk),
    warning on stderr; with strict, stop the stage instead. Returns the names left out."""
    lines = [line for name in failures for line in failures[name]]
    if lines and strict:
        raise UserError("export: " + "; ".join(lines) + f" (figures in {figures_file}); "
                        "export.strict is true (docs/export.md)")
    for name in failures:
        path = written.pop(name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    for line in lines:
        print(f"export: warning: {line}; left out (figures in {figures_file})", file=sys.stderr)
    return list(failures)


def check_all(model, written, split, size, unknowns=None):
    """The check on split, (images, labels, files) as prepared, on full-size originals and,
    given an array of them (evaluate.unknown_dir's), on images of none of the classes: their
    flips count against a format like the others. Returns {"keras": ..., format: {...}} and
    {format: [why it failed each check]}."""
    images, labels, files = split
    predictors = {name: predictor(name, path, size) for name, path in written.items()}
    accuracy, count, results = check(model, predictors, batches(images, labels, 64))
    full_accuracy, full_count, full = check(model, predictors, full_size_batches(files, labels))
    failures = {name: [] for name in written}
    for name, line in failed_checks(results, accuracy, count).items():
        failures[name].append(line)
    for name, line in failed_checks(full, full_accuracy, full_count).items():
        failures[name].append(f"{line} at full size")
    other = {}
    if unknowns is not None:  # no classes to be right about: flips alone
        no_labels = np.zeros(len(unknowns), int)
        _, unknown_count, other = check(model, predictors, batches(unknowns, no_labels, 64))
        for name, result in other.items():
            if result["flipped"] > allowed_flips(unknown_count):
                failures[name].append(
                    f"{name} answers {result['flipped']} of {unknown_count} images of "
                    f"evaluate.unknown_dir otherwise (at most {allowed_flips(unknown_count)})")
    for name, path in written.items():
        full_size = {f"full_size_{key}": value for key, value in full[name].items()}
        unknown_dir = {f"unknown_dir_{key}": other[name][key]
                       for key in ("flipped", "unknown_flipped") if name in other}
        results[name] = {"bytes": size_in_bytes(path), **results[name], **full_size,
                         **unknown_dir, "passed": int(not failures[name])}
    failures = {name: lines for name, lines in failures.items() if lines}
    keras = {"accuracy": accuracy, "n": count, "full_size_accuracy": full_accuracy,
             "full_size_n": full_count}
    return {"keras": keras, **results}, failures


def write_labels(folder, class_names, thresholds=None):
    """labels.txt (the class of each output column) and, for multi_label, thresholds.txt
    (where each sigmoid says yes), one per line: what apps need beside the model."""
    with open(os.path.join(folder, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in class_names))
    if thresholds is not None:
        with open(os.path.join(folder, "thresholds.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"{value:.6f}\n" for value in thresholds))
