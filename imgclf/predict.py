"""Top-k classes of new images with models/model.keras alone (its preprocessing is inside);
for a multi_label model, every label at or above its threshold (stored in the model).

    python -m imgclf.predict photo.jpg                     # one image, a table on stdout
    python -m imgclf.predict a.jpg b.png folder/ -k 3      # several, folders recursively
    python -m imgclf.predict folder/ -o predictions.csv    # or .json

Images are decoded on all cores and predicted in batches; a file that cannot be read gets
its reason in the output instead of predictions, and the others go on.
"""
import argparse
import csv
import functools
import json
import multiprocessing
import os
import sys

import numpy as np
from tqdm import tqdm

from imgclf.images import image_files, try_load_image
from imgclf.errors import interactive


def image_paths(paths):
    """Files as given; folders walked recursively for image files, hidden ones skipped."""
    for path in paths:
        if os.path.isdir(path):
            yield from image_files(path)
        else:
            yield path


def predict(model, paths, top_k=3, batch_size=64, size=None, processes=None, tta=False):
    """One dict per file: file, and either predictions [(class, probability)] or error.
    Images are decoded at the resolution the model records its training images were
    prepared at (size overrides it), so a file gets the prediction evaluate gave it."""
    from imgclf.model import class_names, is_multi_label, prepared_resolution, thresholds

    names = class_names(model)
    label_thresholds = thresholds(model) if is_multi_label(model) else None  # None: top_k
    size = size or prepared_resolution(model)
    paths = list(paths)
    rows = []
    with multiprocessing.get_context("spawn").Pool(processes or os.cpu_count()) as pool:
        decoded = pool.imap(functools.partial(try_load_image, size=size), paths, chunksize=16)
        batch = []
        progress = tqdm(decoded, total=len(paths), unit="img", disable=not interactive())
        for path, (pixels, reason) in zip(paths, progress):
            if pixels is None:
                rows.append({"file": path, "error": reason})
                continue
            batch.append((path, pixels, len(rows)))
            rows.append(None)
            if len(batch) == batch_size:
                _predict_batch(model, batch, names, top_k, rows, tta, label_thresholds)
                batch = []
        if batch:
            _predict_batch(model, batch, names, top_k, rows, tta, label_thresholds)
    return rows


def _predict_batch(model, batch, names, top_k, rows, tta=False, label_thresholds=None):
    from imgclf.model import probabilities as model_probabilities
    from imgclf.multilabel import decide

    images = np.stack([pixels for _, pixels, _ in batch]).astype("float32")
    probabilities = model_probabilities(model, images, tta)
    for (path, _, row), probs in zip(batch, probabilities):
        order = np.argsort(probs)[::-1]
        if label_thresholds is None:
            best = order[:top_k]
        else:
            best = [i for i in order if decide(probs, label_thresholds)[i]]
        rows[row] = {"file": path, "predictions": [(names[i], float(probs[i])) for i in best]}


def write_rows(rows, output, top_k):
    if output.endswith(".json"):
        with open(output, "w", encoding="utf-8") as f:
            json.dump([{**row, "predictions": [{"class": c, "probability": p} for c, p in
                                               row.get("predictions", [])]} for row in rows], f, indent=1)
        return
    top_k = max([top_k, *(len(row.get("predictions", [])) for row in rows)])  # multi_label
    with open(output, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", *[f"{kind}_{i}" for i in range(1, top_k + 1)
                                   for kind in ("class", "probability")], "error"])
        for row in rows:
            cells = [value for pair in row.get("predictions", []) for value in (pair[0], f"{pair[1]:.4f}")]
            writer.writerow([row["file"], *cells, *[""] * (2 * top_k - len(cells)), row.get("error", "")])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="image files and folders")
    parser.add_argument("-m", "--model", default="models/model.keras")
    parser.add_argument("-k", "--top-k", type=int, default=3)
    parser.add_argument("-o", "--output", help="a .csv or .json file (default: a table on stdout)")
    parser.add_argument("-b", "--batch-size", type=int, default=64)
    parser.add_argument("--tta", action="store_true",
                        help="average with each mirror image's prediction (as evaluate.tta)")
    args = parser.parse_args(argv)
    if not os.path.exists(args.model):
        sys.exit(f"error: {args.model} not found; run dvc repro first, or pass --model")
    from imgclf.model import load

    model = load(args.model)
    rows = predict(model, image_paths(args.paths), args.top_k, args.batch_size, tta=args.tta)
    if args.output:
        write_rows(rows, args.output, args.top_k)
    else:
        for row in rows:
            result = "  ".join(f"{c} {p:.3f}" for c, p in row.get("predictions", []))
            if not result:
                none = "(no label above its threshold)"
                result = f"error: {row['error']}" if "error" in row else none
            print(f"{row['file']}\t{result}")
    errors = sum(1 for row in rows if "error" in row)
    print(f"predict: {len(rows) - errors} image(s) classified, {errors} unreadable"
          + (f" -> {args.output}" if args.output else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
