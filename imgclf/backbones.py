"""Registry of keras.applications backbones and building one with the right weights."""
import inspect
import os
import re
import warnings

# name -> (constructor in keras.applications, module holding its preprocess_input,
#          native input size, minimum input size)
REGISTRY = {
    "vgg16": ("VGG16", "vgg16", 224, 32),
    "vgg19": ("VGG19", "vgg19", 224, 32),
    "resnet50": ("ResNet50", "resnet50", 224, 32),
    "resnet101": ("ResNet101", "resnet", 224, 32),
    "resnet152": ("ResNet152", "resnet", 224, 32),
    "resnet50_v2": ("ResNet50V2", "resnet_v2", 224, 32),
    "resnet101_v2": ("ResNet101V2", "resnet_v2", 224, 32),
    "resnet152_v2": ("ResNet152V2", "resnet_v2", 224, 32),
    "inception_v3": ("InceptionV3", "inception_v3", 299, 75),
    "inception_resnet_v2": ("InceptionResNetV2", "inception_resnet_v2", 299, 75),
    "xception": ("Xception", "xception", 299, 71),
    "mobilenet": ("MobileNet", "mobilenet", 224, 32),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2", 224, 32),
    "mobilenet_v3_small": ("MobileNetV3Small", "mobilenet_v3", 224, 32),
    "mobilenet_v3_large": ("MobileNetV3Large", "mobilenet_v3", 224, 32),
    "densenet121": ("DenseNet121", "densenet", 224, 32),
    "densenet169": ("DenseNet169", "densenet", 224, 32),
    "densenet201": ("DenseNet201", "densenet", 224, 32),
    "nasnet_mobile": ("NASNetMobile", "nasnet", 224, 32),
    "nasnet_large": ("NASNetLarge", "nasnet", 331, 32),
    "efficientnet_b0": ("EfficientNetB0", "efficientnet", 224, 32),
    "efficientnet_b1": ("EfficientNetB1", "efficientnet", 240, 32),
    "efficientnet_b2": ("EfficientNetB2", "efficientnet", 260, 32),
    "efficientnet_b3": ("EfficientNetB3", "efficientnet", 300, 32),
    "efficientnet_b4": ("EfficientNetB4", "efficientnet", 380, 32),
    "efficientnet_b5": ("EfficientNetB5", "efficientnet", 456, 32),
    "efficientnet_b6": ("EfficientNetB6", "efficientnet", 528, 32),
    "efficientnet_b7": ("EfficientNetB7", "efficientnet", 600, 32),
    "efficientnet_v2_b0": ("EfficientNetV2B0", "efficientnet_v2", 224, 32),
    "efficientnet_v2_b1": ("EfficientNetV2B1", "efficientnet_v2", 240, 32),
    "efficientnet_v2_b2": ("EfficientNetV2B2", "efficientnet_v2", 260, 32),
    "efficientnet_v2_b3": ("EfficientNetV2B3", "efficientnet_v2", 300, 32),
    "efficientnet_v2_s": ("EfficientNetV2S", "efficientnet_v2", 384, 32),
    "efficientnet_v2_m": ("EfficientNetV2M", "efficientnet_v2", 480, 32),
    "efficientnet_v2_l": ("EfficientNetV2L", "efficientnet_v2", 480, 32),
    "convnext_tiny": ("ConvNeXtTiny", "convnext", 224, 32),
    "convnext_small": ("ConvNeXtSmall", "convnext", 224, 32),
    "convnext_base": ("ConvNeXtBase", "convnext", 224, 32),
    "convnext_large": ("ConvNeXtLarge", "convnext", 224, 32),
    "convnext_xlarge": ("ConvNeXtXLarge", "convnext", 224, 32),
}

# NASNet only loads ImageNet weights at its fixed native size; the others are fully
# convolutional and are built with a (None, None, 3) input, so the 224-pixel weight files
# load whatever image_size is (the model resizes before the backbone anyway).
FIXED_INPUT = {"nasnet_mobile", "nasnet_large"}

# Constructor arguments the pipeline sets itself; backbones.<name>.* may not override them.
MANAGED_ARGS = {"include_top", "weights", "input_tensor", "input_shape", "pooling",
                "classes", "classifier_activation", "name"}


def native_size(name):
    return REGISTRY[name][2]


def min_size(name):
    return REGISTRY[name][3]


def constructor(name):
    import keras  # imported on use: the data stages never need TensorFlow

    return getattr(keras.applications, REGISTRY[name][0])


def preprocess_input(name):
    """The backbone's own preprocess_input (caffe, tf or torch mode, or a pass-through)."""
    import keras

    return getattr(keras.applications, REGISTRY[name][1]).preprocess_input


def extra_args(name):
    """Constructor arguments a user may set under backbones.<name> (e.g. alpha)."""
    params = inspect.signature(constructor(name)).parameters
    return sorted(set(params) - MANAGED_ARGS)


def keras_cache_dir():
    """Where keras.utils.get_file looks for weights: $KERAS_HOME/models, ~/.keras/models,
    or /tmp/.keras/models when neither is writable. Keras reads KERAS_HOME at import."""
    try:
        from keras.src.backend.config import keras_home
    except ImportError:  # private in Keras 3; its documented default otherwise
        return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
    return os.path.join(keras_home(), "models")


def build_backbone(name, weights, image_size, extra=None):
    """The backbone without its top, named "backbone", with ImageNet, random or file weights.

    weights is "imagenet", "none" or a path. A missing ImageNet file that cannot be
    downloaded is an error naming the file and the way out, never random weights.
    """
    from imgclf.errors import UserError

    keras_weights = None if weights == "none" else weights
    input_shape = (image_size, image_size, 3) if name in FIXED_INPUT else (None, None, 3)
    try:
        with warnings.catch_warnings():
            # The expected "weights for input shape (224, 224) will be loaded" notice.
            warnings.filterwarnings("ignore", message=".*will be loaded as the default")
            model = constructor(name)(include_top=False, weights=keras_weights,
                                      input_shape=input_shape, **(extra or {}))
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


def describe():
    """One line per backbone: name, native and minimum input size, keras constructor."""
    lines = [f"{'name':<22} {'native':>6} {'min':>4}  keras.applications"]
    for name, (keras_name, _, native, smallest) in REGISTRY.items():
        lines.append(f"{name:<22} {native:>6} {smallest:>4}  {keras_name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
