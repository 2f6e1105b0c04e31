"""export: models/model.keras as a TensorFlow SavedModel and TensorFlow Lite files, with a
labels file, each checked against the Keras model before it is shipped.

models/export/saved_model/          signature "serve": float32 RGB images, 0-255, any size
                                    (resized inside, antialiased, as training images were)
models/export/model_<kind>.tflite   float32, float16 (weights) or int8 (weights and
                                    activations, calibrated on train images); input
                                    [batch, size, size, 3] float32 0-255 (resize first),
                                    output probabilities
models/export/labels.txt            the class of each output column, one per line
metrics/export.json                 per format: bytes, flipped images, accuracy, passed

Each format is checked on the test split as prepared, and on up to FULL_SIZE_IMAGES of its
files at their original size (what apps are given). A format fails when more images change
class than a small test set can explain, or when it loses accuracy (see failed_checks). A
failed format is left out of models/export/ with a warning and its figures, and the stage
still finishes, so a good experiment is not thrown away; export.strict: true makes a failed
format stop the stage (for release builds).
"""
import os

import keras

from imgclf import export as export_lib
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.dataset import evaluation_split, read_split
from imgclf.errors import run_stage
from imgclf.files import replaced_when_done, write_json

PREPARED = "data/prepared"
MODEL = "models/model.keras"
OUTPUT = "models/export"
METRICS = "metrics/export.json"


def main():
    settings = params_lib.load()["export"]
    model = keras.models.load_model(MODEL)
    size = model_lib.input_resolution(model)
    split = evaluation_split(PREPARED)
    train, _, _ = read_split(PREPARED, "train")
    representative = export_lib.representative_images(train, settings["representative_images"],
                                                      size)
    with replaced_when_done(OUTPUT) as tmp:
        os.makedirs(tmp)
        export_lib.write_labels(tmp, model_lib.class_names(model),
                               model_lib.label_thresholds(model))
        written = export_lib.export(model, tmp, settings["formats"], representative)
        figures, failures = export_lib.check_all(model, written, read_split(PREPARED, split), size)
        write_json(METRICS, figures)
        failed = export_lib.leave_out_failed(written, failures, settings["strict"], METRICS)
    return (f"export: {', '.join(written) or 'nothing'} -> {OUTPUT}/, checked against the Keras "
            f"model on {figures['keras']['n']} {split} images and "
            f"{figures['keras']['full_size_n']} at full size"
            + (f"; left out: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    run_stage(main)
