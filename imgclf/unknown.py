""""Unknown": images unlike the training data, scored inside the model (imgclf.model's
UnknownScore) by the cosine distance of their average-pooled backbone features to the
nearest reference train image's, and called unknown above a threshold chosen on val so that
evaluate.known_kept of the known images pass (docs/calibration.md: why nearest neighbours).
"""
import numpy as np

from imgclf import model as model_lib
from imgclf.arrays import read_rows
from imgclf.dataset import batches
from imgclf.errors import UserError
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
    """The lowest score that at least known_kept of val's scores do not exceed."""
    return float(np.quantile(np.asarray(val_scores, np.float64), known_kept, method="higher"))


def add_unknown_score(model, train_images, val_dataset, known_kept, batch_size):
    """The model with its UnknownScore (imgclf.model.with_unknown_score), references from
    train_images and the threshold from the images of val_dataset; and its figures."""
    references = reference_features(model, train_images, batch_size)
    model = model_lib.with_unknown_score(model, references, threshold=np.inf)
    detector = model.get_layer("unknown_score")
    val_scores = np.asarray(detector(backbone_features(model, val_dataset, "avg"))[0])[:, 0]
    threshold = threshold_for(val_scores, known_kept)
    detector.threshold.assign([threshold])
    return model, {"unknown_threshold": threshold, "unknown_references": len(references),
                   "val_known_kept": float(np.mean(val_scores <= threshold))}


def figures(known_scores, known_unknown, unknown_scores, unknown_unknown):
    """unknown_auroc (the score separating known test images from unknown ones: 1 perfect,
    0.5 chance), unknown_rejected (share of the unknowns called unknown) and known_kept
    (share of the known ones not), from the model's scores and 0/1 decisions."""
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.zeros(len(known_scores)), np.ones(len(unknown_scores))]
    return {"unknown_auroc": float(roc_auc_score(truth, np.r_[known_scores, unknown_scores])),
            "unknown_rejected": float(np.mean(unknown_unknown)),
            "known_kept": float(1 - np.mean(known_unknown)),
            "unknown_images": int(len(unknown_scores))}


def score_folder(model, folder, batch_size, tta=False):
    """The model's outputs on every image file below folder (decoded as predict decodes
    them), and the files: unreadable ones are left out, with a warning."""
    import sys

    from imgclf.images import read_folder

    images, files, unreadable = read_folder(folder, model_lib.prepared_resolution(model))
    for path, reason in unreadable:
        print(f"evaluate: warning: {path} left out of the unknowns: {reason}", file=sys.stderr)
    if not files:
        raise UserError(f"params.yaml: evaluate.unknown_dir {folder!r} holds no readable image")
    return model_lib.outputs(model, batches(images, np.zeros(len(files)), batch_size), tta), files
