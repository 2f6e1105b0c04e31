import copy
import re

import pytest
import yaml

from imgclf import backbones, model_params
from imgclf.errors import UserError


@pytest.fixture
def values():
    with open("params.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def check_error(values, pattern):
    with pytest.raises(UserError) as error:
        model_params.validate(values)
    message = str(error.value)
    assert "\n" not in message
    assert re.search(pattern, message), message


def test_project_params_are_valid(values):
    checked = model_params.validate(copy.deepcopy(values))
    assert checked["model"] in backbones.REGISTRY
    assert model_params.input_size(checked) == checked["image_size"]


def test_every_backbone_has_an_entry_for_dvc(values):
    # dvc.yaml depends on backbones.${model}; DVC fails on a missing key.
    assert set(values["backbones"]) == set(backbones.REGISTRY)


def test_unknown_key_is_named_with_the_valid_ones(values):
    values["finetune"]["unfrezee"] = 3
    check_error(values, r"unknown key finetune\.unfrezee; valid keys under finetune: start, unfreeze, train_batchnorm, epochs")


def test_missing_key(values):
    del values["transfer"]["epochs"]
    check_error(values, r"missing key transfer\.epochs")


def test_unknown_model_lists_the_valid_names(values):
    values["model"] = "resnet9000"
    check_error(values, r"model is 'resnet9000'; expected one of: vgg16, vgg19, .*mobilenet_v2")


@pytest.mark.parametrize("key, value, pattern", [
    ("transfer.epochs", "ten", r"transfer\.epochs is 'ten'; expected an integer from 1"),
    ("transfer.epochs", True, r"transfer\.epochs is True"),
    ("finetune.learning_rate", 0, r"finetune\.learning_rate is 0; expected a number greater than 0"),
    ("head.dropout", 1.5, r"head\.dropout is 1\.5; expected a number from 0\.0 up to 0\.95"),
    ("head.pooling", "mean", r"head\.pooling is 'mean'; expected one of: avg, max, flatten"),
    ("head.dense", 256, r"head\.dense is 256; expected a list"),
    ("weights", "missing.h5", r"weights is 'missing\.h5'; expected imagenet, none, or the path"),
    ("image_size", 16, r"image_size is 16; expected an integer from 32"),
    ("finetune.unfreeze", -1, r"finetune\.unfreeze is -1"),
    ("finetune.optimizer", "adagrad", r"finetune\.optimizer is 'adagrad'; expected one of: adam, adamw, sgd, rmsprop"),
    ("transfer.schedule", "linear", r"transfer\.schedule is 'linear'; expected one of: constant, cosine, step"),
    ("class_weight", "auto", r"class_weight is 'auto'; expected none, balanced, or a mapping"),
    ("class_weight", {"cat": -1}, r"class_weight is \{'cat': -1\}"),
    ("head.activation", "sigmoidal", r"head\.activation is 'sigmoidal'; expected one of: relu"),
    ("task", "multilabel", r"task is 'multilabel'; expected one of: single_label, multi_label"),
    ("data.max_bad_rows", 2, r"data\.max_bad_rows is 2; expected a number from 0.0 up to 1.0"),
    ("data.labels", "labels.csv", r"data\.labels is 'labels.csv', outside data\.dir 'data/sample'; "
                                  r"put the CSV inside data\.dir"),
    ("data.exclude", "exclude.txt", r"data\.exclude is 'exclude.txt', outside data\.dir "
                                    r"'data/sample'; put the list inside data\.dir"),
    ("data.exclude", [3], r"data\.exclude is \[3\]; expected a list of image paths"),
    ("audit.similarity", 1.5, r"audit\.similarity is 1\.5; expected a number from 0\.5 up to 1\.0"),
    ("audit.folds", 1, r"audit\.folds is 1; expected an integer from 2 to 20"),
    ("audit.enabled", "yes", r"audit\.enabled is 'yes'; expected one of: False, True"),
    ("evaluate.known_kept", 0.3, r"evaluate\.known_kept is 0\.3; expected a number from 0\.5 up to 1\.0"),
    ("evaluate.unknown_dir", 3, r"evaluate\.unknown_dir is 3; expected a non-empty string"),
])
def test_bad_values_name_key_and_what_is_allowed(values, key, value, pattern):
    section, _, name = key.rpartition(".")
    (values[section] if section else values)[name] = value
    check_error(values, pattern)


def test_split_must_sum_to_one(values):
    values["split"] = {"train": 0.7, "val": 0.2, "test": 0.2}
    check_error(values, r"split\.train \+ split\.val \+ split\.test is 1\.1")


def test_image_size_below_the_backbone_minimum(values):
    values["model"], values["image_size"] = "inception_v3", 64
    check_error(values, r"image_size is 64; inception_v3 needs at least 75")


def test_backbone_arguments_are_checked_against_the_constructor(values):
    values["backbones"]["mobilenet_v2"] = {"alhpa": 0.35}
    check_error(values, r"unknown key backbones\.mobilenet_v2\.alhpa; mobilenet_v2 accepts: alpha")


def test_unreadable_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="is not valid YAML"):
        model_params.load(str(path))


def keys_at_any_depth(mapping, prefix=""):
    for key, value in mapping.items():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from keys_at_any_depth(value, f"{prefix}{key}.")


def test_no_param_is_named_size_or_nfiles(values):
    # DVC 3.67 leaves keys named size or nfiles out of the run-cache key
    # (treeverse/dvc#10296): changing one would restore stale outputs.
    bad = [key for key in keys_at_any_depth(values) if key.split(".")[-1] in ("size", "nfiles")]
    assert not bad, f"params.yaml keys that DVC's run cache ignores: {bad}"


@pytest.mark.parametrize("name", ["size", "nfiles"])
def test_a_class_weight_of_a_class_dvcs_run_cache_ignores_is_refused(values, name):
    # class_weight: {size: 2.0} and {size: 5.0} would share one run-cache key.
    values["class_weight"] = {"cat": 1.0, name: 2.0}
    check_error(values, rf"class_weight names the class '{name}'; DVC 3\.67 leaves keys named "
                        r"nfiles or size out of its run cache's key .*treeverse/dvc#10296")
    values["class_weight"] = {"cat": 1.0, "sizes": 2.0}
    model_params.validate(values)


def test_images_stored_below_the_model_input_are_refused(values):
    values["image_size"], values["preprocess"]["resolution"] = 224, 128
    check_error(values, r"preprocess\.resolution is 128, below image_size 224; set preprocess\."
                        r"resolution to at least 224")


def test_a_native_input_above_the_stored_images_is_refused(values):
    values["image_size"], values["preprocess"]["resolution"] = None, 128
    check_error(values, r"preprocess\.resolution is 128, below image_size \(null: mobilenet's "
                        r"native\) 224")


def test_the_readmes_own_data_command_passes_the_resolution_check(values):
    with open("README.md", encoding="utf-8") as f:
        command = re.search(r"dvc exp run -S data\.dir=my_images(.*?)\n\s*\n", f.read() + "\n\n", re.S)
    for name, value in re.findall(r"-S ([\w.]+)=(\S+)", command.group(0)):
        section, _, key = name.rpartition(".")
        target = values[section] if section else values
        target[key] = yaml.safe_load(value)
    values["data"]["dir"] = "my_images"
    model_params.validate(values)


def numeric_keys(values, prefix=""):
    """Every dotted key of params.yaml whose value is a number (backbone arguments included)."""
    for key, value in values.items():
        if isinstance(value, dict):
            yield from numeric_keys(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield prefix + key


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_in_every_number_param(values, bad):
    keys = list(numeric_keys(values)) + ["class_weight.cat"]
    assert len(keys) > 50 and "split.train" in keys and "backbones.mobilenet.alpha" in keys
    for key in keys:
        changed = copy.deepcopy(values)
        *path, last = key.split(".")
        node = changed
        for name in path:
            if not isinstance(node.get(name), dict):
                node[name] = {}  # class_weight: none -> {cat: bad}
            node = node[name]
        node[last] = bad
        named = "class_weight" if key == "class_weight.cat" else key
        check_error(changed, rf"^params\.yaml: {re.escape(named)} is ")
