"""Grad-CAM: where in the image the backbone's last spatial feature map drove a class."""
import keras
import numpy as np


def last_spatial_layer(backbone):
    """The backbone's last layer with a height x width x channels output."""
    for layer in reversed(backbone.layers):
        if len(layer.output.shape) == 4:
            return layer.name
    raise ValueError("the backbone has no spatial layer")


def class_evidence(head):
    """Each class's logit less the mean logit: the score Grad-CAM follows. Not the
    probability, whose gradient vanishes once the model is sure (p(1 - p) -> 0), leaving
    empty maps for the images it classifies best; and not the raw logit, which a class can
    win with a negative score that the ReLU of Grad-CAM then erases (seen on a trained head:
    2 of 6 maps empty). Softmax depends only on the differences between logits."""
    predictions = head.get_layer("predictions")
    hidden = keras.Model(head.inputs, predictions.input)

    def evidence(features):
        logits = hidden(features, training=False) @ predictions.kernel + predictions.bias
        return logits - keras.ops.mean(logits, axis=-1, keepdims=True)
    return evidence


def heat_maps(model, images, classes):
    """One map per image (values 0..1, the feature map's resolution) for the given classes."""
    import tensorflow as tf

    backbone = model.get_layer("backbone")
    inner = keras.Model(backbone.inputs,
                        [backbone.get_layer(last_spatial_layer(backbone)).output, backbone.output])
    x = model.get_layer("preprocess")(model.get_layer("resize")(tf.convert_to_tensor(images, tf.float32)))
    evidence = class_evidence(model.get_layer("head"))
    with tf.GradientTape() as tape:
        feature_map, features = inner(x, training=False)
        scores = tf.gather(evidence(features), classes, batch_dims=1)
    gradients = tape.gradient(scores, feature_map)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1)).numpy()
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)
