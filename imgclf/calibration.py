"""Calibrated probabilities: temperature scaling fitted on val (Guo et al., ICML 2017), and
the figures that say how far a model's confidence can be trusted: expected calibration
error, Brier score, the reliability table and the risk-coverage curve (docs/calibration.md).

single_label probabilities are one row per image (softmax); multi_label ones a column per
label (sigmoids), each label scaled by its own temperature."""
import numpy as np

BINS = 15  # the usual count for expected calibration error (Guo et al.)
TINY = 1e-12


def logits(probabilities, multi_label):
    """Logits that give probabilities back: log p (softmax does not mind the shift; a
    probability that underflowed to 0 stays 0), or log(p / (1 - p)) per label (float32
    sigmoids round to 1 beyond a logit of ~17: clipped there)."""
    p = np.asarray(probabilities, np.float64)
    if multi_label:
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return np.log(p) - np.log1p(-p)
    return np.log(np.maximum(p, np.finfo(np.float64).tiny))


def scaled(probabilities, temperature, multi_label):
    """The probabilities with their logits divided by temperature (a number, or one per
    label): what a model with that temperature folded in gives."""
    z = logits(probabilities, multi_label) / np.asarray(temperature, np.float64)
    if multi_label:
        return 1 / (1 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities, labels, multi_label):
    p = np.clip(np.asarray(probabilities, np.float64), TINY, 1 - TINY)
    if multi_label:
        return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))
    return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))


def fit_temperature(probabilities, labels, multi_label):
    """The temperature (per label for multi_label) that minimises the negative
    log-likelihood of labels: a one-dimensional search, in log space, between 1/20 and 20.
    1 where val is separated without a mistake (every image's label ranked first; a label's
    positives all above its negatives): there the loss falls with the temperature forever, and
    the search would make every later mistake a certainty. 1 too where scaling does not lower
    the loss of val images it was not fitted on (held_out_gain)."""
    def best(probs, truth):
        if not held_out_gain(probs, truth, multi_label) > 0:
            return 1.0
        return minimising_temperature(probs, truth, multi_label)
    if not multi_label:
        return best(probabilities, labels)
    return [best(probabilities[:, [j]], labels[:, [j]]) for j in range(labels.shape[1])]


def minimising_temperature(probabilities, labels, multi_label):
    """The log-loss minimum; 1 where the labels are separated (no minimum)."""
    from scipy.optimize import minimize_scalar

    if separated(probabilities, labels, multi_label):
        return 1.0

    def loss(log_t):
        return negative_log_likelihood(scaled(probabilities, np.exp(log_t), multi_label),
                                       labels, multi_label)
    return float(np.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


def held_out_gain(probabilities, labels, multi_label, folds=5, repeats=10):
    """The log loss the temperature saves on val images it was not fitted on: each of
    `folds` folds scaled by the temperature fitted on the others, averaged over val and over
    `repeats` seeded shuffles (one shuffle's sign is luck on 153 images: the insect photos'
    probe gained on 35 of 40). At most 0 where the temperature fits val's noise: on the digits
    sample (4 mistakes in 355 val images) 1.19 lowered val's loss but raised held-out val's
    (on all 40 shuffles), and test's."""
    folds = min(folds, len(labels))  # a val of 3 images: 3 folds of one
    saved = 0.0
    for repeat in range(repeats):
        order = np.random.default_rng(repeat).permutation(len(labels))
        for fold in range(folds):
            held = order[fold::folds]
            rest = np.setdiff1d(order, held)
            temperature = minimising_temperature(probabilities[rest], labels[rest], multi_label)
            before = negative_log_likelihood(probabilities[held], labels[held], multi_label)
            scaled_held = scaled(probabilities[held], temperature, multi_label)
            after = negative_log_likelihood(scaled_held, labels[held], multi_label)
            saved += (before - after) * len(held) / len(labels) / repeats
    return saved


def separated(probabilities, labels, multi_label):
    if multi_label:
        positives, negatives = probabilities[labels == 1], probabilities[labels == 0]
        return not len(positives) or not len(negatives) or positives.min() > negatives.max()
    return bool(np.all(np.asarray(probabilities).argmax(axis=1) == labels))


def confidences(probabilities, labels, multi_label):
    """(confidence, right) per decision: the top class's probability and whether it is the
    label; for multi_label each label's probability of its decision at 0.5."""
    probabilities = np.asarray(probabilities, np.float64)
    if multi_label:
        p, truth = probabilities.ravel(), np.asarray(labels).ravel()
        return np.maximum(p, 1 - p), (p >= 0.5) == (truth == 1)
    return probabilities.max(axis=1), probabilities.argmax(axis=1) == np.asarray(labels)


def reliability(probabilities, labels, multi_label):
    """One row per non-empty confidence bin (BINS equal widths): its lower edge, mean
    confidence, accuracy and count: the reliability diagram's points."""
    confidence, right = confidences(probabilities, labels, multi_label)
    bins = np.minimum((confidence * BINS).astype(int), BINS - 1)
    rows = []
    for b in np.unique(bins):
        inside = bins == b
        rows.append({"bin": b / BINS, "confidence": float(confidence[inside].mean()),
                     "accuracy": float(right[inside].mean()), "count": int(inside.sum())})
    return rows


def expected_calibration_error(probabilities, labels, multi_label):
    """The count-weighted mean gap between confidence and accuracy over the bins."""
    rows = reliability(probabilities, labels, multi_label)
    total = sum(row["count"] for row in rows)
    return float(sum(row["count"] * abs(row["confidence"] - row["accuracy"])
                     for row in rows) / total)


def brier(probabilities, labels, multi_label):
    """Mean squared distance from the one-hot label (summed over classes), or per label."""
    probabilities = np.asarray(probabilities, np.float64)
    if multi_label:
        return float(np.mean((probabilities - labels) ** 2))
    truth = np.eye(probabilities.shape[1])[labels]
    return float(np.mean(np.sum((probabilities - truth) ** 2, axis=1)))


def image_confidence(probabilities, thresholds=None):
    """How sure the model is of each image's answer: its top probability; for multi_label
    (thresholds given) its least sure label, max(p, 1 - p). predict --min-confidence reads it."""
    probabilities = np.asarray(probabilities, np.float64)
    if thresholds is None:
        return probabilities.max(axis=-1)
    return np.min(np.maximum(probabilities, 1 - probabilities), axis=-1)


def risk_coverage(probabilities, labels, thresholds=None):
    """For each share of the images accepted, most confident first (image_confidence), the
    accuracy on them (multi_label: every label decided right at the model's thresholds) and
    the --min-confidence that accepts them: rows of (coverage, accuracy, min_confidence)."""
    from imgclf.multilabel import decide

    confidence = image_confidence(probabilities, thresholds)
    if thresholds is None:
        right = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    else:
        right = np.all(decide(probabilities, thresholds) == np.asarray(labels), axis=1)
    order = np.argsort(-confidence, kind="stable")
    accepted = np.arange(1, len(order) + 1)
    accuracy = np.cumsum(right[order]) / accepted
    return [{"coverage": float(n / len(order)), "accuracy": float(a),
             "min_confidence": float(c)}
            for n, a, c in zip(accepted, accuracy, confidence[order])]


def val_figures(before, after, labels, multi_label):
    """Log loss and calibration error on val, before and after scaling (the calibrate stage)."""
    return {"val_loss_before": negative_log_likelihood(before, labels, multi_label),
            "val_loss": negative_log_likelihood(after, labels, multi_label),
            "val_ece_before": expected_calibration_error(before, labels, multi_label),
            "val_ece": expected_calibration_error(after, labels, multi_label)}


def figures(probabilities, labels, temperature, multi_label):
    """ece and brier of the calibrated probabilities, and ece_before: of the same model's
    probabilities without its temperature (temperature: model.temperature's)."""
    before = scaled(probabilities, 1 / np.asarray(temperature, np.float64), multi_label)
    return {"ece": expected_calibration_error(probabilities, labels, multi_label),
            "ece_before": expected_calibration_error(before, labels, multi_label),
            "brier": brier(probabilities, labels, multi_label)}, before


def write_tables(folder, probabilities, before, labels, thresholds=None):
    """plots/calibration.csv (the reliability diagram's points, before and after scaling)
    and plots/risk_coverage.csv, for the plot stage (and DVC's plots)."""
    import pandas as pd

    from imgclf.files import replaced_when_done

    multi_label = thresholds is not None
    tables = {"calibration.csv": pd.concat([
        pd.DataFrame(reliability(before, labels, multi_label)).assign(model="before"),
        pd.DataFrame(reliability(probabilities, labels, multi_label)).assign(model="calibrated")]),
        "risk_coverage.csv": pd.DataFrame(risk_coverage(probabilities, labels, thresholds))}
    for name, table in tables.items():
        with replaced_when_done(f"{folder}/{name}") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6f")
