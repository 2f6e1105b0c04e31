"""Image grids: of a run's test predictions (the plot stage; rows are plots/confusion.csv's)
the most confident mistakes and Grad-CAM heat maps over a few images per class; of the audit
stage's tables the likely label errors and the near-duplicate pairs."""
import csv
import os

from imgclf import charts


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def image_lookup(splits):
    """file -> its prepared image, over splits {split: (images, labels, files)}."""
    where = {file: (split, row) for split, (_, _, files) in splits.items()
             for row, file in enumerate(files)}
    return lambda file: splits[where[file][0]][0][where[file][1]]


def confident_mistakes(rows, count):
    wrong = [row for row in rows if row["actual"] != row["predicted"]]
    return sorted(wrong, key=lambda row: -float(row["confidence"]))[:count]


def examples_per_class(rows, per_class, max_images):
    """The first `per_class` rows of each class, at most max_images in all."""
    chosen, seen = [], {}
    for row in rows:
        if seen.get(row["actual"], 0) < per_class and len(chosen) < max_images:
            chosen.append(row)
            seen[row["actual"]] = seen.get(row["actual"], 0) + 1
    return chosen


def mistakes_grid(rows, image_of, path):
    mistakes = confident_mistakes(rows, 18)
    titles = [f"true {r['actual']}\npredicted {r['predicted']} ({float(r['confidence']):.2f})"
              for r in mistakes]
    charts.image_grid([image_of(r["file"]) for r in mistakes], titles, path,
                      f"most confident mistakes ({len(mistakes)} shown)")


def gradcam_grid(rows, image_of, class_names, model, path):
    from imgclf.gradcam import heat_maps

    given = [r for r in rows if r["predicted"] in class_names]  # multi_label: not NONE
    chosen = examples_per_class(given, 2, 24)
    images = [image_of(r["file"]) for r in chosen]
    maps = heat_maps(model, images, [class_names.index(r["predicted"]) for r in chosen])
    charts.image_grid(images, [f"{r['actual']} -> {r['predicted']}" for r in chosen], path,
                      "Grad-CAM of the predicted class (last spatial layer)", overlays=maps)


def label_issues_grid(rows, image_of, path, shown):
    """The `shown` most suspect images of metrics/label_issues.csv, given against suggested."""
    chosen = rows[:shown]
    titles = [f"{r['split']}: given {r['label']}\nsuggested {r['suggested']} ({r['score']:.2f})"
              for r in chosen]
    charts.image_grid([image_of(r["file"]) for r in chosen], titles, path,
                      f"likely label errors ({len(chosen)} of {len(rows)} shown)")


def near_duplicates_grid(rows, image_of, path, shown):
    """The first `shown` pairs of metrics/near_duplicates.csv (straddling splits first), a
    pair side by side."""
    chosen = rows[:shown]
    images = [image_of(r[key]) for r in chosen for key in ("file_a", "file_b")]
    titles = [f"{r[split]} ({r['similarity']:.3f})\n{os.path.basename(r[key])[:28]}"
              for r in chosen for key, split in (("file_a", "split_a"), ("file_b", "split_b"))]
    charts.image_grid(images, titles, path,
                      f"near-duplicate pairs ({len(chosen)} of {len(rows)} shown)")


def unknowns_grid(rows, path, resolution, shown=18):
    """The images of evaluate.unknown_dir the model accepted most confidently (the lowest
    unknown scores first: plots/unknowns.csv), each with the class it would give."""
    from imgclf.images import load_image

    chosen = rows[:shown]
    titles = [f"{r['predicted']} ({float(r['confidence']):.2f})\n"
              f"score {float(r['unknown_score']):.3f} "
              + ("unknown" if r["unknown"] == "1" else "ACCEPTED") for r in chosen]
    accepted = sum(r["unknown"] == "0" for r in rows)
    charts.image_grid([load_image(r["file"], resolution) for r in chosen], titles, path,
                      f"images of no class, most confidently accepted first ({accepted} of "
                      f"{len(rows)} accepted)" if rows else "evaluate.unknown_dir is not set")
