"""audit: likely label errors and near-duplicate images in every split, found on the frozen
backbone's features in seconds (imgclf.audit). It runs after evaluate, so nothing before
evaluation reads the test split, and it changes nothing: what to do with a row is the user's
call (docs/audit.md). audit.enabled: false (or weights: none, which caches no features)
writes empty tables.

Writes metrics/label_issues.csv, metrics/near_duplicates.csv, metrics/audit.json (counts, for
dvc metrics diff) and plots/label_issues.png, plots/near_duplicates.png.
"""
import time

import numpy as np

from imgclf import audit
from imgclf import features as features_lib
from imgclf import gallery
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.dataset import evaluation_split, has_split, read_classes, read_split
from imgclf.errors import run_stage
from imgclf.files import read_json, write_json

PREPARED = "data/prepared"
FEATURES = "data/features"
TRANSFER_MODEL = "models/transfer.keras"
PROBE_METRICS = "metrics/probe.json"
PROBABILITIES = "data/test_probabilities.npy"
ISSUES = "metrics/label_issues.csv"
PAIRS = "metrics/near_duplicates.csv"
METRICS = "metrics/audit.json"
ISSUES_PNG = "plots/label_issues.png"
PAIRS_PNG = "plots/near_duplicates.png"


def main():
    params = params_lib.load()
    settings, pooling = params["audit"], params["head"]["pooling"]
    start = time.perf_counter()
    skipped = (not settings["enabled"] and "audit.enabled is false"
               or not features_lib.is_cached(FEATURES) and "no cached features (weights: none)")
    issues, pairs, figures, splits = [], [], {}, {}
    if not skipped:
        splits = {split: read_split(PREPARED, split)
                  for split in ("train", "val", "test") if has_split(PREPARED, split)}
        poolings = sorted({pooling, audit.SIMILARITY_POOLING})
        transfer_model = lambda: model_lib.load(TRANSFER_MODEL)  # noqa: E731 (test split only)
        features = audit.pooled_features(FEATURES, splits, transfer_model, poolings,
                                          params["evaluate"]["batch_size"])
        issues = audit.issue_rows({split: rows[pooling] for split, rows in features.items()},
                                  splits, read_classes(PREPARED), settings["folds"],
                                  read_json(PROBE_METRICS)["C"], params["seed"])
        pairs = audit.pair_rows({split: rows[audit.SIMILARITY_POOLING]
                                 for split, rows in features.items()}, splits,
                                settings["similarity"])
        figures = audit.counts(issues, pairs, list(splits))
        if evaluation_split(PREPARED) == "test" and params["task"] == "single_label":
            accuracy, seen = audit.accuracy_without_near_duplicates(
                np.load(PROBABILITIES), *splits["test"][1:], pairs)
            figures["test_images_with_near_duplicates"] = seen
            if accuracy is not None:  # else every test image has a near-duplicate
                figures["test_accuracy_without_near_duplicates"] = accuracy
    audit.write_rows(ISSUES, issues, audit.ISSUE_COLUMNS)
    audit.write_rows(PAIRS, pairs, audit.PAIR_COLUMNS)
    write_json(METRICS, {"enabled": int(not skipped), **figures,
                         "seconds": round(time.perf_counter() - start, 1)})
    image_of = gallery.image_lookup(splits)
    gallery.label_issues_grid(issues, image_of, ISSUES_PNG, settings["shown"])
    gallery.near_duplicates_grid(pairs, image_of, PAIRS_PNG, settings["shown"])
    if skipped:
        return f"audit: skipped ({skipped}); empty tables in {ISSUES} and {PAIRS}"
    return (f"audit: {len(issues)} likely label errors ({figures.get('label_issues_test', 0)} "
            f"in test) -> {ISSUES}; {len(pairs)} near-duplicate pairs "
            f"({figures.get('near_duplicates_train_test', 0)} train-test) -> {PAIRS}")


if __name__ == "__main__":
    run_stage(main)
