"""features: the frozen backbone's forward pass over the train and val images, cached in
data/features/ (imgclf.features). The train split can be passed augment.* views
features.augmented_views extra times. With weights: none nothing is cached.
"""
import os
import time

from imgclf import compute
from imgclf import features as features_lib
from imgclf import model as model_lib
from imgclf import model_params
from imgclf.augment import augmentation
from imgclf.dataset import read_split
from imgclf.errors import run_stage
from imgclf.files import replaced_when_done, write_json

SOURCE = "data/prepared"
OUTPUT = "data/features"
METRICS = "metrics/features.json"


def main():
    params = model_params.load()
    _, jit_compile = compute.apply(params["compute"])  # one device: docs/distributed.md
    compute.set_seed(params["seed"], compute.deterministic_ops(params["compute"]["deterministic"]))
    start = time.perf_counter()
    extractor = model_lib.feature_extractor(params["model"], params["weights"],
                                            model_params.input_size(params),
                                            model_params.backbone_args(params))
    splits = {split: read_split(SOURCE, split)[:2] for split in ("train", "val")}
    forward = features_lib.traced_forward(extractor, splits["train"][0].shape[1:], jit_compile)
    from_scratch = params["weights"] == "none"
    views = {"train": 1 + params["features"]["augmented_views"], "val": 1}
    if from_scratch:  # a random backbone's features carry nothing to train a head on
        views = {split: 0 for split in views}
    with replaced_when_done(OUTPUT) as tmp:
        counts = features_lib.write_cache(tmp, forward, splits, views,
                                          params["features"]["batch_size"],
                                          augmentation(params["augment"]), params["seed"],
                                          os.path.join(SOURCE, "classes.json"))
    write_json(METRICS, {"seconds": round(time.perf_counter() - start, 1)})
    if from_scratch:
        return (f"features: weights: none, so nothing is cached (random features carry no "
                f"signal); finetune trains the whole {params['model']} from scratch")
    shape = tuple(extractor.output.shape[1:])
    return (f"features: {params['model']} feature maps {shape} of {counts} images "
            f"({views['train'] - 1} augmented view(s) of train) -> {OUTPUT}/")


if __name__ == "__main__":
    run_stage(main)
