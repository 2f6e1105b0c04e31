"""Near-duplicate images (the audit stage): pairs whose average-pooled backbone features
point the same way. A re-saved, resized or slightly cropped copy of a photo keeps its
features; two photos of one species do not (the threshold, audit.similarity, was chosen on
planted copies of real photos: docs/audit.md). The split already leaves out copies with the
same bytes or pixels; these are the ones it cannot see."""
import numpy as np

SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def unit_rows(features):
    """Features scaled to length 1, so a dot product is a cosine similarity. Not centred:
    on the flower photos centring (removing what all images share) ranked planted copies
    below 39 pairs of other photos, the raw cosine below 10, all of them real duplicates
    the dataset holds (docs/audit.md)."""
    features = np.asarray(features, np.float32)
    lengths = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(lengths, 1e-12)


def similar_pairs(features, threshold, rows_at_once=512):
    """[(i, j, cosine similarity)] for every pair i < j at or above threshold, computed a
    block of rows at a time (memory holds rows_at_once x n similarities, not n x n)."""
    units = unit_rows(features)
    pairs = []
    for start in range(0, len(units), rows_at_once):
        block = units[start:start + rows_at_once] @ units.T
        rows, columns = np.nonzero(block >= threshold)
        for row, column in zip(rows, columns):
            if start + row < column:
                pairs.append((int(start + row), int(column), float(block[row, column])))
    return pairs


def ordered(pairs, splits):
    """pairs as (a, b, similarity) with a's split first in train, val, test order; pairs
    that straddle two splits first, each group most similar first."""
    oriented = [(i, j, s) if SPLIT_ORDER[splits[i]] <= SPLIT_ORDER[splits[j]] else (j, i, s)
                for i, j, s in pairs]
    return sorted(oriented, key=lambda pair: (splits[pair[0]] == splits[pair[1]], -pair[2]))

