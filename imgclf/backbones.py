"""Registry of keras.applications backbones and building one with the right weights."""
import contextlib
import os
import re
import warnings
import zipfile

# How each family's layers group into blocks, for unfreezing by block: a regular expression
# searched in each layer name and the block name made from its match. A layer that matches
# none (a generic "conv2d_7", "activation_3", a stem or a shortcut) belongs to the next block
# that matches; layers after the last match belong to the last block.
VGG_BLOCKS = (r"^(block\d+)_", r"\1")                        # block1 .. block5
RESNET_BLOCKS = (r"^(conv\d)_", r"\1")                       # conv1 .. conv5 (stages)
INCEPTION_V3_BLOCKS = (r"^(mixed\d+)$", r"\1")               # mixed0 .. mixed10 (modules)
INCEPTION_RESNET_BLOCKS = (r"^(mixed_\w+|block\d+_\d+|conv_7b)", r"\1")
XCEPTION_BLOCKS = (r"^(block\d+)_", r"\1")                   # block1 .. block14
MOBILENET_BLOCKS = (r"^conv_(?:dw|pw|pad)_(\d+)", r"block_\1")  # block_1 .. block_13
MOBILENET_V2_BLOCKS = (r"^(block_\d+)_", r"\1")              # block_1 .. block_16
MOBILENET_V3_BLOCKS = (r"^(expanded_conv(?:_\d+)?)_", r"\1")
DENSENET_BLOCKS = (r"^(conv\d)_block", r"\1")                # conv2 .. conv5 (dense blocks)
NASNET_BLOCKS = (r"(?:normal|reduction|adjust)\w*?_(stem_\d|reduce_\d+|\d+)$", r"cell_\1")
EFFICIENTNET_BLOCKS = (r"^(block\d+)[a-z]_", r"\1")           # block1 .. block7 (stages)
CONVNEXT_BLOCKS = (r"_stage_(\d+)_", r"stage_\1")             # stage_0 .. stage_3

# name -> (constructor in keras.applications, module holding its preprocess_input,
#          native input size, minimum input size, block rule)
REGISTRY = {
    "vgg16": ("VGG16", "vgg16", 224, 32, VGG_BLOCKS),
    "vgg19": ("VGG19", "vgg19", 224, 32, VGG_BLOCKS),
    "resnet50": ("ResNet50", "resnet50", 224, 32, RESNET_BLOCKS),
    "resnet101": ("ResNet101", "resnet", 224, 32, RESNET_BLOCKS),
    "resnet152": ("ResNet152", "resnet", 224, 32, RESNET_BLOCKS),
    "resnet50_v2": ("ResNet50V2", "resnet_v2", 224, 32, RESNET_BLOCKS),
    "resnet101_v2": ("ResNet101V2", "resnet_v2", 224, 32, RESNET_BLOCKS),
    "resnet152_v2": ("ResNet152V2", "resnet_v2", 224, 32, RESNET_BLOCKS),
    "inception_v3": ("InceptionV3", "inception_v3", 299, 75, INCEPTION_V3_BLOCKS),
    "inception_resnet_v2": ("InceptionResNetV2", "inception_resnet_v2", 299, 75,
                            INCEPTION_RESNET_BLOCKS),
    "xception": ("Xception", "xception", 299, 71, XCEPTION_BLOCKS),
    "mobilenet": ("MobileNet", "mobilenet", 224, 32, MOBILENET_BLOCKS),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2", 224, 32, MOBILENET_V2_BLOCKS),
    "mobilenet_v3_small": ("MobileNetV3Small", "mobilenet_v3", 224, 32, MOBILENET_V3_BLOCKS),
    "mobilenet_v3_large": ("MobileNetV3Large", "mobilenet_v3", 224, 32, MOBILENET_V3_BLOCKS),
    "densenet121": ("DenseNet121", "densenet", 224, 32, DENSENET_BLOCKS),
    "densenet169": ("DenseNet169", "densenet", 224, 32, DENSENET_BLOCKS),
    "densenet201": ("DenseNet201", "densenet", 224, 32, DENSENET_BLOCKS),
    "nasnet_mobile": ("NASNetMobile", "nasnet", 224, 32, NASNET_BLOCKS),
    "nasnet_large": ("NASNetLarge", "nasnet", 331, 32, NASNET_BLOCKS),
}
REGISTRY.update({
    f"efficientnet_b{i}": (f"EfficientNetB{i}", "efficientnet", size, 32, EFFICIENTNET_BLOCKS)
    for i, size in enumerate([224, 240, 260, 300, 380, 456, 528, 600])})
REGISTRY.update({
    f"efficientnet_v2_{v.lower()}": (f"EfficientNetV2{v}", "efficientnet_v2", size, 32,
                                     EFFICIENTNET_BLOCKS)
    for v, size in [("B0", 224), ("B1", 240), ("B2", 260), ("B3", 300), ("S", 384),
                    ("M", 480), ("L", 480)]})
REGISTRY.update({
    f"convnext_{v.lower()}": (f"ConvNeXt{v}", "convnext", 224, 32, CONVNEXT_BLOCKS)
    for v in ["Tiny", "Small", "Base", "Large", "XLarge"]})

# NASNet only loads ImageNet weights at its fixed native size; the others are fully
# convolutional and are built with a (None, None, 3) input, so the 224-pixel weight files
# load whatever image_size is (the model resizes before the backbone anyway).
FIXED_INPUT = {"nasnet_mobile", "nasnet_large"}

# Constructor arguments the pipeline sets itself; backbones.<name>.* may not override them.
# include_preprocessing too: MobileNetV3, EfficientNetV2 and ConvNeXt rescale pixels inside
# themselves and the pipeline relies on it (their preprocess_input is a pass-through).
MANAGED_ARGS = {"include_top", "weights", "input_tensor", "input_shape", "pooling",
                "classes", "classifier_activation", "name", "include_preprocessing"}

# Constructor arguments a user may set under backbones.<name>: the constructor's parameters
# less MANAGED_ARGS, written out so that validating params needs no TensorFlow import
# (tests/test_backbones.py checks them against keras.applications' signatures), each with the
# values Keras has ImageNet weights for (None: any valid value).
EXTRA_ARGS = {
    "mobilenet": {"alpha": (0.25, 0.5, 0.75, 1.0), "depth_multiplier": (1,), "dropout": None},
    "mobilenet_v2": {"alpha": (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)},
    "mobilenet_v3_small": {"alpha": (0.75, 1.0), "dropout_rate": None, "minimalistic": None},
    "mobilenet_v3_large": {"alpha": (0.75, 1.0), "dropout_rate": None, "minimalistic": None},
}


def native_size(name):
    return REGISTRY[name][2]


def min_size(name):
    return REGISTRY[name][3]


def block_rule(name):
    return REGISTRY[name][4]


def constructor(name):
    import keras  # imported on use: the data stages never need TensorFlow

    return getattr(keras.applications, REGISTRY[name][0])


def preprocess_input(name):
    """The backbone's own preprocess_input (caffe, tf or torch mode, or a pass-through)."""
    import keras

    return getattr(keras.applications, REGISTRY[name][1]).preprocess_input


def extra_args(name):
    """Constructor arguments a user may set under backbones.<name> (e.g. alpha)."""
    return list(EXTRA_ARGS.get(name, ()))


def imagenet_values(name, arg):
    """The values of backbones.<name>.<arg> that Keras has ImageNet weights for, or None."""
    return EXTRA_ARGS[name][arg]


def keras_cache_dir():
    """Where keras.utils.get_file looks for weights: $KERAS_HOME/models, ~/.keras/models,
    or /tmp/.keras/models when neither is writable. Keras reads KERAS_HOME at import."""
    try:
        from keras.src.backend.config import keras_home
    except ImportError:  # private in Keras 3; its documented default otherwise
        return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
    return os.path.join(keras_home(), "models")


def download_lock():
    """Held while Keras may download ImageNet weights: keras.utils.get_file writes straight
    to the cache's file name and checks no hash for most backbones, so a second process
    (two queue workers starting together) would read a half-written file."""
    from filelock import FileLock

    folder = keras_cache_dir()
    os.makedirs(folder, exist_ok=True)
    return FileLock(os.path.join(folder, ".imgclf-download.lock"))


def build_backbone(name, weights, image_size, extra=None):
    """The backbone without its top, named "backbone", with ImageNet, random or file weights.

    weights is "imagenet", "none" or a path. A missing ImageNet file that cannot be
    downloaded is an error naming the file and the way out, never random weights.
    """
    from imgclf.errors import UserError

    keras_weights = None if weights == "none" else weights
    input_shape = (image_size, image_size, 3) if name in FIXED_INPUT else (None, None, 3)
    lock = download_lock() if weights == "imagenet" else contextlib.nullcontext()
    try:
        with warnings.catch_warnings(), lock:
            # The expected "weights for input shape (224, 224) will be loaded" notice.
            warnings.filterwarnings("ignore", message=".*will be loaded as the default")
            model = constructor(name)(include_top=False, weights=keras_weights,
                                      input_shape=input_shape, **(extra or {}))
    except OSError as error:  # h5py: a file it cannot read
        raise UserError(unreadable_weights(name, weights, error)) from None
    except (ValueError, KeyError, zipfile.BadZipFile) as error:
        # load_weights on a file of another architecture, or not a Keras weights file at all
        if weights in ("imagenet", "none"):
            raise
        raise UserError(f"params.yaml: weights {weights!r} does not fit {name} with "
                        f"backbones.{name} {extra or {}} ({str(error).splitlines()[0]}); give "
                        "weights saved from this backbone without its top, imagenet or "
                        "none") from None
    except Exception as error:  # keras raises a bare Exception when a download fails
        url = re.search(r"URL fetch failure on (\S+): ", str(error))
        if not url:
            raise
        file_name = url.group(1).rsplit("/", 1)[-1]
        raise UserError(
            f"weights: imagenet for {name} needs {file_name}, which is not in the Keras "
            f"cache ({keras_cache_dir()}) and could not be downloaded ({url.group(1)}); "
            f"put the file there (or set KERAS_HOME to a folder whose models/ holds it), "
            f"or set weights: none in params.yaml to train from random weights") from None
    model.name = "backbone"
    return model


def unreadable_weights(name, weights, error):
    """The one line for a weights file h5py cannot read: the weights param's file, or the
    damaged file in Keras' cache (Keras checks no hash for most backbones, so a download
    cut off leaves a truncated file that every later run would trip over)."""
    reason = str(error).splitlines()[0]
    if weights != "imagenet":
        return (f"params.yaml: weights {weights!r} cannot be read as a Keras weights file "
                f"({reason}); give a complete .h5 or .weights.h5 file, imagenet or none")
    import h5py

    cache = keras_cache_dir()
    try:
        weight_files = sorted(file for file in os.listdir(cache) if file.endswith(".h5"))
    except OSError:
        weight_files = []
    damaged = []
    for file in weight_files:
        try:
            h5py.File(os.path.join(cache, file), "r").close()
        except OSError:
            damaged.append(os.path.join(cache, file))
    if not damaged:  # not a damaged file: a full disk, a cache folder that cannot be written
        return f"the ImageNet weights of {name} could not be loaded into {cache} ({reason})"
    where = damaged[0] if len(damaged) == 1 else f"one of {', '.join(damaged)}"
    return (f"the ImageNet weights of {name} in {where} cannot be read ({reason}), likely an "
            f"interrupted download: delete the file and run again to download it afresh")


def weights_record(weights):
    """What identifies the weights param's weights: the value, and for a file its size and
    SHA-256 (params.yaml holds only its path: DVC would not see a file replaced under it)."""
    import hashlib

    if weights in ("imagenet", "none"):
        return {"weights": weights}
    with open(weights, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return {"weights": weights, "bytes": os.path.getsize(weights), "sha256": digest}


def describe():
    """One line per backbone: name, native and minimum input size, keras constructor."""
    lines = [f"{'name':<22} {'native':>6} {'min':>4}  keras.applications"]
    for name, (keras_name, _, native, smallest, _) in REGISTRY.items():
        lines.append(f"{name:<22} {native:>6} {smallest:>4}  {keras_name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
