"""The params that depend on the backbone registry: model (one of the backbones), its
backbones.<model> constructor arguments, image_size and the input size they give.

Kept out of imgclf.params so that the data stages (sample, split, preprocess), which do not
build a model, do not depend on imgclf.backbones: adding a backbone reruns none of them.
Every stage that builds or trains a model loads params through here; the weights stage,
which runs first in every dvc repro, checks them before any image is read.
"""
from imgclf import backbones
from imgclf import params as params_lib
from imgclf.errors import UserError


def load(path="params.yaml"):
    """params_lib.load's params, the backbone-specific checks included."""
    return check(params_lib.load(path))


def validate(values):
    """params_lib.validate, the backbone-specific checks included."""
    return check(params_lib.validate(values))


def check(params):
    """params (already validated by imgclf.params), or a UserError naming the first key
    that does not fit the backbone registry."""
    params_lib.one_of(list(backbones.REGISTRY))("model", params["model"])
    for name, args in params["backbones"].items():
        params_lib.one_of(list(backbones.REGISTRY))(f"backbones.{name} (a backbone name)", name)
        allowed = backbones.extra_args(name)
        for arg in args:
            if arg not in allowed:
                raise UserError(f"params.yaml: unknown key backbones.{name}.{arg}; "
                                f"{name} accepts: {', '.join(allowed) or 'nothing'}")
    size, smallest = params["image_size"], backbones.min_size(params["model"])
    if size is not None and size < smallest:
        raise UserError(f"params.yaml: image_size is {size}; {params['model']} needs at least "
                        f"{smallest} (or null for its native {backbones.native_size(params['model'])})")
    _check_resolution(params)
    _check_imagenet_args(params)
    return params


def _check_imagenet_args(params):
    # Keras has ImageNet weights for a few values only; another fails deep inside Keras.
    if params["weights"] != "imagenet":
        return
    name = params["model"]
    for arg, value in backbone_args(params).items():
        allowed = backbones.imagenet_values(name, arg)
        if backbone_args(params).get("minimalistic") and arg == "alpha":
            allowed = (1.0,)  # Keras has minimalistic MobileNetV3 weights at alpha 1.0 only
        if allowed is not None and value not in allowed:
            params_lib.fail(f"backbones.{name}.{arg}", value, "with weights: imagenet one of: "
                  + ", ".join(map(str, allowed)) + " (any with weights: none or a file)")


def _check_resolution(params):
    # Images stored smaller than the model's input would be blown up, silently blurred.
    stored, needed = params["preprocess"]["resolution"], input_size(params)
    if stored < needed:
        where = "image_size" if params["image_size"] else f"image_size (null: {params['model']}'s native)"
        raise UserError(f"params.yaml: preprocess.resolution is {stored}, below {where} {needed}; "
                        f"set preprocess.resolution to at least {needed}, or image_size lower")


def input_size(params):
    """The model's input size: image_size, or the backbone's native size when null."""
    return params["image_size"] or backbones.native_size(params["model"])


def backbone_args(params):
    """Constructor arguments for the configured backbone (backbones.<model>, if any)."""
    return params["backbones"].get(params["model"], {})
