"""export: models/model.keras as a TensorFlow SavedModel and TensorFlow Lite files, with a
labels file, each checked against the Keras model on the test split before it counts.

models/export/saved_model/          signature "serve": float32 RGB images, 0-255, any size
models/export/model_<kind>.tflite   float32, float16 (weights) or int8 (weights and
                                    activations, calibrated on train images); input
                                    [batch, size, size, 3] float32 0-255, output probabilities
models/export/labels.txt            the class of each output column, one per line
metrics/export.json                 per format: bytes, top-1 agreement, test accuracy

A float format that agrees with the Keras model on fewer than 99% of the test images, or an
integer model more than 1 point less accurate, stops the stage (its figures are still written
to metrics/export.json), so a model that does not survive conversion is never shipped.
"""
import os

import numpy as np

from imgclf import params as params_lib
from imgclf.dataset import batches, evaluation_split, read_split
from imgclf.errors import UserError, run_stage
from imgclf.files import replaced_when_done, write_json

PREPARED = "data/prepared"
MODEL = "models/model.keras"
OUTPUT = "models/export"
METRICS = "metrics/export.json"
MIN_AGREEMENT = 0.99  # float formats: top-1 agreement with the Keras model
MAX_DROP_POINTS = 1.0  # tflite_int8: test accuracy points below the Keras model's


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
    Resizing layer does (bilinear); unchanged when they already have it."""
    if images.shape[1:3] == (size, size):
        return images
    import tensorflow as tf

    return tf.image.resize(images, (size, size)).numpy()


def export(model, path, formats, representative):
    """Write each format under path; returns {format: file or folder}."""
    import tensorflow as tf

    size = model.get_layer("resize").height
    written = {}
    if "saved_model" in formats:
        written["saved_model"] = os.path.join(path, "saved_model")
        model.export(written["saved_model"], format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    for kind in ("float32", "float16", "int8"):
        if f"tflite_{kind}" in formats:
            file = os.path.join(path, f"model_{kind}.tflite")
            model.export(file, format="litert", verbose=False,
                         input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)],
                         **tflite_options(kind, representative))
            written[f"tflite_{kind}"] = file
    return written


def predictor(name, path, size):
    """A function from a batch of images (at any size) to the exported model's probabilities;
    .tflite files run on the LiteRT interpreter that apps use."""
    import tensorflow as tf

    if name == "saved_model":
        loaded = tf.saved_model.load(path)  # kept referenced: serve needs its variables
        return lambda images: loaded.serve(tf.convert_to_tensor(images, tf.float32)).numpy()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def predict(images):
        batch = resized(np.asarray(images, np.float32), size)
        interpreter.resize_tensor_input(source["index"], batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])
    return predict


def check(model, predictors, dataset):
    """Top-1 agreement of each exported model with the Keras model, and test accuracy of
    both, batch by batch."""
    agree, correct, keras_correct, count = {n: 0 for n in predictors}, {n: 0 for n in predictors}, 0, 0
    for images, labels in dataset:
        labels = np.asarray(labels)
        reference = model.predict_on_batch(images).argmax(axis=1)
        keras_correct += int(np.sum(reference == labels))
        count += len(labels)
        for name, predict in predictors.items():
            predicted = predict(images).argmax(axis=1)
            agree[name] += int(np.sum(predicted == reference))
            correct[name] += int(np.sum(predicted == labels))
    return keras_correct / count, count, {name: {"agreement": agree[name] / count,
                                                 "accuracy": correct[name] / count}
                                          for name in predictors}


def failed_checks(results, keras_accuracy):
    """One line per format that fails its check; empty when all pass."""
    failures = []
    for name, result in results.items():
        if name == "tflite_int8":
            drop = 100 * (keras_accuracy - result["accuracy"])
            if drop > MAX_DROP_POINTS:
                failures.append(f"{name} is {drop:.1f} points less accurate than the Keras model "
                                f"({result['accuracy']:.4f} against {keras_accuracy:.4f}; at most "
                                f"{MAX_DROP_POINTS:g} allowed)")
        elif result["agreement"] < MIN_AGREEMENT:
            failures.append(f"{name} agrees with the Keras model on {100 * result['agreement']:.1f}% "
                            f"of the test images (at least {100 * MIN_AGREEMENT:g}% needed)")
    return failures


def size_in_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, file))
               for root, _, files in os.walk(path) for file in files)


def main():
    import keras

    from imgclf.model import class_names

    settings = params_lib.load()["export"]
    model = keras.models.load_model(MODEL)
    size = model.get_layer("resize").height
    split = evaluation_split(PREPARED)
    train, _, _ = read_split(PREPARED, "train")
    with replaced_when_done(OUTPUT) as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "labels.txt"), "w") as f:
            f.write("".join(f"{name}\n" for name in class_names(model)))
        written = export(model, tmp, settings["formats"],
                         representative_images(train, settings["representative_images"], size))
        images, labels, _ = read_split(PREPARED, split)
        keras_accuracy, count, results = check(
            model, {name: predictor(name, path, size) for name, path in written.items()},
            batches(images, labels, 64))
        for name, path in written.items():
            results[name] = {"bytes": size_in_bytes(path), **results[name]}
        write_json(METRICS, {"keras": {"accuracy": keras_accuracy, "n": count}, **results})
        failures = failed_checks(results, keras_accuracy)
        if failures:
            raise UserError("export: " + "; ".join(failures) + f" (figures in {METRICS}). Leave "
                            "the format out of export.formats, or train a model that survives "
                            "conversion (README: Exporting)")
    return (f"export: {', '.join(written) or 'nothing'} -> {OUTPUT}/, checked against the Keras "
            f"model on {count} {split} images (figures in {METRICS})")


if __name__ == "__main__":
    run_stage(main)
