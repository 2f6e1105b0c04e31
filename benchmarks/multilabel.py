"""task: multi_label on real photos: pairs of the shared flower photos, each in one of the four
quarters of a grey square (two random quarters), labelled with both flowers (one label when
both are of one kind), and single photos in one quarter (one label). No photo is used
twice, so no photo is in two splits. Every stage in its own process, as DVC runs them,
with the README's own-data recipe plus `task: multi_label` and `data.labels`; prints the
test figures and writes benchmarks/multilabel.json.

    python -m benchmarks.multilabel          # needs ../shared (photos, MobileNet-0.75 weights)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

from benchmarks.recipe import FLOWERS, flowers_params, use_shared_weights
from benchmarks.scale import ROOT, project_copy, run
from imgclf.images import PIL_FORMATS

PAIRS = 1600
SINGLES = 500
STAGES = ["split", "preprocess", "features", "probe", "transfer", "finetune", "calibrate",
          "evaluate"]


def flower_photos():
    """[(path, flower)] of every shared photo, in a seeded random order."""
    photos = [(os.path.join(FLOWERS, name, file), name) for name in sorted(os.listdir(FLOWERS))
              for file in sorted(os.listdir(os.path.join(FLOWERS, name)))]
    order = np.random.default_rng(0).permutation(len(photos))
    return [photos[i] for i in order]


def write_dataset(folder):
    """folder/images/*.jpg (256 x 256) and folder/labels.csv (labels joined by spaces)."""
    photos = iter(flower_photos())
    os.makedirs(os.path.join(folder, "images"))
    lines = ["file,label"]
    for index in range(PAIRS + SINGLES):
        photos_here = [next(photos)] if index >= PAIRS else [next(photos), next(photos)]
        canvas = Image.new("RGB", (256, 256), (128, 128, 128))
        for quarter, (path, _) in zip(np.random.default_rng(index).permutation(4), photos_here):
            with Image.open(path, formats=PIL_FORMATS) as photo:
                corner = (128 * int(quarter % 2), 128 * int(quarter // 2))
                canvas.paste(photo.convert("RGB").resize((128, 128)), corner)
        name = f"images/{index:04d}.jpg"
        canvas.save(os.path.join(folder, name), quality=92)
        lines.append(f"{name},{' '.join(sorted({flower for _, flower in photos_here}))}")
    with open(os.path.join(folder, "labels.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def predict_examples(folder, data_dir, count=6):
    """imgclf.predict's lines for the first `count` test pairs, each with its true labels."""
    with open(os.path.join(folder, "data", "prepared", "test", "files.txt"), encoding="utf-8") as f:
        pairs = [file for file in f.read().split() if int(file[-8:-4]) < PAIRS][:count]
    printed = subprocess.run([sys.executable, "-m", "imgclf.predict", *pairs], cwd=folder,
                             capture_output=True, text=True, check=True).stdout
    with open(os.path.join(data_dir, "labels.csv"), encoding="utf-8") as f:
        truth = dict(line.strip().split(",") for line in f)
    examples = []
    for line in printed.splitlines():
        file, result = line.split("\t")
        examples.append(f"{result}   (true: {truth[os.path.relpath(file, data_dir)]})")
    return examples


def multilabel_params(data_dir):
    def update(values):
        flowers_params(values)
        values["task"] = "multi_label"
        values["data"].update(dir=data_dir, labels=os.path.join(data_dir, "labels.csv"))
    return update


def main():
    with tempfile.TemporaryDirectory() as work:
        use_shared_weights(work)
        data_dir = os.path.join(work, "pairs")
        write_dataset(data_dir)
        folder = os.path.join(work, "project")
        project_copy(folder, multilabel_params(data_dir))
        log = os.path.join(folder, "log.txt")
        seconds = {stage: round(run([sys.executable, "-m", f"stages.{stage}"], folder, log)[0], 1)
                   for stage in STAGES}
        with open(os.path.join(folder, "metrics", "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        with open(os.path.join(folder, "metrics", "per_class.json"), encoding="utf-8") as f:
            per_label = json.load(f)
        examples = predict_examples(folder, data_dir)
    result = {"images": PAIRS + SINGLES, "metrics": metrics, "per_label": per_label,
              "seconds": seconds, "predict_examples": examples}
    for key in ("f1_macro", "map", "f1_micro", "subset_accuracy", "hamming_loss"):
        print(f"{key}: {metrics[key]:.4f} (before fine-tuning {metrics['transfer_' + key]:.4f}, "
              f"probe {metrics['probe_' + key]:.4f})")
    print(f"n_images {metrics['n_images']}; seconds {seconds}")
    print("predict on test pairs:", *examples, sep="\n  ")
    with open(os.path.join(ROOT, "benchmarks", "multilabel.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
