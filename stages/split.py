"""split: data.dir (class folders, train/ val/ [test/] of them, or a CSV in data.labels) ->
data/split/manifest.csv: each image's file, label(s), split, group and content hash.

Nothing is copied: preprocess reads the originals through the manifest. data.dir is only
read. What is left out, and why, is listed in data/split/skipped.csv (imgclf.splitting).
"""
from imgclf import params as params_lib
from imgclf.errors import run_stage
from imgclf.labels import describe_layout
from imgclf.splitting import split_dataset

OUTPUT = "data/split"


def main():
    params = params_lib.load()
    data, split = params["data"], params["split"]
    ratios = (split["train"], split["val"], split["test"]) if split["test"] else (
        split["train"], split["val"])
    counts, skipped = split_dataset(data["dir"], OUTPUT, ratios, params["seed"], data["labels"],
                                    params["task"], data["label_separator"], data["max_bad_rows"],
                                    data["exclude"])
    layout = "a CSV of labels" if data["labels"] else describe_layout(data["dir"])
    source = data["labels"] or data["dir"]
    return (f"split: {source} ({layout}) -> {OUTPUT}/manifest.csv: {counts}; "
            f"{len(skipped)} left out (listed in {OUTPUT}/skipped.csv)")


if __name__ == "__main__":
    run_stage(main)
