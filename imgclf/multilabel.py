"""task: multi_label: each label's threshold, chosen on val, and the scores on test.

labels are 0/1 arrays [images, labels]; probabilities the model's sigmoids, same shape.
"""
import numpy as np

NONE = "(none)"  # the other side of a label's mistake in plots/confusion.csv


def decide(probabilities, thresholds):
    """0/1 per label: each label at or above its threshold."""
    return (np.asarray(probabilities) >= thresholds).astype(np.int32)


def choose_thresholds(probabilities, labels):
    """Per label, the threshold that maximises its F1 on these (validation) images; 0.5 for
    a label without a positive image among them (F1 is undefined there). Every threshold
    between the best cut and the next lower probability scores the same F1 here: the
    midpoint is taken, not the cut itself, which sits on a validation image's probability."""
    from sklearn.metrics import precision_recall_curve

    chosen = []
    for column in range(labels.shape[1]):
        truth = labels[:, column]
        if not truth.any():
            chosen.append(0.5)
            continue
        scores = probabilities[:, column]
        precision, recall, cuts = precision_recall_curve(truth, scores)
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        cut = float(cuts[int(np.argmax(f1))])
        below = scores[scores < cut]
        chosen.append((cut + float(below.max())) / 2 if below.size else cut / 2)
    return np.asarray(chosen, np.float32)


def score(probabilities, labels, thresholds, class_names):
    """Flat test metrics (for dvc metrics diff) and the per-label report, by label name.
    F1, precision and recall at the thresholds, micro (every decision counts once) and
    macro (each label counts once); mAP (macro average precision, threshold-free);
    subset accuracy (every label of an image right); Hamming loss (wrong decisions)."""
    from sklearn.metrics import (accuracy_score, average_precision_score, hamming_loss,
                                 precision_recall_fscore_support)

    predicted = decide(probabilities, thresholds)
    present = [i for i in range(len(class_names)) if labels[:, i].any()]
    metrics = {}
    # micro over every label (a label the split lacks can still be given wrongly); macro
    # over the labels this split has: an absent label has no recall to score
    for average, columns in (("micro", range(len(class_names))), ("macro", present)):
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, predicted, labels=columns, average=average, zero_division=0)
        metrics.update({f"f1_{average}": float(f1), f"precision_{average}": float(precision),
                        f"recall_{average}": float(recall)})
    metrics["map"] = float(average_precision_score(labels[:, present], probabilities[:, present],
                                                   average="macro"))
    metrics["subset_accuracy"] = float(accuracy_score(labels, predicted))
    metrics["hamming_loss"] = float(hamming_loss(labels, predicted))
    metrics["n_images"] = int(len(labels))
    report = per_label(probabilities, labels, predicted, class_names)
    report["absent_classes"] = [name for i, name in enumerate(class_names) if i not in present]
    return metrics, report


def per_label(probabilities, labels, predicted, class_names):
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, average=None, labels=range(len(class_names)), zero_division=0)
    report = {}
    for i, name in enumerate(class_names):
        has = labels[:, i].any()
        report[name] = {"precision": float(precision[i]), "recall": float(recall[i]),
                        "f1-score": float(f1[i]), "support": int(support[i]),
                        "average_precision": float(average_precision_score(
                            labels[:, i], probabilities[:, i])) if has else 0.0}
    return report


def decision_rows(files, labels, probabilities, thresholds, class_names):
    """plots/confusion.csv for multi_label: per image, one row per label it has or is given.
    A right label is (label, label); a missed one (label, NONE); a wrong one (NONE, label).
    confidence is the model's in what it decided: p for a given label, 1 - p for a missed one."""
    rows = []
    for file, truth, probs, decided in zip(files, labels, probabilities,
                                           decide(probabilities, thresholds)):
        for i, name in enumerate(class_names):
            given = decided[i]
            if truth[i] or given:
                actual, predicted = (name if truth[i] else NONE), (name if given else NONE)
                rows.append([file, actual, predicted, f"{probs[i] if given else 1 - probs[i]:.4f}"])
    return rows

