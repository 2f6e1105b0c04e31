import os

import numpy as np
import pytest
from PIL import Image

from imgclf.augment import augmentation
from imgclf.dataset import training_batches
from imgclf.images import image_files, load_image


def test_image_files_nested_hidden_and_extensions(tmp_path):
    for path in ["b/x.PNG", "b/deeper/y.jpeg", "a/z.JPG", "a/.hidden.png", "a/notes.txt",
                 ".git/w.png", "a/.thumbs/v.png"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / path, format="PNG")
    found = [os.path.relpath(path, tmp_path) for path in image_files(str(tmp_path))]
    assert found == ["a/z.JPG", "b/x.PNG", "b/deeper/y.jpeg"]


def test_load_image_modes_become_rgb_at_size(tmp_path):
    gray = tmp_path / "gray.png"
    Image.new("L", (30, 20), 80).save(gray)
    assert load_image(str(gray), 16).shape == (16, 16, 3)
    assert (load_image(str(gray), 16) == 80).all()

    transparent = tmp_path / "alpha.png"
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(transparent)
    assert (load_image(str(transparent), 8) == 255).all()  # fully transparent -> white

    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(deep)
    assert (load_image(str(deep), 8) == 255).all()  # 16-bit scaled down, not clipped garbage


def test_load_image_applies_exif_orientation(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # wide: 40 x 20, left half white
    pixels[:, :20] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif, quality=95)
    shown = load_image(str(path), 20)
    # After rotating 90 degrees clockwise the white half is on top.
    assert shown[:8].mean() > 200 and shown[-8:].mean() < 50


def test_load_image_rejects_a_text_file(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_text("not an image")
    with pytest.raises(Exception):
        load_image(str(path), 8)


def test_training_batches_cover_every_example_once_per_epoch_from_a_memmap(tmp_path):
    images = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8,
                                       shape=(10, 4, 4, 3))
    images[:] = np.arange(10, dtype=np.uint8)[:, None, None, None]
    labels = np.arange(10)
    seen = []
    for x, y in training_batches(images, labels, 3, 1, range(3)):  # 4 batches an epoch
        assert x.dtype.name == "float32" and x.shape[1:] == (4, 4, 3)
        assert (x.numpy()[:, 0, 0, 0] == y.numpy()).all()  # images stay with their labels
        seen += list(y.numpy())
    epochs = [seen[:10], seen[10:20], seen[20:]]
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs) and len(seen) == 30
    assert len({tuple(epoch) for epoch in epochs} | {tuple(range(10))}) == 4  # new order each


def test_an_epochs_batches_do_not_depend_on_the_epochs_before_it():
    """A run resumed at epoch 2 (a new process) sees the batches an uninterrupted run
    sees at epoch 2: same order, same augmentation."""
    images = np.random.default_rng(0).integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(10)
    augment = augmentation({"flip": "horizontal", "rotation": 0.1, "zoom": 0.1,
                            "translation": 0.1, "contrast": 0.2})

    def epoch_batches(epochs):
        return [(x.numpy(), y.numpy()) for x, y in
                training_batches(images, labels, 4, 5, epochs, augment)]
    uninterrupted, resumed = epoch_batches(range(3))[6:], epoch_batches(range(2, 3))
    assert len(resumed) == 3
    for (x, y), (x2, y2) in zip(uninterrupted, resumed):
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(x, x2)
    other_epoch = epoch_batches(range(1, 2))
    assert not np.array_equal(other_epoch[0][1], resumed[0][1])


def test_augmentation_off_is_none_and_on_keeps_shape_and_range():
    off = {"flip": "none", "rotation": 0.0, "zoom": 0.0, "translation": 0.0, "contrast": 0.0}
    assert augmentation(off) is None
    on = {"flip": "horizontal", "rotation": 0.1, "zoom": 0.1, "translation": 0.1, "contrast": 0.2}
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = augmentation(on)(x, [0, 1]).numpy()
    assert y.shape == x.shape and not np.allclose(x, y)
    assert y.min() >= 0 and y.max() <= 255
