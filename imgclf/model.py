"""The classifier: raw pixels -> resize -> backbone's preprocess_input -> backbone -> head.

Preprocessing and class names live inside the saved model, so a .keras file is all that
prediction needs (with this package imported, for the two small layers below).
"""
import keras
import numpy as np

from imgclf import backbones


@keras.saving.register_keras_serializable(package="imgclf")
class BackbonePreprocess(keras.layers.Layer):
    """The named backbone's own preprocess_input, as a layer that saves with the model."""

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, images):
        return backbones.preprocess_input(self.backbone)(images)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


@keras.saving.register_keras_serializable(package="imgclf")
class ClassNames(keras.layers.Layer):
    """Identity on the probabilities; carries the class names of their columns, the
    resolution the training images were prepared at (preprocess.resolution) and, for
    task: multi_label, each label's decision threshold (chosen on val by the finetune stage)."""

    def __init__(self, class_names, prepared_resolution=None, multi_label=False,
                 thresholds=None, **kwargs):
        # float32 whatever the global policy: under mixed_float16 it would cast the
        # softmax back to float16, and losses, early stopping and metrics would use that.
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.class_names = list(class_names)
        self.prepared_resolution = prepared_resolution
        self.multi_label = multi_label
        self.thresholds = thresholds

    def call(self, probabilities):
        return probabilities

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names,
                "prepared_resolution": self.prepared_resolution,
                "multi_label": self.multi_label, "thresholds": self.thresholds}


@keras.saving.register_keras_serializable(package="imgclf")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy with a weight on each label's positive term (class_weight with
    task: multi_label); Keras' own has no per-label weight, and fit's class_weight assumes
    one class per example. Registered here, beside the model, so every loader knows it."""

    def __init__(self, positive_weights, label_smoothing=0.0, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.positive_weights = [float(w) for w in positive_weights]
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        ops = keras.ops
        smoothing = self.label_smoothing
        y_true = ops.cast(y_true, "float32") * (1 - smoothing) + 0.5 * smoothing
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1 - 1e-7)
        weights = ops.convert_to_tensor(self.positive_weights, "float32")
        terms = weights * y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p)
        return -ops.mean(terms, axis=-1)

    def get_config(self):
        return {**super().get_config(), "positive_weights": self.positive_weights,
                "label_smoothing": self.label_smoothing}


def class_names(model):
    return model.get_layer("class_names").class_names


def is_multi_label(model):
    return model.get_layer("class_names").multi_label


def thresholds(model):
    """Each label's threshold (multi_label), 0.5 where none was chosen yet."""
    chosen = model.get_layer("class_names").thresholds
    return np.asarray(chosen if chosen else [0.5] * len(class_names(model)), np.float32)


def label_thresholds(model):
    """The thresholds of a multi_label model; None for single_label (argmax decides)."""
    return thresholds(model) if is_multi_label(model) else None


def set_thresholds(model, values):
    model.get_layer("class_names").thresholds = [float(value) for value in values]


def load(path):
    """A model this project saved; its own layers are defined in this module, so loading
    through here has them registered."""
    return keras.models.load_model(path)


def probabilities(model, images, tta=False):
    """The model's probabilities of images: an array, or a tf.data dataset of (images,
    labels) batches. With tta (evaluate.tta, predict --tta), averaged with those of the
    mirror images (test-time augmentation)."""
    first = model.predict(images, verbose=0)
    if not tta:
        return first
    if isinstance(images, np.ndarray):
        mirrored = images[:, :, ::-1]
    else:
        mirrored = images.map(lambda x, y: (x[:, :, ::-1, :], y))
    return (first + model.predict(mirrored, verbose=0)) / 2


def input_resolution(model):
    """The backbone's input size, which the model resizes every image to."""
    return model.get_layer("resize").height


def prepared_resolution(model):
    """The size training and evaluation images were stored at: decoding new images at it
    reproduces what evaluate saw. The model's input size for models that do not record it."""
    return model.get_layer("class_names").prepared_resolution or input_resolution(model)


def feature_extractor(model_name, weights, image_size, extra_args=None):
    """Pixels of any size (0-255) -> the backbone's feature map, backbone frozen and with
    BatchNormalization in inference mode. The same path the full model uses."""
    backbone = backbones.build_backbone(model_name, weights, image_size, extra_args)
    backbone.trainable = False
    inputs = keras.Input((None, None, 3), name="image")
    # Antialiased, as PIL shrinks images in preprocess: a full-size photo given to the
    # model is reduced the way training images were, not sampled into aliasing.
    x = keras.layers.Resizing(image_size, image_size, antialias=True, name="resize")(inputs)
    x = BackbonePreprocess(model_name, name="preprocess")(x)
    # In Keras 3, fit's training=True overrides the training=False recorded here (checked:
    # moving statistics update either way). What keeps BatchNormalization in inference
    # mode while fine-tuning is that unfreeze_top leaves it non-trainable, and a frozen
    # BatchNormalization layer always normalises with its learned statistics
    # (finetune.train_batchnorm: true lets them update, on purpose).
    features = backbone(x, training=False)
    return keras.Model(inputs, features, name="feature_extractor")


def build_head(feature_shape, class_count, pooling, dense, dropout, batchnorm=False,
               activation="relu", multi_label=False):
    """The new classifier on the backbone's feature map: pooling, then per hidden layer
    Dense -> [BatchNormalization] -> activation -> [Dropout], then softmax (one sigmoid per
    label for multi_label)."""
    inputs = keras.Input(feature_shape, name="features")
    pool = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D,
            "flatten": keras.layers.Flatten}[pooling]
    x = pool(name="pool")(inputs)
    for i, units in enumerate(dense):
        x = keras.layers.Dense(units, use_bias=not batchnorm, name=f"dense_{i}")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(name=f"batchnorm_{i}")(x)
        x = keras.layers.Activation(activation, name=f"{activation}_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(class_count, activation="sigmoid" if multi_label else "softmax",
                                 dtype="float32",
                                 name="predictions")(x)
    return keras.Model(inputs, outputs, name="head")


def full_model(extractor, head, names, prepared_resolution=None, multi_label=False):
    """The whole classifier: feature extractor, trained head, class names (and the
    resolution images were prepared at, for prediction to decode them the same way)."""
    probabilities = head(extractor.output)
    outputs = ClassNames(names, prepared_resolution, multi_label, name="class_names")(probabilities)
    return keras.Model(extractor.input, outputs, name="classifier")


def fixed_size_model(model):
    """The classifier for inputs already at its input size, without the resize layer:
    TensorFlow Lite has no antialiased resize op, and its callers resize first."""
    size = input_resolution(model)
    inputs = keras.Input((size, size, 3), name="image")
    x = model.get_layer("preprocess")(inputs)
    x = backbone_of(model)(x, training=False)
    x = model.get_layer("head")(x)
    return keras.Model(inputs, model.get_layer("class_names")(x), name="classifier")


def backbone_of(model):
    return model.get_layer("backbone")
