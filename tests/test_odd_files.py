"""A folder of the odd files real image folders have: each one is used correctly or left out
with its path and reason, and the folder itself is never changed."""
import csv
import hashlib
import io
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from imgclf.dataset import read_split
from imgclf.images import load_image, try_load_image
from imgclf.errors import UserError
from imgclf.manifest import read_manifest
from imgclf.prepare import prepare
from imgclf.splitting import split_dataset


def png_bytes(color, size=(40, 30), mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(color, size=(40, 30), mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def odd_folder(tmp_path):
    root = tmp_path / "photos"
    files = {
        "cat/red.png": png_bytes((255, 0, 0)),
        "cat/UPPER.JPG": jpeg_bytes((250, 10, 10)),
        "cat/sub/deeper/nested.png": png_bytes((240, 0, 20)),
        "cat/photo été 1.png": png_bytes((230, 5, 5)),
        "cat/cmyk.jpg": jpeg_bytes((0, 255, 255, 0), mode="CMYK"),
        "cat/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "cat/empty.jpg": b"",
        "cat/not_an_image.jpg": b"hello, I am text",
        "cat/half.jpg": jpeg_bytes((200, 0, 0), size=(200, 200))[:300],
        "dog/green.png": png_bytes((0, 255, 0)),
        "dog/sixteen_bit.png": None,  # written below
        "dog/animated.gif": None,
        "dog/huge.jpg": jpeg_bytes((0, 200, 0), size=(6000, 4000)),
        "dog/transparent.png": png_bytes((0, 0, 0, 0), mode="RGBA"),
        "dog/palette.png": None,
        "dog/copy_of_red.png": png_bytes((255, 0, 0)),  # same bytes as cat/red.png
        "dog/bomb.png": None,
        ".DS_Store": b"\x00",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            (root / name).write_bytes(data)
    Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)).save(root / "dog/sixteen_bit.png")
    frames = [Image.new("RGB", (30, 30), color) for color in [(0, 255, 0), (255, 0, 255)]]
    frames[0].save(root / "dog/animated.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.new("RGB", (30, 30), (0, 250, 0)).convert("P").save(root / "dog/palette.png")
    # 200 million pixels: over twice PIL's decompression-bomb limit, yet a small file.
    Image.new("1", (20000, 10000)).save(root / "dog/bomb.png")
    (root / "empty_class").mkdir()
    for i in range(4):  # enough in each class for a 50/25/25 split of the usable images
        (root / f"cat/extra_{i}.png").write_bytes(png_bytes((255, 100 + i, 0)))
        (root / f"dog/extra_{i}.png").write_bytes(png_bytes((100 + i, 255, 0)))
    return root


def snapshot(folder):
    """Every file below folder and a hash of its bytes."""
    result = {}
    for directory, _, files in os.walk(folder):
        for file in files:
            path = os.path.join(directory, file)
            with open(path, "rb") as f:
                result[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return result


def read_report(path):
    with open(path, newline="", encoding="utf-8") as f:
        return {os.path.basename(row["file"]): row["reason"] for row in csv.DictReader(f)}


def test_every_odd_file_is_used_or_reported_and_the_folder_is_untouched(odd_folder, tmp_path):
    before = snapshot(odd_folder)
    counts, skipped = split_dataset(str(odd_folder), str(tmp_path / "split"), (0.5, 0.25, 0.25), seed=0)
    split_report = read_report(tmp_path / "split" / "skipped.csv")
    assert split_report == {"empty_class": "empty class folder: left out",
                            "copy_of_red.png": f"same bytes as {odd_folder}/cat/red.png: left out"}
    files = read_manifest(str(tmp_path / "split"), None)["file"]
    assert not any(os.path.basename(name).startswith(".") for name in files)
    # A nested image belongs to the class folder above it.
    assert "cat/sub/deeper/nested.png" in set(files)

    counts, unreadable = prepare(str(tmp_path / "split"), str(odd_folder), str(tmp_path / "prepared"),
                                 32, max_unreadable=0.5, processes=2)
    reasons = read_report(tmp_path / "prepared" / "skipped.csv")
    assert set(reasons) == {"empty.jpg", "not_an_image.jpg", "half.jpg", "bomb.png"}
    assert "DecompressionBomb" in reasons["bomb.png"]
    assert sum(counts.values()) == 24 - 1 - 4  # image files, less the duplicate and the unreadable
    used = []
    for split in counts:
        images, labels, files = read_split(str(tmp_path / "prepared"), split)
        used += [(os.path.basename(f), image, label) for f, image, label in zip(files, images, labels)]
    colour = {name: image.reshape(-1, 3).mean(axis=0) for name, image, _ in used}
    assert colour["cmyk.jpg"][0] > 200 and colour["cmyk.jpg"][1] < 60  # CMYK (0,1,1,0) is red
    assert colour["animated.gif"][1] > 200 and colour["animated.gif"][0] < 60  # first frame
    assert (colour["transparent.png"] > 250).all()  # alpha on white
    assert colour["sixteen_bit.png"] == pytest.approx([155.6] * 3, abs=1)  # 40000 / 257
    assert colour["palette.png"][1] > 200
    assert colour["huge.jpg"][1] > 180
    assert {"UPPER.JPG", "photo été 1.png", "nested.png"} <= set(colour)
    assert snapshot(odd_folder) == before


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "is not a folder"),
    (lambda root: (root / "only" ).mkdir(parents=True) or (root / "only/a.png").write_bytes(png_bytes(1)),
     "1 class"),
    (lambda root: [(root / c).mkdir(parents=True) or (root / c / "a.png").write_bytes(png_bytes(i))
                   for i, c in enumerate(["x", "y"])], r"class 'x' has 1 image\(s\); split 0.7/0.2/0.1 needs at least 5 per class"),
])
def test_unusable_data_stops_before_anything_is_written(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(UserError, match=message):
        split_dataset(str(root), str(tmp_path / "out"), (0.7, 0.2, 0.1), seed=0)
    assert not os.path.exists(tmp_path / "out")


def test_a_class_only_in_val_is_refused(tmp_path):
    for split, classes in [("train", ["a", "b"]), ("val", ["a", "c"])]:
        for i, name in enumerate(classes):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            (tmp_path / "data" / split / name / "x.png").write_bytes(png_bytes((i, len(split), 0)))
    with pytest.raises(UserError, match="val/test have classes that train does not: c"):
        split_dataset(str(tmp_path / "data"), str(tmp_path / "out"), (0.7, 0.2, 0.1), seed=0)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_load_image_on_random_bytes_returns_an_image_or_raises(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "x.jpg"
    path.write_bytes(data)
    try:
        pixels = load_image(str(path), 16)
    except Exception:
        return
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(MODES), width=st.integers(1, 300), height=st.integers(1, 300),
       size=st.integers(1, 64), seed=st.integers(0, 1000), file_format=st.sampled_from(["PNG", "TIFF", "WEBP", "BMP", "GIF", "JPEG"]))
def test_load_image_on_random_valid_images(tmp_path_factory, mode, width, height, size, seed, file_format):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path_factory.mktemp("img") / f"x.{file_format.lower()}"
    try:
        image.save(path, format=file_format)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode: nothing to test
    pixels = load_image(str(path), size)
    assert pixels.shape == (size, size, 3) and pixels.dtype == np.uint8


def test_same_pixels_in_train_and_test_are_kept_in_train_only(tmp_path):
    source = tmp_path / "given"
    for split in ("train", "test", "val"):
        for i, name in enumerate(["a", "b"]):
            (source / split / name).mkdir(parents=True)
            (source / split / name / "own.png").write_bytes(png_bytes((i * 90, 30, len(split) * 20)))
    image = Image.new("RGB", (20, 20), (1, 2, 3))
    image.save(source / "train" / "a" / "photo.png")
    image.save(source / "test" / "b" / "photo.bmp")  # other bytes, same pixels
    split_dataset(str(source), str(tmp_path / "split"), (0.7, 0.2, 0.1), seed=0)
    counts, skipped = prepare(str(tmp_path / "split"), str(source), str(tmp_path / "prepared"), 16,
                              processes=1)
    assert counts == {"train": 3, "val": 2, "test": 2}
    assert [(os.path.basename(path), reason.split(" as ")[0]) for path, reason in skipped] == [
        ("photo.bmp", "same pixels")]


def test_names_and_files_that_cannot_be_used_are_left_out_with_their_reason(tmp_path):
    """A broken link, a file without read permission, a name that is not UTF-8 and names
    holding a line separator: each listed with its reason; files.txt stays one name per line."""
    source = tmp_path / "odd"
    for i, name in enumerate(["a", "b"]):
        for j in range(4):
            (source / name).mkdir(parents=True, exist_ok=True)
            (source / name / f"ok{j}.png").write_bytes(png_bytes((i * 120, j * 40, 9)))
    os.symlink(tmp_path / "gone.png", source / "a" / "broken.png")
    odd_names = ["new\nline.png", "group\x1csep.png", "para\u2028sep.png"]
    for k, name in enumerate(odd_names):
        (source / "b" / name).write_bytes(png_bytes((200, k, 1)))
    not_utf8 = os.fsencode(str(source / "a")) + b"/caf\xe9.png"
    with open(not_utf8, "wb") as f:
        f.write(png_bytes((1, 200, 2)))
    os.mkfifo(source / "a" / "pipe.png")  # reading it would block forever
    locked = source / "a" / "locked.png"
    locked.write_bytes(png_bytes((3, 3, 200)))
    locked.chmod(0)
    counts, skipped = split_dataset(str(source), str(tmp_path / "split"), (0.5, 0.5), seed=0)
    reasons = {os.path.basename(path): reason for path, reason in skipped}
    assert reasons["broken.png"].startswith("cannot be read (FileNotFoundError")
    assert reasons["pipe.png"].startswith("not a regular file")
    assert reasons[os.fsdecode(b"caf\xe9.png")].startswith("file name is not valid UTF-8")
    for name in odd_names:
        assert "line separator" in reasons[name]
    readable_by_root = os.access(locked, os.R_OK)  # root reads a file without permissions
    assert ("locked.png" in reasons) != readable_by_root
    assert sum(counts.values()) == 8 + readable_by_root
    with open(tmp_path / "split" / "skipped.csv", encoding="utf-8") as f:
        assert "caf\\udce9.png" in f.read()  # listed, its odd byte escaped
    prepare(str(tmp_path / "split"), str(source), str(tmp_path / "prepared"), 8, processes=1)
    images, labels, files = read_split(str(tmp_path / "prepared"), "train")
    assert len(files) == len(labels) == len(images)


def test_linked_folders_at_any_depth_are_listed_and_left_out(tmp_path):
    """DVC's hash of data.dir does not look inside a linked folder (checked by hand with DVC
    3.67: a file added there left `dvc status` clean), so its images could change unseen:
    a link to a class folder and a link inside one are both listed, neither is read."""
    source, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    for i, name in enumerate(["a", "b"]):
        for j in range(4):
            (source / name).mkdir(parents=True, exist_ok=True)
            (source / name / f"ok{j}.png").write_bytes(png_bytes((i * 120, j * 40, 9)))
    for folder in ("c", "more"):
        (elsewhere / folder).mkdir(parents=True)
        for j in range(4):
            (elsewhere / folder / f"x{j}.png").write_bytes(png_bytes((j, 200, 9)))
    os.symlink(elsewhere / "c", source / "c")  # a class folder
    os.symlink(elsewhere / "more", source / "a" / "more")  # inside a class folder
    os.symlink(source / "a", source / "a" / "loop")  # a loop
    counts, skipped = split_dataset(str(source), str(tmp_path / "split"), (0.5, 0.5), seed=0)
    reasons = {os.path.relpath(path, source): reason for path, reason in skipped}
    assert sorted(reasons) == ["a/loop", "a/more", "c"]
    assert all(reason.startswith("link to a folder: left out") for reason in reasons.values())
    assert sum(counts.values()) == 8
    assert set(read_manifest(str(tmp_path / "split"), None)["label"]) == {"a", "b"}


@pytest.mark.parametrize("file_format", ["PPM", "PCX", "TGA", "SGI", "EPS"])
def test_content_of_another_format_is_not_decoded_whatever_its_name(tmp_path, file_format):
    """Pillow picks its decoder from the content: an EPS file named x.jpg would run
    Ghostscript. Only the listed formats are decoded; another is left out with that reason."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format=file_format)
    path = tmp_path / "photo.jpg"
    path.write_bytes(buffer.getvalue())
    with Image.open(path) as anything:  # what an unrestricted open would take it for
        assert anything.format == file_format
    pixels, reason = try_load_image(str(path), 8)
    assert pixels is None
    assert reason == ("UnidentifiedImageError: not a JPEG, PNG, BMP, GIF, WebP or TIFF image "
                      "by its content (other formats are not decoded)")


def photo_like(width, height):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack([128 + 100 * np.sin(x / 97), 128 + 100 * np.cos(y / 61),
                       (x + y) % 256], axis=-1)
    return pixels.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("file_format", ["PNG", "JPEG"])
def test_a_large_photo_decoded_reduced_looks_as_when_decoded_whole(tmp_path, file_format):
    """Reduced first (images.reduced: no full-size copy per conversion), it matches a whole
    decode resized as before, and with max_side it keeps its aspect, EXIF turn applied."""
    path = tmp_path / f"large.{file_format.lower()}"
    exif = Image.Exif()
    exif[0x0112] = 6  # turned: the camera held upright
    Image.fromarray(photo_like(3000, 2000)).save(path, format=file_format, exif=exif)
    with Image.open(path) as whole:
        upright = ImageOps.exif_transpose(whole).convert("RGB")
        expected = np.asarray(upright.resize((64, 64), Image.BILINEAR, reducing_gap=3.0))
    pixels = load_image(str(path), 64)
    assert pixels.shape == (64, 64, 3)
    assert np.abs(pixels.astype(int) - expected).mean() < 2.5
    capped = load_image(str(path), max_side=500)
    assert capped.shape[0] == 500 and abs(capped.shape[1] - 333) <= 1  # upright: 2:3
    assert load_image(str(path)).shape == (3000, 2000, 3)


def test_decoding_workers_fit_half_the_free_memory(tmp_path):
    from imgclf.prepare import decode_workers

    paths = []
    for index in range(4):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.new("RGB", (1000, 1000 - index), (index, 0, 0)).save(paths[-1])
    paths.append(str(tmp_path / "broken.png"))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    # the largest decodes to 4 MB (4 bytes a pixel): half of 32 MB holds 4 of them
    assert decode_workers(paths, cpus=8, available=32_000_000) == 4
    assert decode_workers(paths, cpus=8, available=4_000_000) == 1  # always one
    assert decode_workers(paths, cpus=2, available=10**12) == 2  # at most the cores
