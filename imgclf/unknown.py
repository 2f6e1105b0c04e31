""""Unknown": images unlike the training data, scored inside the model (imgclf.model's
UnknownScore) by the cosine distance of their average-pooled backbone features to the
nearest reference train image's, and called unknown above a threshold chosen on val so that
evaluate.known_kept of the known images pass (docs/calibration.md: why nearest neighbours).
"""
import numpy as np

from imgclf import model as model_lib
from imgclf.arrays import read_rows
from imgclf.dataset import batches
from imgclf.probe import backbone_features

# The reference images stored in the model: a cap keeps the model small (3,000 of 768
# features: 9 MB) and the matrix product fast; spread evenly over train, which is ordered by class.
MAX_REFERENCES = 3000


def unit_rows(features):
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def reference_features(model, images, batch_size, limit=MAX_REFERENCES):
    """Unit-length pooled features of up to `limit` train images, spread over the split."""
    picks = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).astype(int))
    dataset = batches(read_rows(images, picks), np.zeros(len(picks)), batch_size)
    return unit_rows(backbone_features(model, dataset, "avg"))


def threshold_for(val_scores, known_kept):
    """The k-th lowest of n val scores, k = ceil((n + 1) * known_kept) (at most n): the split
    conformal quantile, which keeps at least known_kept of new images like val's on average
    (k / (n + 1)). numpy's quantile can fall short: on 153 val images, 146 / 154 = 0.948."""
    scores = np.sort(np.asarray(val_scores, np.float64).ravel())
    rank = min(int(np.ceil((len(scores) + 1) * known_kept - 1e-9)), len(scores))
    return float(scores[rank - 1])


def with_references(model, train_images, batch_size):
    """The model with its UnknownScore (imgclf.model.with_unknown_score), its references
    taken from train_images; no image is unknown until set_threshold."""
    references = reference_features(model, train_images, batch_size)
    return model_lib.with_unknown_score(model, references, threshold=np.inf)


def leave_one_out_scores(model):
    """Each reference train image's score against the other references: a second, larger
    sample of known images' scores than val's, valid where the backbone was not trained on
    train (the probe or transfer model kept), and slightly high (one reference fewer)."""
    import keras

    references = keras.ops.convert_to_numpy(model.get_layer("unknown_score").references)
    similarity = references.T @ references
    np.fill_diagonal(similarity, -np.inf)
    return 1.0 - similarity.max(axis=1)


def set_threshold(model, val_scores, known_kept, train_scores=None):
    """Store the threshold that keeps known_kept of val (val_scores: the model's own
    unknown_score outputs on val) and of train_scores (leave_one_out_scores) when given: the
    higher of the two, as a small val split can set it low by chance (40 val images kept
    0.908 of 500 test images); its figures."""
    detector = model.get_layer("unknown_score")
    threshold = threshold_for(val_scores, known_kept)
    found = {}
    if train_scores is not None:
        found["unknown_threshold_val"] = threshold
        found["unknown_threshold_train"] = threshold_for(train_scores, known_kept)
        threshold = max(threshold, found["unknown_threshold_train"])
        found["train_known_kept"] = float(np.mean(np.asarray(train_scores) <= threshold))
    detector.threshold.assign([threshold])
    return {"unknown_threshold": threshold, **found,
            "unknown_references": int(detector.reference_count),
            "val_known_kept": float(np.mean(np.asarray(val_scores) <= threshold))}


def figures(outputs, unknowns=None):
    """known_kept (share of the scored images not called unknown) and, given the model's
    outputs on images of no class, unknown_auroc (the score separating those from the scored
    images: 1 perfect, 0.5 chance) and unknown_rejected (share of them called unknown).
    Empty for a model without the unknown output (saved before the calibrate stage)."""
    from sklearn.metrics import roc_auc_score

    if "unknown" not in outputs:
        return {}
    found = {"known_kept": float(1 - np.mean(outputs["unknown"]))}
    if unknowns is None:
        return found
    scores = np.r_[outputs["unknown_score"][:, 0], unknowns["unknown_score"][:, 0]]
    truth = np.r_[np.zeros(len(outputs["unknown"])), np.ones(len(unknowns["unknown"]))]
    return {**found, "unknown_auroc": float(roc_auc_score(truth, scores)),
            "unknown_rejected": float(np.mean(unknowns["unknown"])),
            "unknown_images": int(len(unknowns["unknown"]))}


def score_folder(model, folder, batch_size, tta=False):
    """The model's outputs on every image file below folder (decoded as predict decodes
    them), and the files; unreadable ones are left out, with a warning."""
    import sys

    from imgclf.images import read_folder

    images, files, unreadable = read_folder(folder, model_lib.prepared_resolution(model),
                                            "evaluate.unknown_dir")
    for path, reason in unreadable:
        print(f"evaluate: warning: {path} left out of the unknowns: {reason}", file=sys.stderr)
    return model_lib.outputs(model, batches(images, np.zeros(len(files)), batch_size), tta), files
