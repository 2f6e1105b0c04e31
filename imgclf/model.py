"""The classifier: raw pixels -> resize -> backbone's preprocess_input -> backbone -> head.

Preprocessing and class names live inside the saved model, so a .keras file is all that
prediction needs (with this package imported, for the two small layers below).
"""
import keras

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
    """Identity on the probabilities; carries the class names of their columns."""

    def __init__(self, class_names, **kwargs):
        # float32 whatever the global policy: under mixed_float16 it would cast the
        # softmax back to float16, and losses, early stopping and metrics would use that.
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.class_names = list(class_names)

    def call(self, probabilities):
        return probabilities

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names}


def class_names(model):
    return model.get_layer("class_names").class_names


def feature_extractor(model_name, weights, image_size, extra_args=None, batchnorm_inference=True):
    """Pixels of any size (0-255) -> the backbone's feature map, backbone frozen and with
    BatchNormalization in inference mode. The same path the full model uses."""
    backbone = backbones.build_backbone(model_name, weights, image_size, extra_args)
    backbone.trainable = False
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Resizing(image_size, image_size, name="resize")(inputs)
    x = BackbonePreprocess(model_name, name="preprocess")(x)
    # training=False keeps BatchNormalization in inference mode even once layers are
    # unfrozen for fine-tuning, so small batches cannot wreck its learned statistics
    # (finetune.train_batchnorm: true lets them update, on purpose).
    features = backbone(x, training=False) if batchnorm_inference else backbone(x)
    return keras.Model(inputs, features, name="feature_extractor")


def build_head(feature_shape, class_count, pooling, dense, dropout, batchnorm=False,
               activation="relu"):
    """The new classifier on the backbone's feature map: pooling, then per hidden layer
    Dense -> [BatchNormalization] -> activation -> [Dropout], then softmax."""
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
    outputs = keras.layers.Dense(class_count, activation="softmax", dtype="float32",
                                 name="predictions")(x)
    return keras.Model(inputs, outputs, name="head")


def full_model(extractor, head, names):
    """The whole classifier: feature extractor, trained head, class names."""
    probabilities = head(extractor.output)
    outputs = ClassNames(names, name="class_names")(probabilities)
    return keras.Model(extractor.input, outputs, name="classifier")


def backbone_of(model):
    return model.get_layer("backbone")
