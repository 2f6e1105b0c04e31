"""The linear probe: a logistic regression on the frozen backbone's pooled features, the
simplest baseline of a run. A head (or a fine-tuned model) that scores below it has cost
training time for nothing, and the run says so."""
import zipfile

import numpy as np

from imgclf.arrays import read_rows
from imgclf.dataset import is_multi_label
from imgclf.errors import UserError
from imgclf.files import replaced_when_done

C_GRID = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]  # inverse regularisation strengths tried


def pool(feature_maps, pooling):
    """Feature maps [n, h, w, c] pooled as the head pools them (head.pooling)."""
    maps = np.asarray(feature_maps, np.float32)
    if pooling == "avg":
        return maps.mean(axis=(1, 2))
    if pooling == "max":
        return maps.max(axis=(1, 2))
    return maps.reshape(len(maps), -1)


def pooled_rows(features, pooling, rows_at_once=1024):
    """A cached feature array (memory-mapped) pooled a chunk at a time, so memory holds the
    pooled features only."""
    chunks = [pool(read_rows(features, np.arange(start, min(start + rows_at_once, len(features)))),
                   pooling) for start in range(0, len(features), rows_at_once)]
    return np.concatenate(chunks)


def fit(train_x, train_y, val_x, val_y, seed=0):
    """Standardised features -> logistic regression (one per label, for multi_label's 0/1
    rows), one per C in C_GRID; the one with the best validation accuracy (multi_label:
    mean average precision), ties to the lower validation log loss. Returns it and its
    figures."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    multi_label = is_multi_label(train_y)
    best = None
    for strength in C_GRID:
        classifier = LogisticRegression(C=strength, max_iter=2000, random_state=seed)
        probe = make_pipeline(StandardScaler(),
                              OneVsRestClassifier(classifier) if multi_label else classifier)
        probe.fit(train_x, train_y)
        figures = {"C": strength, **val_figures(probe, val_x, val_y)}
        key = "val_map" if multi_label else "val_accuracy"
        rank = (figures[key], -figures["val_loss"])
        if best is None or rank > (best[1][key], -best[1]["val_loss"]):
            best = probe, figures
    return best


def fit_arrays(train, val, pooling, seed=0):
    """fit() on (pooled features, labels) of train and val, as save() stores it (for
    multi_label with its own thresholds, chosen on val), and its val figures."""
    from imgclf.multilabel import choose_thresholds

    probe, figures = fit(*train, *val, seed)
    arrays = as_arrays(probe, pooling)
    if is_multi_label(train[1]):
        val_probabilities = probabilities(arrays, val[0], train[1].shape[1])
        arrays["thresholds"] = choose_thresholds(val_probabilities, val[1])
    return arrays, figures


def val_figures(probe, val_x, val_y):
    """Accuracy and log loss on val; for multi_label, per-label accuracy at 0.5 (as Keras'
    binary accuracy), binary log loss and mean average precision."""
    from sklearn.metrics import average_precision_score, log_loss

    if np.ndim(val_y) == 1:
        probabilities = probe.predict_proba(val_x)
        return {"val_accuracy": float(probe.score(val_x, val_y)),
                "val_loss": float(log_loss(val_y, probabilities, labels=probe.classes_))}
    probs = np.clip(probe.predict_proba(val_x), 1e-7, 1 - 1e-7)
    present = val_y.any(axis=0)
    bce = -(val_y * np.log(probs) + (1 - val_y) * np.log(1 - probs)).mean()
    return {"val_accuracy": float(((probs >= 0.5) == val_y).mean()), "val_loss": float(bce),
            "val_map": float(average_precision_score(val_y[:, present], probs[:, present]))}


PROBE_ARRAYS = ("pooling", "mean", "scale", "coef", "intercept", "classes", "multi_label",
                "thresholds")


def as_arrays(probe, pooling, thresholds=None):
    """The fitted pipeline as plain arrays: the scaler's mean and scale, one row of
    coefficients and an intercept per class (per label for multi_label; one row for a binary
    problem), the train classes' indices and multi_label's thresholds. Saved with np.savez
    and loaded without pickle: a DVC output pulled from a remote must not be able to run code."""
    scaler, classifier = probe[0], probe[-1]
    if hasattr(classifier, "estimators_"):  # OneVsRestClassifier: one binary model per label
        width = scaler.mean_.shape[0]
        rows = [binary_rows(estimator, width) for estimator in classifier.estimators_]
        coef = np.concatenate([row_coef for row_coef, _ in rows])
        intercept = np.concatenate([row_intercept for _, row_intercept in rows])
        classes = np.arange(len(rows))
    else:
        coef, intercept, classes = classifier.coef_, classifier.intercept_, classifier.classes_
    return {"pooling": np.array(pooling), "mean": scaler.mean_, "scale": scaler.scale_,
            "coef": np.asarray(coef, np.float64), "intercept": np.asarray(intercept, np.float64),
            "classes": np.asarray(classes, np.int64),
            "multi_label": np.array(hasattr(classifier, "estimators_")),
            "thresholds": np.asarray([] if thresholds is None else thresholds, np.float32)}


def binary_rows(estimator, width):
    """(coef [1, width], intercept [1]) of one label's model; a label that train has on every
    image or none gets scikit-learn's constant predictor, here a saturated intercept."""
    if hasattr(estimator, "coef_"):
        return estimator.coef_, estimator.intercept_
    always = float(np.ravel(estimator.y_)[0])  # _ConstantPredictor: the one value seen
    return np.zeros((1, width)), np.array([30.0 if always else -30.0])


def save(path, arrays):
    """arrays (as_arrays, or {} when there is no probe: weights: none) as an .npz file."""
    with replaced_when_done(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load(path):
    """A saved probe's arrays, or None when the run has none; never unpickles (a file with
    pickled content is an error naming it)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        arrays, reason = None, str(error)
    else:
        missing = sorted(set(PROBE_ARRAYS) - set(arrays))
        reason = f"no {missing[0]} array" if arrays and missing else None
    if reason:
        raise UserError(f"{path} is not a probe file of plain arrays ({reason}); rerun the "
                        "probe stage (dvc repro -f -s probe)")
    return arrays or None


def probabilities(arrays, pooled_features, class_count):
    """The probe's class probabilities with a column for every class (the classes the train
    split lacked get 0); for multi_label each label's own probability. The logistic
    regression's own formula: softmax over the classes, a sigmoid for one row (binary) or
    for each label (one-vs-rest)."""
    scaled = (np.asarray(pooled_features, np.float64) - arrays["mean"]) / arrays["scale"]
    logits = scaled @ arrays["coef"].T + arrays["intercept"]
    if arrays["multi_label"]:
        return (1 / (1 + np.exp(-logits))).astype(np.float32)
    if logits.shape[1] == 1:
        positive = 1 / (1 + np.exp(-logits[:, 0]))
        present = np.stack([1 - positive, positive], axis=1)
    else:
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        present = exp / exp.sum(axis=1, keepdims=True)
    columns = np.zeros((len(scaled), class_count), np.float32)
    columns[:, arrays["classes"]] = present
    return columns


def backbone_features(model, dataset, pooling):
    """The pooled features of a full classifier's backbone (resize, preprocess, backbone,
    as the features stage computes them) over the image batches of dataset."""
    resize, preprocess, backbone = (model.get_layer(name)
                                    for name in ("resize", "preprocess", "backbone"))
    return np.concatenate([pool(backbone(preprocess(resize(images)), training=False), pooling)
                           for images, _ in dataset])
