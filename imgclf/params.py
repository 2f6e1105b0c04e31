"""Load params.yaml and validate every value once, before any heavy work.

params.yaml holds the values; this module only knows what each key may be. What depends on
the backbone registry (the model's name, its constructor arguments, the input size) is
imgclf.model_params', so that adding a backbone reruns none of the data stages that load
params through here (sample, split, preprocess).
"""
import math
import os

import yaml

from imgclf.errors import UserError


def fail(key, value, expected):
    raise UserError(f"params.yaml: {key} is {value!r}; expected {expected}")


def integer(low, high=None):
    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (
                high is not None and value > high):
            fail(key, value, f"an integer from {low}" + (f" to {high}" if high else " up"))
        return value
    return check


def finite_number(value):
    # NaN passes every comparison test (all are false), and .inf is a YAML float too.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(low, high, low_open=False):
    def check(key, value):
        if not finite_number(value) or value > high or value < low or (low_open and value == low):
            bound = f"greater than {low}" if low_open else f"from {low}"
            fail(key, value, f"a number {bound} up to {high}")
        return float(value)
    return check


def one_of(choices):
    def check(key, value):
        if value not in choices:
            fail(key, value, "one of: " + ", ".join(map(str, choices)))
        return value
    return check


def text(key, value):
    if not isinstance(value, str) or not value:
        fail(key, value, "a non-empty string")
    return value


def optional(check):
    return lambda key, value: None if value is None else check(key, value)


def list_of(check, example):
    def check_list(key, value):
        if not isinstance(value, list):
            fail(key, value, f"a list, e.g. {example}")
        return [check(f"{key}[{i}]", item) for i, item in enumerate(value)]
    return check_list


def weights_value(key, value):
    if value in ("imagenet", "none"):
        return value
    # The files Keras' load_weights reads: .weights.h5 or legacy .h5/.hdf5, or a .keras model.
    if isinstance(value, str) and os.path.isfile(value) and value.endswith(
            (".h5", ".hdf5", ".keras")):
        return value
    fail(key, value, "imagenet, none, or the path of an existing weights file "
                      "(.weights.h5, .h5, .hdf5 or .keras)")


def unfreeze_value(key, value):
    # Block and layer names are checked against the built backbone by the finetune stage.
    if isinstance(value, str) and value:
        return value
    return integer(0)(key, value)


RUN_CACHE_BLIND = {"size", "nfiles"}  # param keys DVC 3.67's run cache ignores


def class_weight_value(key, value):
    if value in ("none", "balanced"):
        return value
    if isinstance(value, dict) and all(finite_number(w) and w > 0 for w in value.values()):
        for name in set(map(str, value)) & RUN_CACHE_BLIND:
            raise UserError(f"params.yaml: class_weight names the class {name!r}; DVC 3.67 leaves "
                            f"keys named {' or '.join(sorted(RUN_CACHE_BLIND))} out of its run "
                            "cache's key and would restore another run's models "
                            "(treeverse/dvc#10296): rename that class's folder or label")
        return {str(name): float(w) for name, w in value.items()}
    fail(key, value, "none, balanced, or a mapping of class name to a positive weight")


EXPORT_FORMATS = ["saved_model", "tflite_float32", "tflite_float16", "tflite_int8"]


def export_formats(key, value):
    formats = list_of(one_of(EXPORT_FORMATS), "[saved_model, tflite_int8]")(key, value)
    if len(set(formats)) < len(formats):
        fail(key, value, "a list without repeats of: " + ", ".join(EXPORT_FORMATS))
    return formats


def exclude_value(key, value):
    """A list of image paths, or the path of a text file inside data.dir listing them."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return value
    fail(key, value, "a list of image paths ([] for none), or the path of a text file "
         "inside data.dir with one path per line")


def backbones_value(key, value):
    # Which backbone takes which argument is checked by imgclf.model_params.
    if not isinstance(value, dict):
        fail(key, value, "a mapping of backbone name to constructor arguments")
    for name, args in value.items():
        args = args or {}
        if not isinstance(args, dict):
            fail(f"{key}.{name}", args, "a mapping of constructor arguments, e.g. {alpha: 0.35}")
        for arg in set(args) & set(BACKBONE_ARGS):  # others: model_params names them
            BACKBONE_ARGS[arg](f"{key}.{name}.{arg}", args[arg])
        value[name] = args
    return value


# What each backbone constructor argument may be (keras.applications' own limits).
BACKBONE_ARGS = {
    "alpha": number(0.0, 10.0, low_open=True),
    "depth_multiplier": integer(1, 64),
    "dropout": number(0.0, 0.95),
    "dropout_rate": number(0.0, 0.95),
    "minimalistic": one_of([False, True]),
}


fraction = number(0.0, 1.0)
batch_size = integer(1, 65536)
learning_rate = number(0.0, 1.0, low_open=True)

# The training controls shared by the transfer and finetune phases.
PHASE = {
    "epochs": integer(0),
    "batch_size": batch_size,
    "optimizer": one_of(["adam", "adamw", "sgd", "rmsprop"]),
    "learning_rate": learning_rate,
    "momentum": number(0.0, 0.999),
    "weight_decay": number(0.0, 1.0),
    "schedule": one_of(["constant", "cosine", "step"]),
    "warmup_epochs": integer(0),
    "step_every": integer(1),
    "step_factor": number(0.0, 1.0, low_open=True),
    "label_smoothing": number(0.0, 0.5),
    "clipnorm": number(0.0, 1e6),
    "patience": integer(0),
    "reduce_on_plateau": integer(0),
    "ema_epochs": number(0.0, 100.0),
}

SCHEMA = {
    "model": text,  # one of the backbones: imgclf.model_params
    "weights": weights_value,
    "image_size": optional(integer(32, 2048)),
    "seed": integer(0, 2**32 - 1),  # TensorFlow's and iterative stratification's limit
    "task": one_of(["single_label", "multi_label"]),
    "data": {"dir": text, "labels": optional(text), "label_separator": text,
             "max_bad_rows": fraction, "exclude": exclude_value},
    "sample": {"resolution": integer(8, 1024)},
    "split": {"train": fraction, "val": fraction, "test": fraction},
    "preprocess": {"resolution": integer(32, 2048), "max_unreadable": fraction},
    "augment": {
        "flip": one_of(["none", "horizontal", "vertical", "horizontal_and_vertical"]),
        "rotation": number(0.0, 0.5),
        "zoom": number(0.0, 0.9),
        "translation": number(0.0, 0.5),
        "contrast": number(0.0, 1.0),
    },
    "features": {"augmented_views": integer(0, 100), "batch_size": batch_size},
    "head": {
        "pooling": one_of(["avg", "max", "flatten"]),
        "dense": list_of(integer(1, 100_000), "[256]"),
        "dropout": number(0.0, 0.95),
        "batchnorm": one_of([False, True]),
        "activation": one_of(["relu", "gelu", "silu", "elu", "selu", "tanh", "leaky_relu"]),
    },
    "class_weight": class_weight_value,
    "transfer": {**PHASE, "epochs": integer(1)},
    "finetune": {"start": one_of(["probe", "transfer"]), "unfreeze": unfreeze_value,
                 "train_batchnorm": one_of([False, True]), **PHASE},
    "evaluate": {"batch_size": batch_size, "tta": one_of([False, True]),
                 # unknown_dir: checked where it is read (a folder absent from a queued
                 # experiment's workspace must not stop the stages that do not read it)
                 "known_kept": number(0.5, 1.0), "unknown_dir": optional(text)},
    "export": {"formats": export_formats, "representative_images": integer(1, 100_000),
               "strict": one_of([False, True])},
    "compute": {"distribute": one_of(["auto", "one_device", "mirrored", "multi_worker"]),
                "mixed_precision": one_of(["auto", True, False]),
                "xla": one_of(["auto", True, False]),
                "deterministic": one_of(["auto", True, False])},
    "backbones": backbones_value,
    "audit": {"enabled": one_of([False, True]), "folds": integer(2, 20),
              "similarity": number(0.5, 1.0), "shown": integer(0, 200)},
}


def _validate(schema, values, prefix=""):
    if not isinstance(values, dict):
        raise UserError(f"params.yaml: {prefix.rstrip('.') or 'the file'} must be a mapping")
    unknown = sorted(set(values) - set(schema))
    if unknown:
        where = f"under {prefix.rstrip('.')}" if prefix else "at the top level"
        raise UserError(f"params.yaml: unknown key {prefix}{unknown[0]}; "
                        f"valid keys {where}: {', '.join(schema)}")
    result = {}
    for key, check in schema.items():
        if key not in values:
            raise UserError(f"params.yaml: missing key {prefix}{key}")
        if isinstance(check, dict):
            result[key] = _validate(check, values[key], f"{prefix}{key}.")
        else:
            result[key] = check(prefix + key, values[key])
    return result


def validate(values):
    """The checked params, or a UserError naming the first bad key and what is allowed."""
    params = _validate(SCHEMA, values)
    split = params["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1.0) > 1e-6 or split["train"] == 0 or split["val"] == 0:
        raise UserError(f"params.yaml: split.train + split.val + split.test is {total:g}; "
                        "expected 1, with train and val above 0")
    for phase in ("transfer", "finetune"):
        _check_schedule(phase, params[phase])
    _check_inside_data_dir(params["data"], "labels", "the CSV")
    if isinstance(params["data"]["exclude"], str):
        _check_inside_data_dir(params["data"], "exclude", "the list")
    _check_data_dir(params["data"]["dir"])
    return params


def stage_outputs(pipeline="dvc.yaml"):
    """{output path: stage} of every stage in dvc.yaml (none when there is no dvc.yaml)."""
    try:
        with open(pipeline, encoding="utf-8") as f:
            stages = yaml.safe_load(f).get("stages", {})
    except FileNotFoundError:
        return {}
    outputs = {}
    for name, stage in stages.items():
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key, []):
                outputs[next(iter(out)) if isinstance(out, dict) else out] = name
    return outputs


def _check_data_dir(data_dir):
    # DVC deletes what a stage's output holds beyond dvc.lock's list: images there would be
    # lost. (The sample's folder, the default, is no output: imgclf.sample.)
    for output, stage in stage_outputs().items():
        inside = os.path.relpath(os.path.abspath(data_dir), os.path.abspath(output))
        if not inside.startswith(".."):
            raise UserError(f"params.yaml: data.dir {data_dir!r} is inside {output}, an output "
                            f"of the {stage} stage, which DVC deletes and rewrites; put your "
                            "images in a folder of their own")


def _check_inside_data_dir(data, key, what):
    # Inside data.dir, the file is part of the split stage's dependency: DVC sees it change.
    path = data[key]
    inside = path and os.path.relpath(os.path.abspath(path), os.path.abspath(data["dir"]))
    if path and inside.startswith(".."):
        raise UserError(f"params.yaml: data.{key} is {path!r}, outside data.dir "
                        f"{data['dir']!r}; put {what} inside data.dir, so DVC sees it change")


def _check_schedule(name, phase):
    if phase["warmup_epochs"] and phase["schedule"] == "step":
        raise UserError(f"params.yaml: {name}.warmup_epochs is {phase['warmup_epochs']} with "
                        f"{name}.schedule: step; warm-up works with constant or cosine")
    if phase["reduce_on_plateau"] and (phase["schedule"] != "constant" or phase["warmup_epochs"]):
        raise UserError(f"params.yaml: {name}.reduce_on_plateau needs {name}.schedule: constant "
                        f"and {name}.warmup_epochs: 0 (it changes the rate itself)")


def load(path="params.yaml"):
    """The checked params.yaml, all but the backbone-specific checks (model_params.load)."""
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"{path} not found; run the stages from the project root") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    return validate(values)
