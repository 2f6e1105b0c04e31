"""preprocess: decode every image the split's manifest names, from data.dir, once, as RGB at
preprocess.resolution, into uint8 arrays (data/prepared/<split>/images.npy) that tf.data
reads batch by batch (imgclf.prepare). A file changed since the split stops the stage.

Backbone-independent on purpose: the model resizes to its own input size and applies its
own preprocess_input, so changing the backbone never reruns this stage.
"""
from imgclf import params as params_lib
from imgclf.errors import run_stage
from imgclf.prepare import prepare

SOURCE = "data/split"
OUTPUT = "data/prepared"


def main():
    params = params_lib.load()
    size = params["preprocess"]["resolution"]
    multi_label = params["task"] == "multi_label"
    counts, skipped = prepare(SOURCE, params["data"]["dir"], OUTPUT, size,
                              params["preprocess"]["max_unreadable"],
                              params["data"]["label_separator"] if multi_label else None)
    return (f"preprocess: {counts} images at {size}x{size} -> {OUTPUT}/; {len(skipped)} "
            f"unreadable or duplicate file(s) left out (listed in {OUTPUT}/skipped.csv)")


if __name__ == "__main__":
    run_stage(main)
