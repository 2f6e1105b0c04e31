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
                 thresholds=None, temperature=None, **kwargs):
        # float32 whatever the global policy: under mixed_float16 it would cast the
        # softmax back to float16, and losses, early stopping and metrics would use that.
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.class_names = list(class_names)
        self.prepared_resolution = prepared_resolution
        self.multi_label = multi_label
        self.thresholds = thresholds
        self.temperature = temperature  # a record: scaling is folded into the head (calibrate)

    def call(self, probabilities):
        return probabilities

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names,
                "prepared_resolution": self.prepared_resolution,
                "multi_label": self.multi_label, "thresholds": self.thresholds,
                "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="imgclf")
class UnknownScore(keras.layers.Layer):
    """Pooled backbone features -> (score, unknown): the cosine distance to the nearest of
    the reference train images' features (deep nearest neighbours, Sun et al., ICML 2022;
    docs/calibration.md says why not Mahalanobis), and 1 where it is above the threshold
    chosen on val (evaluate.known_kept), else 0. Weights set by the calibrate stage."""

    def __init__(self, feature_count, reference_count, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.feature_count = feature_count
        self.reference_count = reference_count

    def build(self, input_shape):
        # Unit-length feature vectors of the reference images, one column each.
        self.references = self.add_weight(shape=(self.feature_count, self.reference_count),
                                          initializer="zeros", trainable=False, name="references")
        self.threshold = self.add_weight(shape=(1,), initializer="zeros", trainable=False,
                                         name="threshold")

    def call(self, features):
        ops = keras.ops
        features = ops.cast(features, "float32")
        length = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))
        similarity = ops.matmul(features / ops.maximum(length, 1e-12), self.references)
        score = 1.0 - ops.max(similarity, axis=-1, keepdims=True)
        return score, ops.cast(ops.greater(score, self.threshold), "float32")

    def get_config(self):
        return {**super().get_config(), "feature_count": self.feature_count,
                "reference_count": self.reference_count}


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


def outputs(model, images, tta=False):
    """{"probabilities": ...} of images (an array, or a tf.data dataset of (images, labels)
    batches), and for a calibrated model (the calibrate stage's) "unknown_score" and
    "unknown" (0/1). With tta (evaluate.tta, predict --tta) each is averaged with the mirror
    images' (test-time augmentation), and unknown decided on the averaged score."""
    first = as_outputs(model.predict(images, verbose=0))
    if not tta:
        return first
    if isinstance(images, np.ndarray):
        mirrored = images[:, :, ::-1]
    else:
        mirrored = images.map(lambda x, y: (x[:, :, ::-1, :], y))
    second = as_outputs(model.predict(mirrored, verbose=0))
    averaged = {key: (first[key] + second[key]) / 2 for key in first}
    if "unknown" in averaged:
        averaged["unknown"] = unknown_decisions(model, averaged["unknown_score"])
    return averaged


def as_outputs(result):
    """{"probabilities": ...[, "unknown_score", "unknown"]} as arrays, from a model's, a
    SavedModel's or a LiteRT signature's outputs (one unnamed output: the probabilities)."""
    if isinstance(result, dict) and "probabilities" not in result:
        (result,) = result.values()
    if not isinstance(result, dict):
        result = {"probabilities": result}
    return {key: np.asarray(value) for key, value in result.items()}


def probabilities(model, images, tta=False):
    """The model's probabilities of images (outputs' "probabilities")."""
    return outputs(model, images, tta)["probabilities"]


def unknown_threshold(model):
    return float(model.get_layer("unknown_score").threshold.numpy()[0])


def unknown_decisions(model, scores):
    """0/1 per image: 1 where the unknown score is above the model's threshold, as the
    model's own "unknown" output decides."""
    return (np.asarray(scores) > unknown_threshold(model)).astype(np.float32)


def temperature(model):
    """The temperature folded into the model's head (1 before the calibrate stage): a number,
    or one per label (multi_label)."""
    return model.get_layer("class_names").temperature or 1.0


def set_temperature(model, value):
    """Divide the head's logits by value (a number, or one per label for multi_label): the
    last Dense layer's kernel and bias, so every export format gives the scaled
    probabilities. A multi_label model's thresholds move with it, so decisions stay the same."""
    value = np.asarray(value, np.float64)
    layer = model.get_layer("head").get_layer("predictions")
    kernel, bias = layer.get_weights()
    layer.set_weights([(kernel / value).astype(kernel.dtype), (bias / value).astype(bias.dtype)])
    names = model.get_layer("class_names")
    names.temperature = value.tolist()
    if names.thresholds:  # sigmoid(z / T) >= t'  <=>  sigmoid(z) >= t; in float64: t' near 1
        old = np.asarray(names.thresholds, np.float64)
        set_thresholds(model, 1 / (1 + np.exp(-(np.log(old) - np.log1p(-old)) / value)))


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


def classifier_outputs(model, resized, pool=None, detector=None):
    """The model's outputs from images at its input size, through its own layers: the
    probabilities, and with an unknown detector (pooling, UnknownScore) its score and decision."""
    features = backbone_of(model)(model.get_layer("preprocess")(resized), training=False)
    probabilities = model.get_layer("class_names")(model.get_layer("head")(features))
    if detector is None:
        return probabilities
    score, unknown = detector(pool(features))
    return {"probabilities": probabilities, "unknown_score": score, "unknown": unknown}


def unknown_detector(model):
    """(pooling, UnknownScore) of a calibrated model; (None, None) before calibration."""
    if not any(layer.name == "unknown_score" for layer in model.layers):
        return None, None
    return model.get_layer("unknown_pool"), model.get_layer("unknown_score")


def with_unknown_score(model, references, threshold):
    """The classifier with an UnknownScore on its backbone's average-pooled features:
    references are the reference images' unit-length feature vectors (one row each)."""
    inputs = keras.Input((None, None, 3), name="image")
    pool = keras.layers.GlobalAveragePooling2D(name="unknown_pool")
    detector = UnknownScore(references.shape[1], len(references), name="unknown_score")
    outputs = classifier_outputs(model, model.get_layer("resize")(inputs), pool, detector)
    detector.set_weights([np.asarray(references, np.float32).T,
                          np.asarray([threshold], np.float32)])
    return keras.Model(inputs, outputs, name="classifier")


def fixed_size_model(model):
    """The classifier for inputs already at its input size, without the resize layer:
    TensorFlow Lite has no antialiased resize op, and its callers resize first."""
    size = input_resolution(model)
    inputs = keras.Input((size, size, 3), name="image")
    outputs = classifier_outputs(model, inputs, *unknown_detector(model))
    return keras.Model(inputs, outputs, name="classifier")


def backbone_of(model):
    return model.get_layer("backbone")
