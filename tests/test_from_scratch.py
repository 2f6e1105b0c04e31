"""weights: none is a real from-scratch baseline: the whole network trains, BatchNormalization
in training mode, and the model scores in inference mode, as evaluate sees it. Random
features are never cached as if they were features."""
import json

import numpy as np
import pytest

from imgclf import model as model_lib
from imgclf.errors import UserError
from imgclf.features import check_signal
from tests.conftest import (TINY_CLASSES, TINY_PER_CLASS, copy_project, run, stage_commands,
                            tiny_params, write_images)
from tests.informative import pretrained_extractor, separable_images


def test_random_feature_maps_are_refused_and_real_ones_pass(tmp_path):
    images, _ = separable_images(3, 4, size=128)
    images = images.astype(np.float32)
    # MobileNet-0.75 with random weights and BatchNormalization at its initial statistics:
    # its feature maps at 128 px are all but zero.
    random_features = model_lib.feature_extractor("mobilenet", None, 128, {"alpha": 0.75})
    with pytest.raises(UserError, match="carry no signal"):
        check_signal(random_features.predict(images, verbose=0), "train.npy")
    with pytest.raises(UserError, match="carry no signal"):
        check_signal(np.full((12, 2, 2, 8), 3.0, np.float16), "train.npy")  # the same for all
    check_signal(pretrained_extractor().predict(images, verbose=0), "train.npy")


@pytest.mark.slow
def test_the_pipeline_trains_the_whole_network_from_scratch(tmp_path):
    def scratch_params(values):
        tiny_params(values)
        values["weights"] = "none"
        # 60 images: small batches give enough steps; from scratch, val loss rises before it falls
        values["transfer"].update(epochs=15, batch_size=8, patience=15)

    repo = copy_project(tmp_path / "project", scratch_params)
    write_images(str(repo / "images"), TINY_CLASSES, per_class=TINY_PER_CLASS, size=64)
    output = ""
    for name, command in stage_commands(repo).items():
        if name in ("export", "plot"):
            continue
        output += run(repo, "bash", "-c", command)
    features = np.load(repo / "data" / "features" / "train.npy")
    assert features.shape[0] == 0  # nothing cached from a random backbone
    finetune = json.loads((repo / "metrics" / "finetune.json").read_text())
    assert finetune["epochs_run"] >= 5 and finetune["reverted_to_start"] == 0, finetune
    assert "every layer trained from scratch" in output
    # BatchNormalization trained in training mode: its moving statistics left their
    # initial 0 and 1 (in inference mode they would never move).
    import keras

    backbone = keras.models.load_model(repo / "models" / "model.keras").get_layer("backbone")
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(np.abs(np.asarray(norm.moving_mean)).max() > 1e-3 for norm in norms)
    metrics = json.loads((repo / "metrics" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9, metrics  # inference mode; chance is 0.33
    assert "probe_accuracy" not in metrics  # no features, no probe
    assert "audit: skipped (no cached features (weights: none))" in output
