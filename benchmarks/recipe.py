"""What each phase of the recipe buys, on real photos: the README's own-data recipe (default
backbone, 224 px, photo augmentation) in three regimes, every stage in its own process as DVC
runs them; prints one table (linear probe, transfer and final test accuracy, the model kept,
the seconds of each phase, why fine-tuning stopped, val accuracy before fine-tuning and after
its first epoch; calibration error before and after temperature scaling, and how well the
"unknown" output tells the other regime's photos from the test images) and writes
benchmarks/recipe.json.

    python -m benchmarks.recipe        # needs ../shared (photos and MobileNet-0.75 weights)

The regimes: the insect photos (small, full-size; their val/ as given, a seeded quarter of
train/ held out as test/), 40 flower photos a class (small, blurry; 32 train, 8 val, and 100 a
class of the others as test, so the score is not over a handful of images) and all 4,317
flower photos (class folders, the default split).
"""
import json
import os
import random
import shutil
import sys
import tempfile

from benchmarks.scale import ROOT, project_copy, run

SHARED = os.path.join(os.path.dirname(ROOT), "shared")
FLOWERS = os.path.join(SHARED, "datasets", "flowers5-128")
INSECTS = os.path.join(SHARED, "datasets", "hymenoptera")
STAGES = ["sample", "split", "preprocess", "features", "probe", "transfer", "finetune",
          "calibrate", "evaluate"]
PHASES = ["features", "probe", "transfer", "finetune"]


def own_data_recipe(data_dir, unknown_dir=None):
    """The README's `dvc exp run -S data.dir=my_images ...` params, on data_dir, with the
    photos of unknown_dir (the other domain) as images of none of the classes."""
    def update(values):
        values["data"]["dir"] = data_dir
        values["evaluate"]["unknown_dir"] = unknown_dir
        values["image_size"] = None
        values["preprocess"]["resolution"] = 224
        values["augment"].update(flip="horizontal", rotation=0.1, translation=0.1)
    return update


def copy_files(files, folder):
    os.makedirs(folder, exist_ok=True)
    for path in files:
        shutil.copy(path, folder)


def class_files(folder):
    return {name: sorted(os.path.join(folder, name, file)
                         for file in os.listdir(os.path.join(folder, name)))
            for name in sorted(os.listdir(folder))}


def insects_with_test(work, seed=0):
    """hymenoptera with its val/ as given and a seeded quarter of each class of train/ as test/."""
    target = os.path.join(work, "insects")
    rng = random.Random(seed)
    for name, files in class_files(os.path.join(INSECTS, "train")).items():
        rng.shuffle(files)
        cut = len(files) // 4
        copy_files(files[:cut], os.path.join(target, "test", name))
        copy_files(files[cut:], os.path.join(target, "train", name))
    shutil.copytree(os.path.join(INSECTS, "val"), os.path.join(target, "val"))
    return target


def flowers_subset(work, per_class=40, test_per_class=100, seed=0):
    """per_class flower photos a class as train/ (80%) and val/ (20%); test_per_class others."""
    target = os.path.join(work, f"flowers{per_class}")
    rng = random.Random(seed)
    val_count = per_class // 5
    for name, files in class_files(FLOWERS).items():
        rng.shuffle(files)
        copy_files(files[:val_count], os.path.join(target, "val", name))
        copy_files(files[val_count:per_class], os.path.join(target, "train", name))
        copy_files(files[per_class:per_class + test_per_class], os.path.join(target, "test", name))
    return target


def measure(work, name, update_params):
    """Run the stages in a fresh copy of the project; the row of figures."""
    folder = os.path.join(work, "project " + name)
    project_copy(folder, update_params)
    log = os.path.join(folder, "log.txt")
    seconds = {}
    for stage in STAGES:
        seconds[stage], _ = run([sys.executable, "-m", f"stages.{stage}"], folder, log)

    def metrics(file):
        with open(os.path.join(folder, "metrics", file), encoding="utf-8") as f:
            return json.load(f)
    test, finetune = metrics("metrics.json"), metrics("finetune.json")
    row = {"dataset": name, "n_test": test["n_images"], "probe": test.get("probe_accuracy"),
           "transfer": test["transfer_accuracy"], "final": test["accuracy"],
           "kept": finetune["kept"],
           **{f"{phase} s": round(seconds[phase], 1) for phase in PHASES},
           "fine-tuning epochs": finetune["epochs_run"],
           "val accuracy: start, 1st epoch": _first_epoch(finetune),
           "stopped": finetune.get("stopped_because", ""),
           "ECE before, after": f"{test['ece_before']:.4f}, {test['ece']:.4f}",
           "AUROC": test["unknown_auroc"], "rejected": test["unknown_rejected"],
           "known kept": test["known_kept"]}
    shutil.rmtree(folder)
    return row


def _first_epoch(finetune):
    """Val accuracy before fine-tuning and after its first epoch: does it fall?"""
    if "first_epoch_val_accuracy" not in finetune:
        return ""
    return f"{finetune['start_val_accuracy']:.4f}, {finetune['first_epoch_val_accuracy']:.4f}"


def table(rows):
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{value:.4f}" if isinstance(value, float) and key not in
                 [f"{p} s" for p in PHASES] else str(value) for key, value in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def use_shared_weights(work):
    """A Keras home in work holding the shared ImageNet weights, for the stages' processes
    (they inherit KERAS_HOME); exits when ../shared is absent."""
    if not (os.path.isdir(FLOWERS) and os.path.isdir(INSECTS)):
        sys.exit(f"benchmarks: {FLOWERS} or {INSECTS} not found; this benchmark needs ../shared")
    keras_home = os.path.join(work, "keras_home")
    shutil.copytree(os.path.join(SHARED, "keras", "models"), os.path.join(keras_home, "models"))
    os.environ["KERAS_HOME"] = keras_home


def main():
    with tempfile.TemporaryDirectory() as work:
        use_shared_weights(work)
        # Each regime's unknowns are the other domain's photos: flowers for the insects.
        regimes = [("hymenoptera", insects_with_test(work), FLOWERS),
                   ("flowers5, 40 a class", flowers_subset(work), INSECTS),
                   ("flowers5", FLOWERS, INSECTS)]
        rows = [{**measure(work, name, own_data_recipe(folder, unknowns)),
                 "unknowns": os.path.basename(unknowns)} for name, folder, unknowns in regimes]
    print(table(rows))
    with open(os.path.join(ROOT, "benchmarks", "recipe.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
