"""Test models whose outputs can tell right from wrong.

A random-weight backbone at a test's small input size is no such model: its feature maps
shrink layer after layer (MobileNet's end near 1e-12 at 32 px), so every image gets the same
prediction and a test that compares predictions checks nothing. Calibrating its
BatchNormalization statistics was tried: the features then vary, but chaotically (a logistic
regression on them scored 0.5 on held-out images of three plain colours). So the tests that
compare outputs use the real ImageNet weights of MobileNetV2-0.35 from ../shared (2 MB,
read in place through the weights: <path> form of the param) at 64 px, where its features
separate `separable_images` perfectly. Without ../shared they come from Keras' cache or
download; where neither works the tests skip, saying why.
"""
import os

import keras
import numpy as np
import pytest

from imgclf import model as model_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SHARED_WEIGHTS = os.path.join(SHARED, "keras", "models")
MOBILENET_V2_035 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
SIZE = 64  # px: the smallest at which MobileNetV2-0.35's ImageNet features separate them
CLASSES = ("cat", "dog", "fox")


KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


def imagenet_file(file_name, family):
    """The path of a Keras ImageNet weights file: from ../shared, else from Keras' own cache
    or download (as on a user's CI runner); a skip saying why where neither has it."""
    path = os.path.join(SHARED_WEIGHTS, file_name)
    if os.path.exists(path):
        return path
    try:
        return keras.utils.get_file(file_name, KERAS_WEIGHTS_URL + f"{family}/{file_name}",
                                    cache_subdir="models")
    except Exception as error:  # Keras raises a bare Exception when the download fails
        pytest.skip(f"{path} is absent and Keras could not download it ({error}): "
                    "no real ImageNet weights on this machine")


def pretrained_weights():
    """The path of MobileNetV2-0.35's ImageNet weights, or a skip saying why there are none."""
    return imagenet_file(MOBILENET_V2_035, "mobilenet_v2")


def separable_images(class_count, per_class, size=40, seed=0):
    """uint8 images [n, size, size, 3] and labels: each class has its own bright colour
    channel and a white stripe at its own height, on random dark noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(class_count):
        for _ in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            pixels[:, :, label % 3] += 150
            row = label * 4 % size
            pixels[row:row + 6, :, :] = 255
            images.append(pixels)
            labels.append(label)
    return np.stack(images), np.asarray(labels)


def pretrained_extractor(size=SIZE):
    return model_lib.feature_extractor("mobilenet_v2", pretrained_weights(), size,
                                       {"alpha": 0.35})


def trained_classifier(classes=CLASSES, size=SIZE, dense=(), dropout=0.0, seed=0):
    """A full classifier (MobileNetV2-0.35 with ImageNet weights, a head trained on its
    features) that classifies separable_images(len(classes), ...) with varied outputs."""
    keras.utils.set_random_seed(seed)
    images, labels = separable_images(len(classes), 16, seed=seed)
    extractor = pretrained_extractor(size)
    features = extractor.predict(images.astype(np.float32), verbose=0)
    head = model_lib.build_head(features.shape[1:], len(classes), "avg", list(dense), dropout)
    head.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    head.fit(features, labels, epochs=40, batch_size=len(labels), verbose=0)
    return model_lib.full_model(extractor, head, list(classes))


def assert_informative(probabilities, labels=None):
    """Outputs that can tell right from wrong: each class's probability varies across the
    images and more than one class comes out on top; with labels, most are right."""
    probabilities = np.asarray(probabilities)
    assert probabilities.std(axis=0).min() > 0.05, probabilities.std(axis=0)
    assert len(set(probabilities.argmax(axis=1).tolist())) > 1, probabilities
    if labels is not None:
        accuracy = float(np.mean(probabilities.argmax(axis=1) == np.asarray(labels)))
        assert accuracy >= 0.9, accuracy
