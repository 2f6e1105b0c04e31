"""The audit stage's tables: likely label errors (imgclf.label_issues) and near-duplicates
(imgclf.near_duplicates) over every split, from the backbone's cached features, and the counts
that go to metrics/audit.json. Nothing here changes the data: what to do about a row is the
user's call (docs/audit.md)."""
import csv

import numpy as np

from imgclf import label_issues
from imgclf import near_duplicates
from imgclf import probe as probe_lib
from imgclf.dataset import batches, is_multi_label
from imgclf.features import load as load_cached
from imgclf.files import replaced_when_done

ISSUE_COLUMNS = ["file", "split", "label", "suggested", "score"]
PAIR_COLUMNS = ["file_a", "split_a", "file_b", "split_b", "similarity"]
ABSENT = "(absent)"  # multi_label: the state of a label an image is not given
SIMILARITY_POOLING = "avg"  # what audit.similarity was measured on


def pooled_features(features_dir, splits, transfer_model, poolings, batch_size):
    """{split: {pooling: rows}} for splits {name: (images, labels, files)}: train and val
    from the feature cache (its first pass, the unaugmented one), test through the frozen
    backbone of the model before fine-tuning (transfer_model, loaded only when there is a
    test split), the same backbone the cache came from (the features stage never reads the
    test split)."""
    pooled = {}
    for split, (images, labels, _) in splits.items():
        if split == "test":
            dataset = batches(images, labels, batch_size)
            model = transfer_model()
            pooled[split] = {pooling: probe_lib.backbone_features(model, dataset, pooling)
                             for pooling in poolings}
        else:
            maps = load_cached(features_dir, split)[0][:len(labels)]
            pooled[split] = {pooling: probe_lib.pooled_rows(maps, pooling) for pooling in poolings}
    return pooled


def listed(splits, order):
    """(files, their split names) of splits {split: (images, labels, files)}, in `order`:
    the rows' order of every table here."""
    files = [file for split in order for file in splits[split][2]]
    return files, [split for split in order for _ in splits[split][2]]


def issue_rows(features, splits, class_names, folds, strength, seed):
    """Rows of metrics/label_issues.csv, most suspect first. features {split: rows}; splits
    {split: (images, labels, files)}; the test split (if any) is scored by the folds'
    models, which train and val fitted."""
    fitted = [split for split in splits if split != "test"]
    x = np.concatenate([features[split] for split in fitted])
    y = np.concatenate([splits[split][1] for split in fitted])
    held_out = features.get("test", np.zeros((0, x.shape[1])))
    fitted_p, held_out_p = label_issues.out_of_sample(x, y, held_out, len(class_names), folds,
                                                      strength, seed)
    order = fitted + (["test"] if "test" in splits else [])
    files, names = listed(splits, order)
    labels = np.concatenate([splits[split][1] for split in order])
    probabilities = np.concatenate([fitted_p, held_out_p])
    if not is_multi_label(labels):
        return [{"file": files[i], "split": names[i], "label": class_names[labels[i]],
                 "suggested": class_names[suggested], "score": round(score, 4)}
                for i, suggested, score in label_issues.single_label_issues(probabilities, labels)]
    return [{"file": files[i], "split": names[i],
             "label": class_names[label] if given else ABSENT,
             "suggested": ABSENT if given else class_names[label], "score": round(score, 4)}
            for i, label, given, score in label_issues.multi_label_issues(probabilities, labels)]


def pair_rows(features, splits, threshold):
    """Rows of metrics/near_duplicates.csv: pairs that straddle splits first."""
    files, names = listed(splits, list(splits))
    x = np.concatenate([features[split] for split in splits])
    pairs = near_duplicates.similar_pairs(x, threshold)
    return [{"file_a": files[a], "split_a": names[a], "file_b": files[b], "split_b": names[b],
             "similarity": round(similarity, 4)}
            for a, b, similarity in near_duplicates.ordered(pairs, names)]


def counts(issues, pairs, split_names):
    """metrics/audit.json: flat keys, for dvc metrics diff."""
    figures = {"label_issues": len(issues)}
    for split in split_names:
        figures[f"label_issues_{split}"] = sum(row["split"] == split for row in issues)
    figures["near_duplicates"] = len(pairs)
    for i, first in enumerate(split_names):
        for second in split_names[i:]:
            figures[f"near_duplicates_{first}_{second}"] = sum(
                (row["split_a"], row["split_b"]) == (first, second) for row in pairs)
    return figures


def accuracy_without_near_duplicates(probabilities, labels, files, pairs):
    """(test accuracy over the test images with no near-duplicate in train or val, or None
    when every one has one; how many have one): how much the near-duplicates lift the test
    score."""
    seen = {row["file_b"] for row in pairs
            if row["split_b"] == "test" and row["split_a"] in ("train", "val")}
    kept = np.array([file not in seen for file in files], bool)
    right = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    return (float(right[kept].mean()) if kept.any() else None), int((~kept).sum())


def write_rows(path, rows, columns):
    with replaced_when_done(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

