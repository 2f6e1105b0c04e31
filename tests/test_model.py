"""Real Keras models, weights=None, tiny inputs."""
import keras
import numpy as np
import yaml

from imgclf import model as model_lib
from imgclf import params
from imgclf.training import compile_model, set_seed
from imgclf.unfreeze import unfreeze_top


def tiny_classifier(name="mobilenet_v2", size=32, classes=("a", "b", "c"), extra=None,
                    batchnorm_inference=True):
    extra = {"alpha": 0.35} if name == "mobilenet_v2" and extra is None else extra
    extractor = model_lib.feature_extractor(name, "none", size, extra, batchnorm_inference)
    head = model_lib.build_head(extractor.output.shape[1:], len(classes), "avg", [8], 0.2)
    return model_lib.full_model(extractor, head, list(classes))


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


def finetune_phase():
    with open("params.yaml") as f:
        return params.validate(yaml.safe_load(f))["finetune"]


def fine_tune_step(train_batchnorm):
    """One fine-tuning step after unfreezing the top 6 layers: weights before and after, and
    which of them are trainable."""
    set_seed(0)
    model = tiny_classifier(batchnorm_inference=not train_batchnorm)
    backbone = model_lib.backbone_of(model)
    unfreeze_top(backbone, 6, train_batchnorm)
    compile_model(model, {**finetune_phase(), "learning_rate": 1e-2}, steps_per_epoch=1)
    before = {w.path: np.array(w) for w in model.weights}
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, np.eye(3)[np.arange(8) % 3], epochs=1, batch_size=8, verbose=0)
    after = {w.path: np.array(w) for w in model.weights}
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    return model, changed


def test_a_finetune_step_changes_unfrozen_weights_only():
    """Recompiled after unfreezing: unfrozen weights move; frozen ones, BatchNormalization
    statistics included, stay exactly as they were."""
    model, changed = fine_tune_step(train_batchnorm=False)
    backbone = model_lib.backbone_of(model)
    unfrozen_backbone = {w.path for w in backbone.trainable_weights}
    head = {w.path for w in model.get_layer("head").trainable_weights}
    assert changed == {w.path for w in model.trainable_weights}
    assert unfrozen_backbone and unfrozen_backbone <= changed and head <= changed
    assert not any("moving" in p for p in changed)


def test_train_batchnorm_lets_the_top_statistics_update():
    model, changed = fine_tune_step(train_batchnorm=True)
    assert any("moving" in p for p in changed)
    # ... only those of the unfrozen top layers
    top = {w.path for layer in model_lib.backbone_of(model).layers[-6:] for w in layer.weights}
    assert {p for p in changed if "moving" in p} <= top


def test_head_options_build_the_layers_asked_for():
    head = model_lib.build_head((3, 3, 16), 4, "flatten", [32, 8], 0.25, batchnorm=True,
                                activation="gelu")
    kinds = [type(layer).__name__ for layer in head.layers[1:]]
    assert kinds == ["Flatten"] + ["Dense", "BatchNormalization", "Activation", "Dropout"] * 2 + ["Dense"]
    assert head.get_layer("gelu_0").activation.__name__ == "gelu"
    assert head.output.shape == (None, 4)
