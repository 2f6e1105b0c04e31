"""The linear probe on real backbone features (tests/informative.py): pooled as the head
pools them, regularisation chosen on validation, and the same features at evaluation as the
features stage cached."""
import glob
import os
import pickle
import re

import numpy as np
import pytest

from imgclf import probe
from imgclf.build import probe_head
from imgclf.errors import UserError
from imgclf.dataset import batches
from tests.informative import ROOT, assert_informative, pretrained_extractor, separable_images


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
    probabilities = probe.probabilities(probe.as_arrays(fitted, "avg"), test_x, 3)
    assert_informative(probabilities, test_y)
    # Shuffled training labels: the probe can learn nothing, and validation shows it.
    shuffled = np.random.default_rng(0).permutation(features["train"][1])
    _, chance = probe.fit(features["train"][0], shuffled, *features["val"], seed=0)
    assert chance["val_accuracy"] < 0.7


def test_a_class_missing_from_train_gets_a_zero_column():
    x = np.array([[0.0], [0.1], [1.0], [1.1]])
    fitted, _ = probe.fit(x, np.array([0, 0, 2, 2]), x, np.array([0, 0, 2, 2]))
    columns = probe.probabilities(probe.as_arrays(fitted, "avg"), x, 3)
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


@pytest.mark.parametrize("labels", [
    np.arange(60) % 2,                                   # binary: one row of coefficients
    np.arange(60) % 4,                                   # softmax over four classes
    (np.arange(60)[:, None] % [2, 3, 5] == 0).astype(np.uint8),  # one-vs-rest, three labels
    np.stack([np.arange(60) % 2, np.ones(60, int)], axis=1).astype(np.uint8),  # a constant label
])
def test_the_saved_arrays_give_scikit_learns_probabilities(tmp_path, labels):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)) + (np.asarray(labels).reshape(60, -1)[:, :1] * 2.0)
    fitted, _ = probe.fit(x, labels, x, labels, seed=0)
    probe.save(str(tmp_path / "probe.npz"), probe.as_arrays(fitted, "max", thresholds=[0.5]))
    loaded = probe.load(str(tmp_path / "probe.npz"))
    count = labels.shape[1] if labels.ndim == 2 else 4 if labels.max() == 3 else 2
    expected = fitted.predict_proba(x)
    np.testing.assert_allclose(probe.probabilities(loaded, x, count), expected, atol=1e-5)
    assert str(loaded["pooling"]) == "max" and loaded["thresholds"].tolist() == [0.5]


class Exploit:
    """Pickled, it runs code when loaded: what a tampered models/probe.npz from a remote or
    the run cache could hold."""
    def __reduce__(self):
        return (open, (os.environ["PROBE_EXPLOIT_MARKER"], "w"))


def test_a_probe_file_that_would_run_code_is_refused_unrun(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("PROBE_EXPLOIT_MARKER", str(marker))
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(Exploit()))
    in_npz = tmp_path / "in_npz.npz"
    np.savez(in_npz, mean=np.array([Exploit()], dtype=object))
    cut = tmp_path / "cut.npz"
    probe.save(str(tmp_path / "whole.npz"), {"mean": np.zeros(3)})  # a key missing
    cut.write_bytes((tmp_path / "whole.npz").read_bytes()[:40])  # truncated
    for path in (raw, in_npz, cut, tmp_path / "whole.npz"):
        with pytest.raises(UserError, match="not a probe file of plain arrays"):
            probe.load(str(path))
    assert not marker.exists()


def test_nothing_in_the_project_unpickles():
    sources = glob.glob(os.path.join(ROOT, "imgclf", "*.py")) + glob.glob(
        os.path.join(ROOT, "stages", "*.py"))
    for path in sources:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        loading = re.findall(r"import (?:c?pickle|joblib|dill)|from (?:pickle|joblib) |"
                             r"pickle\.loads?\(|allow_pickle=True|pd\.read_pickle", text)
        assert loading == [], path


@pytest.mark.parametrize("labels, count", [
    (np.arange(60) % 2, 2),                                   # binary: one row
    (np.arange(60) % 4 * (np.arange(60) % 4 != 2), 4),        # softmax, class 2 not in train
    ((np.arange(60)[:, None] % [2, 3, 5] == 0).astype(np.uint8), 3),  # one-vs-rest
])
def test_the_probe_as_a_keras_head_gives_its_probabilities(labels, count):
    """The standardisation folded into one Dense layer: the head's outputs are the probe's,
    on feature maps whose mean and scale are far from 0 and 1 (so that dropping either fold
    shows), for every pooling."""
    rng = np.random.default_rng(0)
    shift = np.asarray(labels).reshape(60, -1)[:, :1] * 1.5
    maps = (rng.normal(size=(60, 2, 2, 5)) + shift[:, :, None, None]) * 3.0 + 7.0
    for pooling in ("avg", "max", "flatten"):
        pooled = probe.pool(maps, pooling)
        fitted, _ = probe.fit(pooled, labels, pooled, labels, seed=0)
        arrays = probe.as_arrays(fitted, pooling)
        expected = probe.probabilities(arrays, pooled, count)
        assert expected.std(axis=0).min(initial=1.0, where=expected.max(axis=0) > 0) > 0.05
        head = probe_head(arrays, maps.shape[1:], count)
        got = head.predict(maps.astype("float32"), verbose=0)
        np.testing.assert_allclose(got, expected, atol=2e-4, err_msg=pooling)
        assert [layer.name for layer in head.layers][-1] == "predictions"


def test_lp_ft_starts_fine_tuning_from_the_probe(tmp_path):
    """finetune.start: probe gives the model whose head is the saved probe (its probabilities,
    not the trained head's); transfer, or a run with no probe, the trained-head model."""
    from imgclf.build import start_model
    from tests.informative import SIZE, pretrained_weights, trained_classifier

    transfer = trained_classifier(dense=(8,))
    images, labels = separable_images(3, 10, seed=4)
    images = images.astype(np.float32)
    maps = pretrained_extractor().predict(images, verbose=0)
    pooled = probe.pool(maps, "avg")
    fitted, _ = probe.fit(pooled, labels, pooled, labels, seed=0)
    arrays = probe.as_arrays(fitted, "avg")
    probe.save(str(tmp_path / "probe.npz"), arrays)
    params = {"model": "mobilenet_v2", "weights": pretrained_weights(), "image_size": SIZE,
              "backbones": {"mobilenet_v2": {"alpha": 0.35}}}

    def start(phase, path=str(tmp_path / "probe.npz")):
        return start_model(params, phase, transfer, path)
    model, name = start({"start": "probe"})
    assert name == "probe" and model is not transfer
    # noise, where the two heads are not both saturated and so disagree
    noise = np.random.default_rng(0).integers(0, 256, images.shape).astype(np.float32)
    got = model.predict(noise, verbose=0)
    expected = probe.probabilities(arrays, probe.pool(pretrained_extractor().predict(
        noise, verbose=0), "avg"), 3)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert np.abs(got - transfer.predict(noise, verbose=0)).max() > 0.05
    assert start({"start": "transfer"}) == (transfer, "transfer")
    probe.save(str(tmp_path / "none.npz"), {})  # weights: none
    assert start({"start": "probe"}, str(tmp_path / "none.npz")) == (transfer, "transfer")
