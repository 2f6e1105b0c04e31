"""The linear probe on real backbone features (tests/informative.py): pooled as the head
pools them, regularisation chosen on validation, and the same features at evaluation as the
features stage cached."""
import numpy as np
import pytest

from imgclf import probe
from imgclf.dataset import batches
from tests.informative import assert_informative, pretrained_extractor, separable_images


@pytest.mark.parametrize("pooling, shape", [("avg", (2, 4)), ("max", (2, 4)), ("flatten", (2, 36))])
def test_pooling_is_the_heads(pooling, shape):
    maps = np.arange(2 * 3 * 3 * 4, dtype=np.float16).reshape(2, 3, 3, 4)
    pooled = probe.pool(maps, pooling)
    assert pooled.shape == shape
    if pooling == "avg":
        np.testing.assert_allclose(pooled[1], maps[1].astype(np.float32).mean(axis=(0, 1)))
    if pooling == "max":
        np.testing.assert_array_equal(pooled[0], maps[0, 2, 2])


def test_pooled_rows_read_a_memory_mapped_cache_in_chunks(tmp_path):
    maps = np.random.default_rng(0).normal(size=(10, 2, 2, 3)).astype(np.float16)
    np.save(tmp_path / "train.npy", maps)
    mapped = np.load(tmp_path / "train.npy", mmap_mode="r")
    np.testing.assert_allclose(probe.pooled_rows(mapped, "avg", rows_at_once=3),
                               probe.pool(maps, "avg"))


def test_the_probe_learns_real_features_and_picks_its_regularisation_on_val():
    extractor = pretrained_extractor()
    features = {}
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        images, labels = separable_images(3, 8, seed=seed)
        features[split] = probe.pool(extractor.predict(images.astype("float32"), verbose=0),
                                     "avg"), labels
    fitted, figures = probe.fit(*features["train"], *features["val"], seed=0)
    assert figures["C"] in probe.C_GRID and figures["val_accuracy"] == 1.0
    test_x, test_y = features["test"]
    probabilities = probe.probabilities(fitted, test_x, 3)
    assert_informative(probabilities, test_y)
    # Shuffled training labels: the probe can learn nothing, and validation shows it.
    shuffled = np.random.default_rng(0).permutation(features["train"][1])
    _, chance = probe.fit(features["train"][0], shuffled, *features["val"], seed=0)
    assert chance["val_accuracy"] < 0.7


def test_a_class_missing_from_train_gets_a_zero_column():
    x = np.array([[0.0], [0.1], [1.0], [1.1]])
    fitted, _ = probe.fit(x, np.array([0, 0, 2, 2]), x, np.array([0, 0, 2, 2]))
    columns = probe.probabilities(fitted, x, 3)
    assert columns.shape == (4, 3) and (columns[:, 1] == 0).all()
    assert columns.argmax(axis=1).tolist() == [0, 0, 2, 2]


def test_evaluation_features_equal_the_cached_ones(classifier):
    # evaluate pools the backbone of models/transfer.keras; the features stage cached the
    # feature extractor's output: the probe must see the same numbers in both.
    images, labels = separable_images(3, 4, seed=5)
    images = images.astype(np.float32)
    from_model = probe.backbone_features(classifier, batches(images, labels, 5), "avg")
    cached = probe.pool(pretrained_extractor().predict(images, verbose=0).astype(np.float16), "avg")
    np.testing.assert_allclose(from_model, cached, atol=2e-2 * np.abs(cached).max())
