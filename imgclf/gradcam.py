"""Grad-CAM: where in the image the backbone's last spatial feature map drove a class."""
import keras
import numpy as np


def last_spatial_layer(backbone):
    """The backbone's last layer with a height x width x channels output."""
    for layer in reversed(backbone.layers):
        if len(layer.output.shape) == 4:
            return layer.name
    raise ValueError("the backbone has no spatial layer")


def heat_maps(model, images, classes):
    """One map per image (values 0..1, the feature map's resolution) for the given classes."""
    import tensorflow as tf

    backbone = model.get_layer("backbone")
    inner = keras.Model(backbone.inputs,
                        [backbone.get_layer(last_spatial_layer(backbone)).output, backbone.output])
    x = model.get_layer("preprocess")(model.get_layer("resize")(tf.convert_to_tensor(images, tf.float32)))
    with tf.GradientTape() as tape:
        feature_map, features = inner(x, training=False)
        scores = tf.gather(model.get_layer("head")(features, training=False), classes, batch_dims=1)
    gradients = tape.gradient(scores, feature_map)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1)).numpy()
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)
