"""probe: a logistic regression on the cached features (pooled as head.pooling pools them),
its regularisation chosen on the validation split: the baseline every run is scored against.

Writes models/probe.npz (plain arrays: the pooling, the standardisation, the coefficients;
for evaluate to score on the test split, never unpickled) and metrics/probe.json. Seconds:
it runs on the cached features. With weights: none there are no features to probe; the file
then holds no arrays.
"""
import time

from imgclf import features as features_lib
from imgclf import params as params_lib
from imgclf import probe as probe_lib
from imgclf.errors import run_stage
from imgclf.files import write_json

FEATURES = "data/features"
PROBE = "models/probe.npz"
METRICS = "metrics/probe.json"


def load_pooled(split, pooling):
    features, labels = features_lib.load(FEATURES, split)
    return probe_lib.pooled_rows(features, pooling), labels


def main():
    params = params_lib.load()
    pooling = params["head"]["pooling"]
    start = time.perf_counter()
    if not features_lib.is_cached(FEATURES):  # weights: none
        arrays, metrics = {}, {"C": 0.0, "val_accuracy": 0.0, "val_loss": 0.0}
    else:
        arrays, metrics = probe_lib.fit_arrays(load_pooled("train", pooling),
                                               load_pooled("val", pooling), pooling, params["seed"])
    probe_lib.save(PROBE, arrays)
    write_json(METRICS, {**metrics, "seconds": round(time.perf_counter() - start, 1)})
    if not arrays:
        return "probe: no cached features (weights: none), no probe"
    return (f"probe: logistic regression on {pooling}-pooled features, C {metrics['C']:g} chosen "
            f"on val: val accuracy {metrics['val_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
