"""plot: PNG plots and one HTML report, all readable offline: training curves of both
phases on one epoch axis, confusion matrices (counts and row-normalised), per-class scores,
the most confident mistakes, Grad-CAM heat maps over a few test images per class, and a
precision-recall curve per class (per label for task: multi_label), from the probabilities
evaluate wrote; the reliability diagram, the risk-coverage curve and the unknown images
accepted most confidently, from evaluate's tables. The report opens with the verdict
(imgclf.report)."""
import numpy as np
import pandas as pd

from imgclf import charts, gallery
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.dataset import evaluation_split, read_classes, read_split
from imgclf.errors import run_stage
from imgclf.files import read_json, replaced_when_done
from imgclf.multilabel import NONE
from imgclf.report import dataset_summary, html_report, reported_params

PREPARED = "data/prepared"
MODEL = "models/model.keras"
LIVE = "dvclive/training"  # both phases' epochs (dvclive)
METRICS = {"test": "metrics/metrics.json", "probe": "metrics/probe.json",
           "features": "metrics/features.json", "transfer": "metrics/transfer.json",
           "finetune": "metrics/finetune.json", "calibration": "metrics/calibration.json",
           "audit": "metrics/audit.json"}
PER_CLASS = "metrics/per_class.json"
PREDICTIONS = "plots/confusion.csv"
PROBABILITIES = "data/test_probabilities.npy"
CALIBRATION = "plots/calibration.csv"
RISK_COVERAGE = "plots/risk_coverage.csv"
UNKNOWNS = "plots/unknowns.csv"
SPLIT = "data/split"
PNGS = {"training curves": "plots/training.png", "confusion matrix": "plots/confusion.png",
        "per-class scores": "plots/per_class.png", "most confident mistakes": "plots/mistakes.png",
        "Grad-CAM": "plots/gradcam.png", "precision-recall curves": "plots/precision_recall.png",
        "calibration (reliability)": "plots/calibration.png",
        "selective prediction (risk-coverage)": "plots/risk_coverage.png",
        "unknowns most confidently accepted": "plots/unknowns.png"}
AUDIT_PNGS = {"likely label errors (audit)": "plots/label_issues.png",
              "near-duplicate pairs (audit)": "plots/near_duplicates.png"}
REPORT = "plots/report.html"


def main():
    params = params_lib.load()
    class_names = read_classes(PREPARED)
    metrics = {name: read_json(path) for name, path in METRICS.items()}
    history = charts.live_history(LIVE)
    transfer_epochs = metrics["transfer"]["epochs_run"]
    charts.training({"transfer": history[:transfer_epochs], "finetune": history[transfer_epochs:]},
                    metrics, PNGS["training curves"])
    rows = gallery.read_rows(PREDICTIONS)
    split = evaluation_split(PREPARED)
    images, labels, files = read_split(PREPARED, split)
    multi_label = params["task"] == "multi_label"
    # multi_label: each label against NONE (missed, or given wrongly; imgclf.multilabel)
    names = class_names + [NONE] if multi_label else class_names
    charts.confusion_matrices(names, charts.confusion(rows, names), PNGS["confusion matrix"],
                              "label decisions" if multi_label else "images")
    charts.per_class(read_json(PER_CLASS), class_names, PNGS["per-class scores"])
    columns = labels if multi_label else np.eye(len(class_names), dtype=np.int32)[labels]
    charts.precision_recall(columns, np.load(PROBABILITIES), class_names,
                            PNGS["precision-recall curves"])
    image_of = gallery.image_lookup({split: (images, labels, files)})
    gallery.mistakes_grid(rows, image_of, PNGS["most confident mistakes"])
    model = model_lib.load(MODEL)
    gallery.gradcam_grid(rows, image_of, class_names, model, PNGS["Grad-CAM"])
    charts.calibration(pd.read_csv(CALIBRATION), PNGS["calibration (reliability)"])
    charts.risk_coverage(pd.read_csv(RISK_COVERAGE), PNGS["selective prediction (risk-coverage)"])
    gallery.unknowns_grid(gallery.read_rows(UNKNOWNS), PNGS["unknowns most confidently accepted"],
                          model_lib.prepared_resolution(model))
    with replaced_when_done(REPORT) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(html_report(metrics, dataset_summary(SPLIT, PREPARED), reported_params(params),
                            {**PNGS, **AUDIT_PNGS}))
    return f"plot: {len(PNGS)} plots in plots/ and {REPORT}"


if __name__ == "__main__":
    run_stage(main)
