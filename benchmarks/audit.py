"""How well the audit stage finds planted problems in real photos: a CSV of labels with a
known 5% of them changed to another class, and copies of some test photos (re-saved at
another JPEG quality, resized, cropped by a few percent, or all three) put in train under
other names. Each regime runs the pipeline's stages with the README's own-data recipe
(fine-tuning off: the audit reads the frozen backbone's features only), then scores the
stage's tables against what was planted. Prints one table and writes benchmarks/audit.json.

    python -m benchmarks.audit              # needs ../shared; about 6 minutes here
    python -m benchmarks.audit --similarity 0.8   # list pairs down to 0.8, to choose the threshold

Regimes: all 4,317 flower photos (70/20/10 per class, seeded) and the insect photos (their
train/ and val/, a seeded quarter of train as test).
"""
import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile

from PIL import Image

from benchmarks.recipe import FLOWERS, INSECTS, class_files, own_data_recipe, use_shared_weights
from benchmarks.scale import ROOT, project_copy, run
from imgclf.gallery import read_rows

STAGES = ["sample", "split", "preprocess", "features", "probe", "transfer", "finetune",
          "calibrate", "evaluate", "audit"]
CHANGED_SHARE = 0.05


def flowers_rows(seed=0):
    """[(source path, label, split)]: every flower photo, 70/20/10 per class, seeded."""
    rng, rows = random.Random(seed), []
    for name, files in class_files(FLOWERS).items():
        rng.shuffle(files)
        cuts = (int(0.7 * len(files)), int(0.9 * len(files)))
        rows += [(path, name, "train" if i < cuts[0] else "val" if i < cuts[1] else "test")
                 for i, path in enumerate(files)]
    return rows


def insect_rows(seed=0):
    """[(source path, label, split)]: the insects' val/ as given, a quarter of train/ as test."""
    rng, rows = random.Random(seed), []
    for name, files in class_files(os.path.join(INSECTS, "train")).items():
        rng.shuffle(files)
        rows += [(path, name, "test" if i < len(files) // 4 else "train")
                 for i, path in enumerate(files)]
    for name, files in class_files(os.path.join(INSECTS, "val")).items():
        rows += [(path, name, "val") for path in files]
    return rows


def altered_copy(source, target, kind):
    """A copy of the photo that is no longer the same bytes or pixels."""
    image = Image.open(source).convert("RGB")
    width, height = image.size
    if kind in ("crop", "all"):
        cut = 0.03 if kind == "crop" else 0.02
        image = image.crop((int(cut * width), int(cut * height), int((1 - cut) * width),
                            int((1 - cut) * height)))
    if kind in ("resize", "all"):
        image = image.resize((int(image.width * 0.8), int(image.height * 0.8)), Image.BICUBIC)
    image.save(target, quality={"jpeg": 40, "all": 60}.get(kind, 90))


def planted_dataset(work, name, rows, copies, seed=0):
    """data.dir with a copy of every photo, labels.csv (file, label, split) with a seeded 5%
    of labels changed, and `copies` altered copies of test photos in train. Returns the
    folder and what was planted: {file: (given, true)} and {copy file: original file}."""
    rng = random.Random(seed)
    folder = os.path.join(work, name)
    os.makedirs(os.path.join(folder, "photos"))
    classes = sorted({label for _, label, _ in rows})
    table, changed, copied = [], {}, {}
    test_rows = [i for i, (_, _, split) in enumerate(rows) if split == "test"]
    originals = set(rng.sample(test_rows, copies))
    kinds = ["jpeg", "resize", "crop", "all"]
    for i, (source, label, split) in enumerate(rows):
        file = f"photos/{i:05d}{os.path.splitext(source)[1].lower()}"
        shutil.copy(source, os.path.join(folder, file))
        given = label
        if i not in originals and rng.random() < CHANGED_SHARE:
            given = rng.choice([c for c in classes if c != label])
            changed[file] = (given, label)
        table.append((file, given, split))
        if i in originals:
            copy = f"photos/copy_{len(copied):03d}.jpg"
            altered_copy(source, os.path.join(folder, copy), kinds[len(copied) % len(kinds)])
            table.append((copy, label, "train"))
            copied[copy] = file
    with open(os.path.join(folder, "labels.csv"), "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("file", "label", "split"), *table])
    return folder, changed, copied


def score(project, data_dir, changed, copied):
    """The audit's tables against what was planted."""
    strip = lambda path: os.path.relpath(path, data_dir)  # noqa: E731
    issues = read_rows(os.path.join(project, "metrics", "label_issues.csv"))
    flagged = [strip(row["file"]) for row in issues]
    top = set(flagged[:len(changed)])
    hits = sum(file in changed for file in flagged)
    suggested_right = sum(changed[strip(row["file"])][1] == row["suggested"]
                          for row in issues if strip(row["file"]) in changed)
    pairs = read_rows(os.path.join(project, "metrics", "near_duplicates.csv"))
    planted = {frozenset(pair) for pair in copied.items()}
    found = [row for row in pairs
             if frozenset((strip(row["file_a"]), strip(row["file_b"]))) in planted]
    others = [row for row in pairs if row not in found]
    with open(os.path.join(project, "metrics", "audit.json"), encoding="utf-8") as f:
        audit = json.load(f)
    with open(os.path.join(project, "metrics", "metrics.json"), encoding="utf-8") as f:
        test_accuracy = json.load(f)["accuracy"]
    return {"images": len(read_rows(os.path.join(data_dir, "labels.csv"))),
            "labels changed": len(changed), "flagged": len(flagged),
            "changed among flagged": hits,
            "precision at the changed count": round(len(top & set(changed)) / len(changed), 3),
            "precision": round(hits / max(1, len(flagged)), 3),
            "recall": round(hits / len(changed), 3),
            "suggested the true label": suggested_right,
            "copies planted": len(copied), "copies found": len(found),
            "other pairs": len(others),
            "planted similarities": sorted(float(row["similarity"]) for row in found),
            "highest other similarities": [float(row["similarity"]) for row in others[:10]],
            "test accuracy": round(test_accuracy, 4),
            "test images with a near-duplicate in train or val":
                audit["test_images_with_near_duplicates"],
            "test accuracy without them": round(audit["test_accuracy_without_near_duplicates"], 4),
            "audit seconds": audit["seconds"]}


def measure(work, name, rows, copies, similarity):
    data_dir, changed, copied = planted_dataset(work, name, rows, copies)
    project = os.path.join(work, "project " + name)
    recipe = own_data_recipe(data_dir)

    def update(values):
        recipe(values)
        values["data"]["labels"] = os.path.join(data_dir, "labels.csv")
        values["finetune"]["unfreeze"] = 0
        values["audit"]["similarity"] = similarity
    project_copy(project, update)
    log = os.path.join(project, "log.txt")
    for stage in STAGES:
        run([sys.executable, "-m", f"stages.{stage}"], project, log)
    return {"regime": name, **score(project, data_dir, changed, copied)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--similarity", type=float, default=None,
                        help="audit.similarity for the runs (default: params.yaml's)")
    parser.add_argument("--keep", metavar="DIR",
                        help="work in DIR and keep it (the runs' tables and plots)")
    args = parser.parse_args()
    import yaml
    with open(os.path.join(ROOT, "params.yaml"), encoding="utf-8") as f:
        similarity = args.similarity or yaml.safe_load(f)["audit"]["similarity"]
    with tempfile.TemporaryDirectory() as temporary:
        work = args.keep or temporary
        use_shared_weights(work)
        results = [measure(work, "insects", insect_rows(), 8, similarity),
                   measure(work, "flowers5", flowers_rows(), 24, similarity)]
    for result in results:
        print(json.dumps(result))
    with open(os.path.join(ROOT, "benchmarks", "audit.json"), "w", encoding="utf-8") as f:
        json.dump({"similarity": similarity, "results": results}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
