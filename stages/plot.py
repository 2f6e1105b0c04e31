"""plot: PNG plots and one HTML report, all readable offline: training curves of both
phases on one epoch axis, confusion matrices (counts and row-normalised), per-class scores,
the most confident mistakes, Grad-CAM heat maps over a few test images per class, and a
precision-recall curve per class (per label for task: multi_label; probabilities without
evaluate.tta's mirror images)."""
import csv

import numpy as np

from imgclf import charts
from imgclf import params as params_lib
from imgclf.dataset import batches, evaluation_split, is_multi_label, read_classes, read_split
from imgclf.errors import run_stage
from imgclf.files import read_json, replaced_when_done
from imgclf.multilabel import NONE
from imgclf.report import html_report

PREPARED = "data/prepared"
MODEL = "models/model.keras"
LIVE = "dvclive/training"  # both phases' epochs (dvclive)
METRICS = {"test": "metrics/metrics.json", "features": "metrics/features.json",
           "transfer": "metrics/transfer.json", "finetune": "metrics/finetune.json"}
PER_CLASS = "metrics/per_class.json"
PREDICTIONS = "plots/confusion.csv"
PNGS = {"training curves": "plots/training.png", "confusion matrix": "plots/confusion.png",
        "per-class scores": "plots/per_class.png", "most confident mistakes": "plots/mistakes.png",
        "Grad-CAM": "plots/gradcam.png", "precision-recall curves": "plots/precision_recall.png"}
REPORT = "plots/report.html"


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def confident_mistakes(rows, count):
    wrong = [row for row in rows if row["actual"] != row["predicted"]]
    return sorted(wrong, key=lambda row: -float(row["confidence"]))[:count]


def examples_per_class(rows, per_class, max_images):
    """The first `per_class` rows of each class, at most max_images in all."""
    chosen, seen = [], {}
    for row in rows:
        if seen.get(row["actual"], 0) < per_class and len(chosen) < max_images:
            chosen.append(row)
            seen[row["actual"]] = seen.get(row["actual"], 0) + 1
    return chosen


def plot_examples(rows, images_by_file, class_names, model):
    import keras  # noqa: F401  (the model is loaded by the caller)

    from imgclf.gradcam import heat_maps

    mistakes = confident_mistakes(rows, 18)
    charts.image_grid([images_by_file(r["file"]) for r in mistakes],
                      [f"true {r['actual']}\npredicted {r['predicted']} ({float(r['confidence']):.2f})"
                       for r in mistakes], PNGS["most confident mistakes"],
                      f"most confident mistakes ({len(mistakes)} shown)")
    given = [r for r in rows if r["predicted"] in class_names]  # multi_label: not NONE
    chosen = examples_per_class(given, 2, 24)
    images = [images_by_file(r["file"]) for r in chosen]
    maps = heat_maps(model, images, [class_names.index(r["predicted"]) for r in chosen])
    charts.image_grid(images, [f"{r['actual']} -> {r['predicted']}" for r in chosen],
                      PNGS["Grad-CAM"], "Grad-CAM of the predicted class (last spatial layer)",
                      overlays=maps)


def main():
    import keras

    import imgclf.model  # noqa: F401  (registers the model's own layers)

    params = params_lib.load()
    class_names = read_classes(PREPARED)
    history = charts.live_history(LIVE)
    phases = {phase: read_json(METRICS[phase]) for phase in ["transfer", "finetune"]}
    transfer_epochs = phases["transfer"]["epochs_run"]
    charts.training({"transfer": history[:transfer_epochs], "finetune": history[transfer_epochs:]},
                    phases, PNGS["training curves"])
    rows = read_rows(PREDICTIONS)
    images, labels, files = read_split(PREPARED, evaluation_split(PREPARED))
    multi_label = is_multi_label(labels)
    # multi_label: each label against NONE (missed, or given wrongly; imgclf.multilabel)
    names = class_names + [NONE] if multi_label else class_names
    charts.confusion_matrices(names, charts.confusion(rows, names), PNGS["confusion matrix"],
                              "label decisions" if multi_label else "images")
    charts.per_class(read_json(PER_CLASS), class_names, PNGS["per-class scores"])
    model = keras.models.load_model(MODEL)
    probabilities = model.predict(batches(images, labels, 64), verbose=0)
    columns = labels if multi_label else np.eye(len(class_names), dtype=np.int32)[labels]
    charts.precision_recall(columns, probabilities, class_names, PNGS["precision-recall curves"])
    index = {file: i for i, file in enumerate(files)}
    plot_examples(rows, lambda file: images[index[file]], class_names, model)
    with replaced_when_done(REPORT) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(html_report({name: read_json(path) for name, path in METRICS.items()}, params, PNGS))
    return f"plot: {len(PNGS)} plots in plots/ and {REPORT}"


if __name__ == "__main__":
    run_stage(main)
