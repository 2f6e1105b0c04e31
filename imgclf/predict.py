"""Top-k classes of new images with models/model.keras alone (its preprocessing is inside);
for a multi_label model, every label at or above its threshold (stored in the model). An image
the model calls unknown (like none of its training images: docs/calibration.md) is printed
as `unknown` with its score; with --min-confidence P, one whose top probability is below P
(multi_label: any label's decision) is marked `uncertain`.

    python -m imgclf.predict photo.jpg                     # one image, a table on stdout
    python -m imgclf.predict a.jpg b.png folder/ -k 3      # several, folders recursively
    python -m imgclf.predict folder/ -o predictions.csv    # or .json
    python -m imgclf.predict folder/ --min-confidence 0.9  # mark the less sure ones

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
from imgclf.files import replaced_when_done, shown_name


def image_paths(paths):
    """Files as given; folders walked recursively for image files, hidden ones skipped."""
    for path in paths:
        if os.path.isdir(path):
            yield from image_files(path)
        else:
            yield path


def predict(model, paths, top_k=3, batch_size=64, size=None, processes=None, tta=False,
            min_confidence=0.0):
    """One dict per file: file, and either error or predictions [(class, probability)],
    uncertain (confidence below min_confidence) and, for a calibrated model, unknown and
    unknown_score. Images are decoded at the resolution the model records its training
    images were prepared at (size overrides it), so a file gets the prediction evaluate gave it."""
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
                _predict_batch(model, batch, names, top_k, rows, tta, label_thresholds,
                               min_confidence)
                batch = []
        if batch:
            _predict_batch(model, batch, names, top_k, rows, tta, label_thresholds, min_confidence)
    return rows


def _predict_batch(model, batch, names, top_k, rows, tta=False, label_thresholds=None,
                   min_confidence=0.0):
    from imgclf.calibration import image_confidence
    from imgclf.model import outputs
    from imgclf.multilabel import decide

    images = np.stack([pixels for _, pixels, _ in batch]).astype("float32")
    predicted = outputs(model, images, tta)
    for index, (path, _, row) in enumerate(batch):
        probs = predicted["probabilities"][index]
        order = np.argsort(probs)[::-1]
        if label_thresholds is None:
            best = order[:top_k]
        else:
            best = [i for i in order if decide(probs, label_thresholds)[i]]
        rows[row] = {"file": path, "predictions": [(names[i], float(probs[i])) for i in best],
                     "uncertain": bool(image_confidence(probs, label_thresholds) < min_confidence)}
        if "unknown" in predicted:
            rows[row]["unknown"] = bool(predicted["unknown"][index, 0])
            rows[row]["unknown_score"] = float(predicted["unknown_score"][index, 0])


FLAGS = ["unknown", "unknown_score", "uncertain"]  # columns after the predictions


def write_rows(rows, output, top_k):
    """The rows as a .json or .csv file, which appears only once complete (a failure leaves
    an earlier one as it was); file names as shown_name writes them."""
    rows = [{**row, "file": shown_name(row["file"])} for row in rows]
    with replaced_when_done(output) as tmp:
        if output.endswith(".json"):
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump([{**row, "predictions": [{"class": c, "probability": p} for c, p in
                                                   row.get("predictions", [])]} for row in rows],
                          f, indent=1)
        else:
            write_csv(rows, tmp, top_k)


def write_csv(rows, output, top_k):
    top_k = max([top_k, *(len(row.get("predictions", [])) for row in rows)])  # multi_label
    with open(output, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", *[f"{kind}_{i}" for i in range(1, top_k + 1)
                                   for kind in ("class", "probability")], *FLAGS, "error"])
        for row in rows:
            cells = [value for pair in row.get("predictions", []) for value in (pair[0], f"{pair[1]:.4f}")]
            flags = [_cell(row.get(flag, "")) for flag in FLAGS]
            writer.writerow([row["file"], *cells, *[""] * (2 * top_k - len(cells)), *flags,
                             row.get("error", "")])


def _cell(value):
    if isinstance(value, bool):
        return int(value)
    return f"{value:.4f}" if isinstance(value, float) else value


def line(row):
    """One image's answer on stdout: its classes, `unknown` with its score, or the error."""
    if "error" in row:
        return f"error: {row['error']}"
    if row.get("unknown"):
        return f"unknown (score {row['unknown_score']:.3f}, above the model's threshold)"
    result = "  ".join(f"{c} {p:.3f}" for c, p in row["predictions"])
    result = result or "(no label above its threshold)"
    return f"uncertain: {result}" if row["uncertain"] else result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="image files and folders")
    parser.add_argument("-m", "--model", default="models/model.keras")
    parser.add_argument("-k", "--top-k", type=int, default=3)
    parser.add_argument("-o", "--output", help="a .csv or .json file (default: a table on stdout)")
    parser.add_argument("-b", "--batch-size", type=int, default=64)
    parser.add_argument("--tta", action="store_true",
                        help="average with each mirror image's prediction (as evaluate.tta)")
    parser.add_argument("--min-confidence", type=float, default=0.0, metavar="P",
                        help="mark images whose top probability (multi_label: least sure "
                             "label, max(p, 1-p)) is below P uncertain (plots/risk_coverage.csv: "
                             "the accuracy each P gives)")
    args = parser.parse_args(argv)
    if not os.path.exists(args.model):
        sys.exit(f"error: {args.model} not found; run dvc repro first, or pass --model")
    from imgclf.model import load

    if not 0 <= args.min_confidence <= 1:
        sys.exit(f"error: --min-confidence is {args.min_confidence}; expected a probability "
                 "from 0 to 1")
    model = load(args.model)
    rows = predict(model, image_paths(args.paths), args.top_k, args.batch_size, tta=args.tta,
                   min_confidence=args.min_confidence)
    if args.output:
        write_rows(rows, args.output, args.top_k)
    else:
        for row in rows:
            print(f"{shown_name(row['file'])}\t{line(row)}")
    errors = sum(1 for row in rows if "error" in row)
    unknown = sum(1 for row in rows if row.get("unknown"))
    uncertain = sum(1 for row in rows if row.get("uncertain") and not row.get("unknown"))
    print(f"predict: {len(rows) - errors} image(s) classified ({unknown} unknown, {uncertain} "
          f"uncertain), {errors} unreadable" + (f" -> {args.output}" if args.output else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
