"""Scoring a model's probabilities on the evaluation split (the evaluate stage): flat
metrics for dvc metrics diff, the per-class report, one row per image for DVC's confusion
plot, and the linear probe's scores beside the final model's."""
import csv

import numpy as np

from imgclf import multilabel
from imgclf import probe as probe_lib
from imgclf.files import replaced_when_done, shown_name


def single_label_score(probabilities, labels, class_names):
    """Metrics as flat numbers, and the per-class report, by class name."""
    from sklearn.metrics import (accuracy_score, classification_report, log_loss,
                                 precision_recall_fscore_support)

    predicted = probabilities.argmax(axis=1)
    indices = list(range(len(class_names)))
    # Macro averages over the classes this split has: one it lacks has no recall to score,
    # and counting it as 0 would put perfect predictions on 3 of 3 present classes at 0.75.
    present = sorted(set(np.asarray(labels).tolist()))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=present, average="macro", zero_division=0)
    metrics = {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "loss": float(log_loss(labels, probabilities, labels=indices)),
        "n_images": int(len(labels)),
    }
    report = classification_report(labels, predicted, labels=indices, target_names=class_names,
                                   output_dict=True, zero_division=0)
    report["absent_classes"] = [class_names[i] for i in indices if i not in present]
    return metrics, report


def score(probabilities, labels, class_names, thresholds=None):
    """single_label_score, or for multi_label (the model's thresholds given) imgclf.multilabel's."""
    if thresholds is None:
        return single_label_score(probabilities, labels, class_names)
    return multilabel.score(probabilities, labels, thresholds, class_names)


def headline(metrics):
    """The two figures a summary leads with: accuracy and macro F1, or macro F1 and mAP."""
    if "map" in metrics:
        return {"macro F1": metrics["f1_macro"], "mAP": metrics["map"]}
    return {"accuracy": metrics["accuracy"], "macro F1": metrics["f1"]}


def summary(figures):
    """One line of headline figures per model: figures is [(name, metrics)], empty ones
    (no probe with weights: none) left out."""
    parts = []
    for name, metrics in figures:
        if metrics:
            values = ", ".join(f"{key} {value:.4f}" for key, value in headline(metrics).items())
            parts.append(f"{name}: {values}")
    return "; ".join(parts)


def prefixed(prefix, metrics):
    return {f"{prefix}_{key}": value for key, value in metrics.items() if key != "n_images"}


def write_predictions(path, files, labels, probabilities, class_names, thresholds=None):
    """One row per image (for multi_label, per label it has or is given): file, actual,
    predicted, confidence."""
    if thresholds is not None:
        rows = multilabel.decision_rows(files, labels, probabilities, thresholds, class_names)
    else:
        rows = [[file, class_names[label], class_names[row.argmax()], f"{row.max():.4f}"]
                for file, label, row in zip(files, labels, probabilities)]
    with replaced_when_done(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["file", "actual", "predicted", "confidence"], *rows])


def probe_score(saved, transfer_model, dataset, labels, class_names):
    """The linear probe's metrics (saved: probe_lib.load's arrays) on the frozen backbone of
    the model before fine-tuning, which made the cached features."""
    features = probe_lib.backbone_features(transfer_model, dataset, str(saved["pooling"]))
    probabilities = probe_lib.probabilities(saved, features, len(class_names))
    thresholds = saved["thresholds"] if saved["multi_label"] else None
    return score(probabilities, labels, class_names, thresholds)[0]


def val_accuracies(finetune_metrics, probe_metrics):
    """(the final model's, the probe's) val accuracy, both as the finetune stage measured
    them on the same images where it could (metrics/finetune.json, else probe.json's, on
    float16 cached features); None when the final model is the probe."""
    if finetune_metrics.get("kept") == "probe":
        return None
    final = finetune_metrics.get("kept_val_accuracy", finetune_metrics["best_val_accuracy"])
    return final, finetune_metrics.get("probe_val_accuracy", probe_metrics["val_accuracy"])


def below_probe_note(probe_val_accuracy, final_val_accuracy):
    """A clause for the summary when the final model is below the probe on validation."""
    # Keras' float32 accuracy of 53/55 is a hair below scikit-learn's float64 one.
    if final_val_accuracy >= probe_val_accuracy - 1e-6:
        return ""
    return (f"the final model is below the linear probe on val ({final_val_accuracy:.4f} "
            f"against {probe_val_accuracy:.4f}): its head or fine-tuning cost time for nothing")


def write_unknowns(path, files, outputs, class_names):
    """One row per image of evaluate.unknown_dir (outputs: the model's on them; None, and no
    rows, without one), the most confidently accepted first: file, unknown_score, unknown
    (0/1), predicted, confidence."""
    import pandas as pd

    outputs = outputs or {"probabilities": np.zeros((0, len(class_names))),
                          "unknown_score": np.zeros((0, 1)), "unknown": np.zeros((0, 1))}
    probabilities = outputs["probabilities"]
    table = pd.DataFrame({"file": [shown_name(file) for file in files],
                          "unknown_score": outputs["unknown_score"][:, 0],
                          "unknown": outputs["unknown"][:, 0].astype(int),
                          "predicted": [class_names[i] for i in probabilities.argmax(axis=1)],
                          "confidence": probabilities.max(axis=1)})
    with replaced_when_done(path) as tmp:
        table.sort_values("unknown_score").to_csv(tmp, index=False, float_format="%.4f")


def confidence_summary(figures):
    """ECE before and after scaling, and the unknown figures there are."""
    line = f"ECE {figures['ece_before']:.4f} -> {figures['ece']:.4f} (calibrated)"
    if "unknown_auroc" in figures:
        line += (f", unknowns: AUROC {figures['unknown_auroc']:.4f}, "
                 f"{figures['unknown_rejected']:.3f} rejected")
    if "known_kept" in figures:
        line += f", known images kept {figures['known_kept']:.3f}"
    return line
