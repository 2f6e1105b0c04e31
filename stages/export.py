"""export: models/model.keras as a TensorFlow SavedModel and TensorFlow Lite files in
models/export/, with labels.txt, each checked against the Keras model on the test split and
on files at full size (imgclf.export describes the formats and the checks). A failed format
is left out with a warning and its figures in metrics/export.json; export.strict: true makes
it stop the stage instead (for release builds).
"""
import os

from imgclf import export as export_lib
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.dataset import evaluation_split, read_split
from imgclf.errors import run_stage
from imgclf.files import replaced_when_done, write_json
from imgclf.images import read_folder

PREPARED = "data/prepared"
MODEL = "models/model.keras"
OUTPUT = "models/export"
METRICS = "metrics/export.json"


def main():
    params = params_lib.load()
    settings, unknown_dir = params["export"], params["evaluate"]["unknown_dir"]
    model = model_lib.load(MODEL)
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
        resolution = model_lib.prepared_resolution(model)
        unknowns = None
        if unknown_dir:
            unknowns = read_folder(unknown_dir, resolution, "evaluate.unknown_dir")[0]
        figures, failures = export_lib.check_all(model, written, read_split(PREPARED, split), size,
                                                 unknowns)
        write_json(METRICS, figures)
        failed = export_lib.leave_out_failed(written, failures, settings["strict"], METRICS)
    return (f"export: {', '.join(written) or 'nothing'} -> {OUTPUT}/, checked against the Keras "
            f"model on {figures['keras']['n']} {split} images and "
            f"{figures['keras']['full_size_n']} at full size"
            + (f"; left out: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    run_stage(main)
