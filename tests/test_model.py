"""The assembled classifier on real ImageNet weights (tests/informative.py): what it computes,
what it saves, and what a fine-tuning step may change."""
import keras
import numpy as np
import yaml

from imgclf import model as model_lib
from imgclf import params
from imgclf.compute import set_seed
from imgclf.training import compile_model
from imgclf.unfreeze import unfreeze_top
from tests.informative import (SIZE, assert_informative, pretrained_weights, separable_images,
                               trained_classifier)


def test_the_model_computes_resize_then_the_backbones_own_preprocessing(classifier):
    """The same numbers as keras.applications' documented path, done by hand."""
    images, _ = separable_images(3, 4, size=50, seed=3)
    pixels = images.astype(np.float32)
    backbone = keras.applications.MobileNetV2(include_top=False, alpha=0.35,
                                              weights=pretrained_weights(),
                                              input_shape=(None, None, 3))
    resized = keras.ops.image.resize(pixels, (SIZE, SIZE), interpolation="bilinear")
    by_hand = backbone(keras.applications.mobilenet_v2.preprocess_input(resized), training=False)
    pooled = np.asarray(keras.ops.mean(by_hand, axis=(1, 2)))
    assert pooled.std(axis=0).mean() > 0.05  # features that differ from image to image
    expected = classifier.get_layer("head")(by_hand)
    assert_informative(expected)
    np.testing.assert_allclose(np.asarray(classifier(pixels)), np.asarray(expected), atol=1e-5)


def test_saved_model_carries_preprocessing_and_class_names(classifier, tmp_path):
    path = str(tmp_path / "model.keras")
    classifier.save(path)
    loaded = keras.models.load_model(path)
    assert model_lib.class_names(loaded) == ["cat", "dog", "fox"]
    images, labels = separable_images(3, 4, size=50, seed=1)
    expected = classifier.predict(images.astype("float32"), verbose=0)
    assert_informative(expected, labels)
    np.testing.assert_allclose(loaded.predict(images.astype("float32"), verbose=0), expected,
                               atol=1e-5)
    assert loaded.get_layer("preprocess").backbone == "mobilenet_v2"


def finetune_phase():
    """params.yaml's fine-tuning settings at a constant rate: a warm-up's first step has rate 0."""
    with open("params.yaml", encoding="utf-8") as f:
        phase = params.validate(yaml.safe_load(f))["finetune"]
    return {**phase, "schedule": "constant", "warmup_epochs": 0}


def fine_tune_step(train_batchnorm, unfrozen=6):
    """One fine-tuning step of a pretrained classifier after unfreezing the top layers:
    the model, which weights changed, and its outputs in training and inference mode."""
    set_seed(0)
    model = trained_classifier(dense=[8])
    backbone = model_lib.backbone_of(model)
    unfreeze_top(backbone, unfrozen, train_batchnorm)
    compile_model(model, {**finetune_phase(), "learning_rate": 1e-2}, steps_per_epoch=1)
    before = {w.path: np.array(w) for w in model.weights}
    images, labels = separable_images(3, 4, seed=2)
    x = images.astype("float32")
    # Log-probabilities: the classifier is confident, and differences hide in the tails.
    modes = [np.log(np.maximum(np.asarray(model(x, training=mode)), 1e-30))
             for mode in (True, False)]
    model.fit(x, np.eye(3)[labels], epochs=1, batch_size=len(x), verbose=0)
    after = {w.path: np.array(w) for w in model.weights}
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    return model, changed, modes


def test_a_finetune_step_changes_unfrozen_weights_only():
    """Recompiled after unfreezing: unfrozen weights move; frozen ones, BatchNormalization
    statistics included, stay exactly as they were; and BatchNormalization normalises with
    its ImageNet statistics while training, not with the batch's."""
    model, changed, (training, inference) = fine_tune_step(train_batchnorm=False)
    backbone = model_lib.backbone_of(model)
    unfrozen_backbone = {w.path for w in backbone.trainable_weights}
    head = {w.path for w in model.get_layer("head").trainable_weights}
    assert changed == {w.path for w in model.trainable_weights}
    assert unfrozen_backbone and unfrozen_backbone <= changed and head <= changed
    # MobileNetV2's top 6 layers: block_16_depthwise_relu, block_16_project(_BN), Conv_1(_bn),
    # out_relu; their weights, less BatchNormalization's, are two kernels.
    assert unfrozen_backbone == {"block_16_project/kernel", "Conv_1/kernel"}
    assert not any("moving" in p or "gamma" in p or "beta" in p for p in changed)
    assert_informative(np.exp(inference))
    np.testing.assert_allclose(training, inference, atol=1e-3)


def test_train_batchnorm_lets_the_top_statistics_update():
    model, changed, (training, inference) = fine_tune_step(train_batchnorm=True)
    assert any("moving" in p for p in changed)
    # ... only those of the unfrozen top layers
    top = {w.path for layer in model_lib.backbone_of(model).layers[-6:] for w in layer.weights}
    assert {p for p in changed if "moving" in p} <= top
    assert np.abs(training - inference).max() > 0.1  # batch statistics while training


def test_head_options_build_the_layers_asked_for():
    head = model_lib.build_head((3, 3, 16), 4, "flatten", [32, 8], 0.25, batchnorm=True,
                                activation="gelu")
    kinds = [type(layer).__name__ for layer in head.layers[1:]]
    assert kinds == ["Flatten"] + ["Dense", "BatchNormalization", "Activation", "Dropout"] * 2 + ["Dense"]
    assert head.get_layer("gelu_0").activation.__name__ == "gelu"
    assert head.output.shape == (None, 4)
