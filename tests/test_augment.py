"""The fused augmentation: each param does what it says, seeds make it reproducible, and the
batches of a new epoch are augmented anew."""
import numpy as np

from imgclf.augment import augmentation
from imgclf.dataset import training_batches

OFF = {"flip": "none", "rotation": 0.0, "zoom": 0.0, "translation": 0.0, "contrast": 0.0}


def images(count=16, size=24, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def test_a_flip_is_exact_and_happens_to_about_half_the_images():
    x = images()
    y = augmentation({**OFF, "flip": "horizontal"})(x, [1, 2]).numpy()
    flipped = [np.allclose(b, a[:, ::-1], atol=1e-3) for a, b in zip(x, y)]
    kept = [np.allclose(b, a, atol=1e-3) for a, b in zip(x, y)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 3 <= sum(flipped) <= 13
    y = augmentation({**OFF, "flip": "vertical"})(x, [1, 2]).numpy()
    assert all(np.allclose(b, a[::-1], atol=1e-3) or np.allclose(b, a, atol=1e-3)
               for a, b in zip(x, y))


def test_a_shift_moves_a_dot_by_at_most_the_translation():
    x = np.zeros((32, 41, 41, 3), np.float32)
    x[:, 20, 20] = 255
    y = augmentation({**OFF, "translation": 0.1})(x, [3, 4]).numpy()
    rows, cols = [], []
    for image in y:
        row, col = np.unravel_index(np.argmax(image[..., 0]), image.shape[:2])
        rows.append(row - 20)
        cols.append(col - 20)
    assert max(map(abs, rows + cols)) <= 5  # 10% of 41 pixels, rounded up
    assert len(set(rows)) > 3 and len(set(cols)) > 3


def test_rotation_and_zoom_keep_the_centre_and_fill_edges_from_the_image():
    x = np.zeros((8, 33, 33, 3), np.float32)
    x[:, 14:19, 14:19] = 200  # a square at the centre
    y = augmentation({**OFF, "rotation": 0.1, "zoom": 0.2})(x, [5, 6]).numpy()
    assert (y[:, 16, 16] > 150).all()  # the centre stays where it was
    assert (y[:, 0, 0] == 0).all()  # corners repeat edge pixels (black), no foreign fill
    assert not np.allclose(y, x)


def test_contrast_keeps_each_channel_mean_and_the_range():
    x = images() * 0.5 + 64  # room on both sides: nothing is clipped
    y = augmentation({**OFF, "contrast": 0.3})(x, [7, 8]).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=0.01)
    spread = y.std(axis=(1, 2, 3)) / x.std(axis=(1, 2, 3))
    assert (spread >= 0.7 - 1e-4).all() and (spread <= 1.3 + 1e-4).all() and spread.std() > 0.01
    y = augmentation({**OFF, "contrast": 1.0})(images(), [7, 8]).numpy()
    assert y.min() >= 0 and y.max() <= 255


def test_same_seed_same_images_and_each_epoch_anew():
    x, labels = images(12).astype(np.uint8), np.arange(12)
    augment = augmentation({**OFF, "flip": "horizontal", "rotation": 0.05, "contrast": 0.2})
    two_epochs = [b.numpy() for b, _ in training_batches(x, labels, 4, 3, range(2), augment)]
    epoch_1, epoch_2 = np.concatenate(two_epochs[:3]), np.concatenate(two_epochs[3:])

    def one_epoch(seed):
        return np.concatenate([b.numpy() for b, _ in
                               training_batches(x, labels, 4, seed, range(1), augment)])
    again, other = one_epoch(3), one_epoch(4)
    np.testing.assert_array_equal(epoch_1, again)
    assert not np.allclose(epoch_1, epoch_2) and not np.allclose(epoch_1, other)
