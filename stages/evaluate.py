"""evaluate: the saved model on the test split, the only place the test split is used.

For task: multi_label the metrics are imgclf.multilabel's, at the thresholds stored in the
model. Writes metrics/metrics.json (accuracy, macro precision/recall/F1, loss, n_test, and the
same for the model before fine-tuning, prefixed transfer_, and for the linear probe on the
frozen backbone's features, prefixed probe_), metrics/per_class.json (and the classes absent
from the split), and plots/confusion.csv (one row per test image, class names; for
multi_label one per label an image has or is given) for DVC's confusion-matrix plot.
Without a test split, val is used and metrics.json says so.
"""
import csv

import keras
import numpy as np
from sklearn.metrics import accuracy_score, classification_report, log_loss, precision_recall_fscore_support

from imgclf import model as model_lib  # registers the model's own layers for loading
from imgclf import multilabel
from imgclf import params as params_lib
from imgclf import probe as probe_lib
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


def predict(model, images, labels, batch_size, tta=False):
    """The model's probabilities; with tta (evaluate.tta), averaged with those of the
    mirror images (test-time augmentation)."""
    dataset = batches(images, labels, batch_size)
    probabilities = model.predict(dataset, verbose=0)
    if not tta:
        return probabilities
    mirrored = model.predict(dataset.map(lambda x, y: (x[:, :, ::-1, :], y)), verbose=0)
    return (probabilities + mirrored) / 2


def score(probabilities, labels, class_names):
    """Test metrics as flat numbers, and the per-class report, by class name."""
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
        "n_test": int(len(labels)),
    }
    report = classification_report(labels, predicted, labels=indices, target_names=class_names,
                                   output_dict=True, zero_division=0)
    report["absent_classes"] = [class_names[i] for i in indices if i not in present]
    return metrics, report


def score_with(thresholds, probabilities, labels, class_names):
    """score, or for multi_label (thresholds not None) imgclf.multilabel's score."""
    if thresholds is None:
        return score(probabilities, labels, class_names)
    return multilabel.score(probabilities, labels, thresholds, class_names)


def model_thresholds(model):
    return model_lib.thresholds(model) if model_lib.is_multi_label(model) else None


def write_predictions(path, files, labels, probabilities, class_names, thresholds=None):
    """One row per test image (for multi_label, per label it has or is given)."""
    if thresholds is not None:
        rows = multilabel.decision_rows(files, labels, probabilities, thresholds, class_names)
    else:
        rows = [[file, class_names[label], class_names[row.argmax()], f"{row.max():.4f}"]
                for file, label, row in zip(files, labels, probabilities)]
    with replaced_when_done(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["file", "actual", "predicted", "confidence"], *rows])


def probe_scores(transfer_model, images, labels, class_names, batch_size):
    """The linear probe's scores (prefixed probe_) on the frozen backbone of the model
    before fine-tuning, which made the cached features; {} without a probe."""
    saved = probe_lib.load(PROBE)
    if saved is None:
        return {}
    features = probe_lib.backbone_features(transfer_model, batches(images, labels, batch_size),
                                           str(saved["pooling"]))
    probabilities = probe_lib.probabilities(saved, features, len(class_names))
    thresholds = saved["thresholds"] if saved["multi_label"] else None
    metrics, _ = score_with(thresholds, probabilities, labels, class_names)
    return {f"probe_{key}": value for key, value in metrics.items() if key != "n_test"}


def below_probe_note():
    """A clause for the summary when the final model is below the probe on validation."""
    probe = read_json(PROBE_METRICS)["val_accuracy"]
    final = read_json(FINETUNE_METRICS)["best_val_accuracy"]
    # Keras' float32 accuracy of 53/55 is a hair below scikit-learn's float64 one.
    if final >= probe - 1e-6:
        return ""
    return (f"; the final model is below the linear probe on val ({final:.4f} against "
            f"{probe:.4f}): its head or fine-tuning cost time for nothing")


def main():
    params = params_lib.load()
    split = evaluation_split(PREPARED)
    if split == "val":
        print("evaluate: no test split (split.test is 0 or data.dir has no test/); "
              "reporting on val, which also chose the best epochs")
    model = keras.models.load_model(MODEL)
    class_names = model_lib.class_names(model)
    images, labels, files = read_split(PREPARED, split)
    batch_size, tta = params["evaluate"]["batch_size"], params["evaluate"]["tta"]
    probabilities = predict(model, images, labels, batch_size, tta)
    metrics, report = score_with(model_thresholds(model), probabilities, labels, class_names)
    transfer_model = keras.models.load_model(TRANSFER_MODEL)
    transfer_metrics, _ = score_with(model_thresholds(transfer_model),
                                     predict(transfer_model, images, labels, batch_size, tta),
                                     labels, class_names)
    probe_metrics = probe_scores(transfer_model, images, labels, class_names, batch_size)
    write_json(METRICS, {**metrics, **{f"transfer_{key}": value for key, value in
                                       transfer_metrics.items() if key != "n_test"},
                         **probe_metrics, "evaluated_on_val": int(split == "val")})
    write_json(PER_CLASS, report)
    write_predictions(PREDICTIONS, files, labels, probabilities, class_names,
                      model_thresholds(model))
    first, second = ("f1_macro", "map") if model_lib.is_multi_label(model) else ("accuracy", "f1")
    names = {"f1_macro": "macro F1", "map": "mAP", "accuracy": "accuracy", "f1": "macro F1"}
    return (f"evaluate: {split} {names[first]} {metrics[first]:.4f}, {names[second]} "
            f"{metrics[second]:.4f} over {metrics['n_test']} images (before fine-tuning: "
            f"{transfer_metrics[first]:.4f}, {transfer_metrics[second]:.4f}"
            + (f"; linear probe: {probe_metrics['probe_' + first]:.4f}, "
               f"{probe_metrics['probe_' + second]:.4f}" if probe_metrics else "")
            + ")" + (below_probe_note() if probe_metrics else ""))


if __name__ == "__main__":
    run_stage(main)
