"""evaluate: the final model, the model before fine-tuning (prefixed transfer_) and the
linear probe (prefixed probe_) on the test split (val when there is none: metrics.json says
so with evaluated_on_val). The test split is read here, by export's check and by plot.

Writes metrics/metrics.json (imgclf.scoring), metrics/per_class.json (and the classes absent
from the split), plots/confusion.csv (one row per image; for multi_label one per label an
image has or is given) for DVC's confusion plot, and data/test_probabilities.npy (the final
model's, with evaluate.tta's mirror images if set), which plot reads.
"""
import numpy as np

from imgclf import calibration
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf import probe as probe_lib
from imgclf import scoring
from imgclf import unknown
from imgclf.dataset import batches, evaluation_split, read_split
from imgclf.errors import run_stage
from imgclf.files import read_json, replaced_when_done, write_json

PREPARED = "data/prepared"
MODEL = "models/model.keras"
TRANSFER_MODEL = "models/transfer.keras"
PROBE = "models/probe.npz"
PROBE_METRICS = "metrics/probe.json"
FINETUNE_METRICS = "metrics/finetune.json"
METRICS = "metrics/metrics.json"
PER_CLASS = "metrics/per_class.json"
PREDICTIONS = "plots/confusion.csv"
PROBABILITIES = "data/test_probabilities.npy"
UNKNOWNS = "plots/unknowns.csv"


def main():
    settings = params_lib.load()["evaluate"]
    split = evaluation_split(PREPARED)
    images, labels, files = read_split(PREPARED, split)
    dataset = batches(images, labels, settings["batch_size"])
    model, transfer_model = model_lib.load(MODEL), model_lib.load(TRANSFER_MODEL)
    class_names, thresholds = model_lib.class_names(model), model_lib.label_thresholds(model)
    outputs = model_lib.outputs(model, dataset, settings["tta"])
    probabilities, multi_label = outputs["probabilities"], thresholds is not None
    metrics, report = scoring.score(probabilities, labels, class_names, thresholds)
    confidence, before = calibration.figures(probabilities, labels, model_lib.temperature(model),
                                             multi_label)
    calibration.write_tables("plots", probabilities, before, labels, thresholds)
    known = unknowns_scored(model, outputs, settings, class_names)
    transfer = scoring.score(model_lib.probabilities(transfer_model, dataset, settings["tta"]),
                             labels, class_names, model_lib.label_thresholds(transfer_model))[0]
    saved_probe = probe_lib.load(PROBE)  # None with weights: none
    probe = {} if saved_probe is None else scoring.probe_score(
        saved_probe, transfer_model, dataset, labels, class_names)
    write_json(METRICS, {**metrics, **confidence, **known,
                         **scoring.prefixed("transfer", transfer),
                         **scoring.prefixed("probe", probe), "evaluated_on_val": int(split == "val")})
    write_json(PER_CLASS, report)
    scoring.write_predictions(PREDICTIONS, files, labels, probabilities, class_names, thresholds)
    with replaced_when_done(PROBABILITIES) as tmp, open(tmp, "wb") as f:
        np.save(f, probabilities)
    figures = [("final", metrics), ("before fine-tuning", transfer), ("linear probe", probe)]
    summary = scoring.summary(figures)
    on_val = scoring.val_accuracies(read_json(FINETUNE_METRICS), read_json(PROBE_METRICS))
    note = saved_probe is not None and on_val and scoring.below_probe_note(*reversed(on_val))
    if split == "val":
        print("evaluate: no test split (split.test is 0 or data.dir has no test/); "
              "reporting on val, which also chose the best epochs")
    return (f"evaluate: {metrics['n_images']} {split} images: {summary}; "
            + scoring.confidence_summary({**confidence, **known}) + (f"; {note}" if note else ""))


def unknowns_scored(model, outputs, settings, class_names):
    """known_kept on the scored split and, with evaluate.unknown_dir, the figures on its
    images, whose rows go to plots/unknowns.csv (no rows without it)."""
    unknowns, files = None, []
    if settings["unknown_dir"] and "unknown" in outputs:
        unknowns, files = unknown.score_folder(model, settings["unknown_dir"],
                                               settings["batch_size"], settings["tta"])
    scoring.write_unknowns(UNKNOWNS, files, unknowns, class_names)
    return unknown.figures(outputs, unknowns)


if __name__ == "__main__":
    run_stage(main)
