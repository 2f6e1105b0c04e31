"""What each phase of the recipe buys: the pipeline on the digits sample (default params) and on
the shared flower photos (the README's own-data recipe), every stage in its own process as
DVC runs them; prints one table (linear probe, transfer, fine-tuned test accuracy, seconds of
each phase, whether fine-tuning was kept) and writes benchmarks/recipe.json.

    python -m benchmarks.recipe        # needs ../shared (photos and MobileNet-0.75 weights)
"""
import json
import os
import shutil
import sys
import tempfile

from benchmarks.scale import ROOT, project_copy, run

SHARED = os.path.join(os.path.dirname(ROOT), "shared")
FLOWERS = os.path.join(SHARED, "datasets", "flowers5-128")
STAGES = ["sample", "split", "preprocess", "features", "probe", "transfer", "finetune", "evaluate"]
PHASES = ["features", "probe", "transfer", "finetune"]


def sample_params(values):
    """The project's own params: the digits sample."""


def flowers_params(values):
    """The README's own-data recipe (`dvc exp run -S data.dir=my_images ...`) on flowers5."""
    values["data"]["dir"] = FLOWERS
    values["image_size"] = None
    values["preprocess"]["resolution"] = 224
    values["augment"].update(flip="horizontal", rotation=0.1, translation=0.1)


def measure(work, name, update_params):
    """Run the stages in a fresh copy of the project; the row of figures."""
    folder = os.path.join(work, name)
    project_copy(folder, update_params)
    log = os.path.join(folder, "log.txt")
    seconds = {}
    for stage in STAGES:
        seconds[stage], _ = run([sys.executable, "-m", f"stages.{stage}"], folder, log)

    def metrics(file):
        with open(os.path.join(folder, "metrics", file), encoding="utf-8") as f:
            return json.load(f)
    test, finetune = metrics("metrics.json"), metrics("finetune.json")
    row = {"dataset": name, "n_images": test["n_images"], "probe": test.get("probe_accuracy"),
           "transfer": test["transfer_accuracy"], "fine-tuned": test["accuracy"],
           "kept": finetune["kept"],
           **{f"{phase} s": round(seconds[phase], 1) for phase in PHASES}}
    shutil.rmtree(folder)
    return row


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
    if not os.path.isdir(FLOWERS):
        sys.exit(f"benchmarks: {FLOWERS} not found; this benchmark needs ../shared")
    keras_home = os.path.join(work, "keras_home")
    shutil.copytree(os.path.join(SHARED, "keras", "models"), os.path.join(keras_home, "models"))
    os.environ["KERAS_HOME"] = keras_home


def main():
    with tempfile.TemporaryDirectory() as work:
        use_shared_weights(work)
        rows = [measure(work, "sample", sample_params), measure(work, "flowers5", flowers_params)]
    print(table(rows))
    with open(os.path.join(ROOT, "benchmarks", "recipe.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
