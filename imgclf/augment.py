"""augment.* on the fly: a random flip, rotation, zoom and shift of each image fused into one
affine resampling (bilinear, edge pixels repeated), then a random contrast.

One pass over the pixels instead of one per Keras preprocessing layer, and stateless: the
randomness comes from a seed per batch, so the same seed gives the same images anywhere.
"""
import math

GEOMETRIC = ("rotation", "zoom", "translation")


def augmentation(augment):
    """A function (float images 0-255 [n, h, w, c], seed [2] ints) -> augmented images, or
    None when every augment.* is off."""
    geometric = augment["flip"] != "none" or any(augment[key] for key in GEOMETRIC)
    if not (geometric or augment["contrast"]):
        return None
    import tensorflow as tf

    def apply(images, seed):
        geometry_seed, contrast_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if geometric:
            images = resample(images, affine_transforms(augment, tf.shape(images), geometry_seed))
        if augment["contrast"]:
            images = random_contrast(images, augment["contrast"], contrast_seed)
        return images
    return apply


def affine_transforms(augment, shape, seed):
    """Per image, the 8 numbers of the output -> input pixel mapping that
    ImageProjectiveTransformV3 takes: input = centre + R(angle) S(zoom, flips) (output -
    centre) + shift."""
    import tensorflow as tf

    count = shape[0]
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 6))

    def uniform(index, bound):
        return tf.random.stateless_uniform([count], seeds[index], -bound, bound)

    def flip(index, axis):
        if augment["flip"] not in (axis, "horizontal_and_vertical"):
            return tf.ones([count])
        return tf.where(tf.random.stateless_uniform([count], seeds[index]) < 0.5, -1.0, 1.0)

    angle = uniform(0, augment["rotation"] * 2 * math.pi)  # a fraction of a full turn
    scale = 1 + uniform(1, augment["zoom"])  # above 1 zooms out, below 1 zooms in
    shift_x = uniform(2, augment["translation"]) * width
    shift_y = uniform(3, augment["translation"]) * height
    scale_x, scale_y = scale * flip(4, "horizontal"), scale * flip(5, "vertical")
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1, b0, b1 = cos * scale_x, -sin * scale_y, sin * scale_x, cos * scale_y
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    a2 = centre_x - a0 * centre_x - a1 * centre_y + shift_x
    b2 = centre_y - b0 * centre_x - b1 * centre_y + shift_y
    zeros = tf.zeros([count])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def resample(images, transforms):
    import tensorflow as tf

    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")


def random_contrast(images, factor, seed):
    """Each image's distance from its per-channel mean scaled by a factor in [1 - factor,
    1 + factor], kept within 0-255 (as Keras' RandomContrast does)."""
    import tensorflow as tf

    count = tf.shape(images)[0]
    scale = 1 + tf.random.stateless_uniform([count, 1, 1, 1], seed, -factor, factor)
    offset = tf.reduce_mean(images, axis=(1, 2), keepdims=True) * (1 - scale)
    return tf.clip_by_value(images * scale + offset, 0.0, 255.0)  # one pass fewer than (x-m)s+m
