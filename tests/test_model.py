"""Real Keras models, weights=None, tiny inputs."""
import keras
import numpy as np
import pytest

from imgclf import backbones
from imgclf import model as model_lib
from imgclf.errors import UserError
from imgclf.training import compile_model, set_seed


def tiny_classifier(name="mobilenet_v2", size=32, classes=("a", "b", "c"), extra=None):
    extra = {"alpha": 0.35} if name == "mobilenet_v2" and extra is None else extra
    extractor = model_lib.feature_extractor(name, "none", size, extra)
    head = model_lib.build_head(extractor.output.shape[1:], len(classes), "avg", [8], 0.2)
    return model_lib.full_model(extractor, head, list(classes))


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "resnet101", "inception_v3", "xception",
                                  "inception_resnet_v2", "densenet121", "mobilenet_v2"])
def test_reference_backbones_build_at_their_minimum_size(name):
    size = backbones.min_size(name)
    extractor = model_lib.feature_extractor(name, "none", size)
    features = extractor(np.zeros((1, size + 7, size + 3, 3), "float32"))  # any input size
    assert features.shape[0] == 1 and features.shape[-1] > 0


@pytest.mark.parametrize("name, expected", [
    # caffe: RGB -> BGR, minus the ImageNet channel means
    ("vgg16", [0 - 103.939, 0 - 116.779, 255 - 123.68]),
    # tf: scaled to [-1, 1]
    ("mobilenet_v2", [1.0, -1.0, -1.0]),
    ("xception", [1.0, -1.0, -1.0]),
    # torch: to [0, 1], then standardised per channel
    ("densenet121", [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225]),
])
def test_each_backbone_gets_its_own_preprocessing(name, expected):
    red = np.zeros((1, 1, 1, 3), "float32")
    red[..., 0] = 255
    layer = model_lib.BackbonePreprocess(name)
    np.testing.assert_allclose(np.asarray(layer(red)).ravel(), expected, rtol=1e-4)


def test_saved_model_carries_preprocessing_and_class_names(tmp_path):
    model = tiny_classifier(classes=("cat", "dog", "fox"))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert model_lib.class_names(loaded) == ["cat", "dog", "fox"]
    images = np.random.default_rng(0).uniform(0, 255, (2, 50, 40, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               atol=1e-5)
    assert loaded.get_layer("preprocess").backbone == "mobilenet_v2"


def trainable_names(backbone):
    return [layer.name for layer in backbone.layers if layer.trainable and layer.weights]


def test_unfreeze_by_count_name_all_and_zero():
    backbone = model_lib.backbone_of(tiny_classifier())
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    is_bn = [isinstance(layer, keras.layers.BatchNormalization) for layer in layers]

    assert model_lib.unfreeze_top(backbone, 10) == 10
    expected = {layer.name for layer, bn in zip(layers[-10:], is_bn[-10:]) if not bn}
    assert {layer.name for layer in layers if layer.trainable} == expected

    assert model_lib.unfreeze_top(backbone, layers[-4].name) == 4
    assert {layer.name for layer in layers if layer.trainable} == {
        layer.name for layer, bn in zip(layers[-4:], is_bn[-4:]) if not bn}

    assert model_lib.unfreeze_top(backbone, "all") == len(layers)
    assert not any(layer.trainable for layer, bn in zip(layers, is_bn) if bn)
    assert all(layer.trainable for layer, bn in zip(layers, is_bn) if not bn)

    assert model_lib.unfreeze_top(backbone, 0) == 0
    assert not backbone.trainable_weights


def test_unfreeze_rejects_what_does_not_exist():
    backbone = model_lib.backbone_of(tiny_classifier())
    with pytest.raises(UserError, match=r"backbone has \d+ layers, so use 0 to \d+ or 'all'"):
        model_lib.unfreeze_top(backbone, 10_000)
    with pytest.raises(UserError, match=r"'block_99', which is not a layer of the backbone; its layers are: Conv1, "):
        model_lib.unfreeze_top(backbone, "block_99")


def test_a_finetune_step_changes_unfrozen_weights_only():
    """Recompiled after unfreezing: unfrozen weights move; frozen ones, BatchNormalization
    statistics included, stay exactly as they were."""
    set_seed(0)
    model = tiny_classifier()
    backbone = model_lib.backbone_of(model)
    model_lib.unfreeze_top(backbone, 6)
    compile_model(model, 1e-2)
    before = {w.path: np.array(w) for w in model.weights}
    trainable = {w.path for w in model.trainable_weights}
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(8) % 3, epochs=1, batch_size=8, verbose=0)
    after = {w.path: np.array(w) for w in model.weights}
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    unfrozen_backbone = {w.path for w in backbone.trainable_weights}
    head = {w.path for w in model.get_layer("head").trainable_weights}
    assert changed == trainable
    assert unfrozen_backbone and unfrozen_backbone <= changed and head <= changed
    assert any("moving" in path for path in before) and not any("moving" in p for p in changed)
