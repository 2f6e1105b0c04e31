"""Every registry entry: builds with weights=None at its minimum size, gets the
preprocessing Keras documents for it, and every form of finetune.unfreeze leaves exactly
the expected layers trainable. The biggest builds are marked heavy (python -m pytest -m heavy
runs them); every family has a light member that the default suite builds, and one that is
trained a step (the slower to train with -m slow)."""
import keras
import numpy as np
import pytest

from imgclf import backbones
from imgclf.errors import UserError
from imgclf.model import BackbonePreprocess
from imgclf.unfreeze import backbone_layers, block_names, ordered_blocks, top_layer_count, unfreeze_top

HEAVY = {"resnet152", "resnet152_v2", "nasnet_large", "efficientnet_b5", "efficientnet_b6",
         "efficientnet_b7", "efficientnet_v2_m", "efficientnet_v2_l", "convnext_base",
         "convnext_large", "convnext_xlarge"}
ENTRIES = [pytest.param(name, marks=pytest.mark.heavy) if name in HEAVY else name
           for name in backbones.REGISTRY]

# What keras.applications documents for each family's preprocess_input.
CAFFE = {"vgg16", "vgg19", "resnet50", "resnet101", "resnet152"}  # BGR, minus ImageNet means
TORCH = {"densenet121", "densenet169", "densenet201"}  # /255, then ImageNet mean and std
BUILT_IN = ("efficientnet", "convnext", "mobilenet_v3")  # the model rescales inside itself


def expected_preprocessing(name, rgb):
    if name in CAFFE:
        return rgb[..., ::-1] - np.array([103.939, 116.779, 123.68])
    if name in TORCH:
        return (rgb / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    if name.startswith(BUILT_IN):
        return rgb
    return rgb / 127.5 - 1  # "tf" mode: ResNetV2, Inception, Xception, MobileNet v1/v2, NASNet


@pytest.mark.parametrize("name", list(backbones.REGISTRY))
def test_preprocessing_is_the_documented_one(name):
    rgb = np.array([[[[255.0, 128.0, 0.0], [10.0, 200.0, 30.0]]]], dtype="float32")
    np.testing.assert_allclose(np.asarray(BackbonePreprocess(name)(rgb)),
                               expected_preprocessing(name, rgb), rtol=1e-4, atol=1e-4)


def trainable_layers(backbone):
    return [layer.name for layer in backbone_layers(backbone)
            if layer.trainable and not isinstance(layer, keras.layers.BatchNormalization)]


def expected_top(layers, count):
    return [layer.name for layer in layers[len(layers) - count:]
            if not isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("name", ENTRIES)
def test_builds_at_minimum_size_and_unfreezes_by_count_name_and_block(name):
    size = backbones.native_size(name) if name in backbones.FIXED_INPUT else backbones.min_size(name)
    backbone = backbones.build_backbone(name, "none", size)
    assert backbone(np.zeros((1, size, size, 3), "float32")).shape[-1] > 0

    layers = backbone_layers(backbone)
    blocks = block_names(name, layers)
    order = ordered_blocks(blocks)
    assert len(blocks) == len(layers) and len(order) >= 4, order
    # Blocks are contiguous runs of layers, bottom to top.
    assert [b for i, b in enumerate(blocks) if i == 0 or blocks[i - 1] != b] == order

    assert top_layer_count(name, backbone, 7) == 7
    assert top_layer_count(name, backbone, layers[-12].name) == 12
    last_two = sum(1 for b in blocks if b in order[-2:])
    assert top_layer_count(name, backbone, "blocks:2") == last_two
    assert top_layer_count(name, backbone, order[-2]) == last_two
    assert top_layer_count(name, backbone, "all") == len(layers)

    for count in (0, 7, last_two, len(layers)):
        unfreeze_top(backbone, count)
        assert trainable_layers(backbone) == expected_top(layers, count)
        assert not any(layer.trainable for layer in layers
                       if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(UserError, match=f"has {len(order)} blocks"):
        top_layer_count(name, backbone, f"blocks:{len(order) + 1}")
    with pytest.raises(UserError, match=f"neither a block nor a layer of {name}; its blocks are: {order[0]}"):
        top_layer_count(name, backbone, "no_such_layer")


FAMILY_REPRESENTATIVES = ["vgg16", "resnet50", "resnet50_v2", "inception_v3", "inception_resnet_v2",
                          "xception", "mobilenet", "mobilenet_v2", "mobilenet_v3_small",
                          "densenet121", "nasnet_mobile", "efficientnet_b0", "efficientnet_v2_b0",
                          "convnext_tiny"]
# Training a step through the others takes 13 to 53 s each on a 2-core CPU (about 280 s in
# all): they run with -m slow, these in the default suite.
QUICK_TO_TRAIN = {"vgg16", "mobilenet", "mobilenet_v2", "mobilenet_v3_small"}
TRAINED = [name if name in QUICK_TO_TRAIN else pytest.param(name, marks=pytest.mark.slow)
           for name in FAMILY_REPRESENTATIVES]


def family(name):
    module = backbones.REGISTRY[name][1]  # keras.applications module, VGG and ResNet merged
    return {"vgg19": "vgg16", "resnet": "resnet50"}.get(module, module)


def test_every_family_has_a_light_representative():
    assert {family(name) for name in FAMILY_REPRESENTATIVES if name not in HEAVY} == {
        family(name) for name in backbones.REGISTRY}


@pytest.mark.parametrize("name", TRAINED)
def test_each_family_fine_tunes_with_the_default_unfreeze_and_saves(name, tmp_path):
    """The finetune stage's path for each family: full model, the default unfreeze
    (params.yaml), one training step, and a .keras file that predicts the same after loading."""
    import yaml

    from imgclf import model as model_lib
    from imgclf import params
    from imgclf.training import compile_model

    with open("params.yaml", encoding="utf-8") as f:
        phase = params.validate(yaml.safe_load(f))["finetune"]
    phase.update(schedule="constant", warmup_epochs=0)  # one step: a warm-up's first has rate 0
    size = backbones.native_size(name) if name in backbones.FIXED_INPUT else backbones.min_size(name)
    extractor = model_lib.feature_extractor(name, "none", size)
    head = model_lib.build_head(extractor.output.shape[1:], 2, "avg", [4], 0.0)
    model = model_lib.full_model(extractor, head, ["a", "b"])
    backbone = model_lib.backbone_of(model)
    unfreeze_top(backbone, top_layer_count(name, backbone, phase["unfreeze"]))
    compile_model(model, phase, steps_per_epoch=1)
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    assert backbone.trainable_weights  # the default unfreeze reaches layers with weights
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    # One class only: with random weights some backbones output ~0 for every image, and
    # balanced labels would then cancel even the last bias's gradient.
    model.fit(images, np.eye(2)[[0, 0]], epochs=1, verbose=0)
    assert any(not np.array_equal(b, keras.ops.convert_to_numpy(w))
               for b, w in zip(before, model.trainable_weights))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               atol=1e-5)
