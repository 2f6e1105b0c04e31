"""The audit: a planted mislabel and a planted near-copy (re-saved, resized, cropped) among
real images are found through a real pretrained backbone's features, a clean set reports
nothing, and data.exclude leaves out what it names."""
import io
import os

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from imgclf import audit, label_issues, near_duplicates
from imgclf.errors import UserError
from imgclf.manifest import read_manifest
from imgclf.splitting import split_dataset
from tests.informative import ROOT, pretrained_extractor

CLASSES = ["circles", "boxes", "lines"]
with open(os.path.join(ROOT, "params.yaml"), encoding="utf-8") as f:
    SIMILARITY = yaml.safe_load(f)["audit"]["similarity"]  # the default threshold, 0.95


def shape_images(per_class, size=128, seed=0):
    """uint8 images that all differ: three shapes of random colours, places and sizes on
    grey; the class is the kind of shape. Per class 40, seed 0: a linear probe on
    MobileNetV2-0.35's features gets every image right out of sample."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(len(CLASSES)):
        for _ in range(per_class):
            image = Image.new("RGB", (size, size), (128, 128, 128))
            draw = ImageDraw.Draw(image)
            for _ in range(3):
                left, top = (int(v) for v in rng.integers(0, size - 24, 2))
                width, height = (int(v) for v in rng.integers(16, size // 2, 2))
                box = (left, top, left + width, top + height)
                colour = tuple(int(v) for v in rng.integers(0, 256, 3))
                if label == 0:
                    draw.ellipse(box, fill=colour)
                elif label == 1:
                    draw.rectangle(box, fill=colour)
                else:
                    draw.line(box, fill=colour, width=6)
            images.append(np.asarray(image))
            labels.append(label)
    return np.stack(images), np.asarray(labels)


def altered(pixels):
    """A copy that is neither the same bytes nor the same pixels: cropped 3% a side,
    shrunk, re-saved as JPEG at quality 60, back to the original size."""
    size = pixels.shape[0]
    cut = round(size * 0.03) or 1
    image = Image.fromarray(pixels).crop((cut, cut, size - cut, size - cut))
    buffer = io.BytesIO()
    image.resize((size * 4 // 5, size * 4 // 5), Image.BICUBIC).save(buffer, "JPEG", quality=60)
    return np.asarray(Image.open(buffer).convert("RGB").resize((size, size), Image.BICUBIC))


def splits_of(images, labels, plant=False):
    """{split: (images, labels, files)}: every 4th image to test, every 4th other to val;
    planted: image 0 of train labelled as another class, and an altered copy of the first
    test image in train."""
    images, labels = images.copy(), labels.copy()
    files = [f"images/{CLASSES[label]}/{i:03d}.png" for i, label in enumerate(labels)]
    which = np.array(["test" if i % 4 == 0 else "val" if i % 4 == 1 else "train"
                      for i in range(len(labels))])
    if plant:
        first_train = int(np.flatnonzero(which == "train")[0])
        labels[first_train] = (labels[first_train] + 1) % len(CLASSES)
        first_test = int(np.flatnonzero(which == "test")[0])
        images = np.concatenate([images, altered(images[first_test])[None]])
        labels = np.append(labels, labels[first_test])
        files.append("images/copy.jpg")
        which = np.append(which, "train")
    return {split: (images[which == split], labels[which == split],
                    [f for f, s in zip(files, which) if s == split])
            for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def extract():
    extractor = pretrained_extractor()
    return lambda images: extractor.predict(images.astype(np.float32), verbose=0).mean(axis=(1, 2))


def audit_of(splits, extract, threshold=SIMILARITY):
    features = {split: extract(images) for split, (images, _, _) in splits.items()}
    issues = audit.issue_rows(features, splits, CLASSES, folds=5, strength=0.1, seed=0)
    return issues, audit.pair_rows(features, splits, threshold)


def test_a_planted_mislabel_and_near_copy_are_found_and_a_clean_set_reports_nothing(extract):
    images, labels = shape_images(per_class=40)
    issues, pairs = audit_of(splits_of(images, labels), extract)
    assert issues == [] and pairs == []

    planted = splits_of(images, labels, plant=True)
    issues, pairs = audit_of(planted, extract)
    mislabelled = planted["train"][2][0]
    found = [row for row in issues if row["file"] == mislabelled]
    # image 2 is the first of train (every 4th from 2, and 3): its true class is its folder's
    assert found and found[0]["suggested"] == CLASSES[labels[2]], issues
    assert found[0]["split"] == "train" and found[0]["score"] > 0.9
    # The changed label lowers its given class's threshold: two circles the probe takes for
    # boxes (it gets 3 of 121 clean images wrong) come next; nothing else is flagged.
    assert len(issues) <= 3, issues
    copy_pair = {"images/copy.jpg", planted["test"][2][0]}
    assert {pairs[0]["file_a"], pairs[0]["file_b"]} == copy_pair, pairs
    assert (pairs[0]["split_a"], pairs[0]["split_b"]) == ("train", "test")
    assert len(pairs) == 1, pairs


def test_the_copy_is_far_above_any_two_different_images(extract):
    """The margin audit.similarity sits in: the planted copy (0.972) against the closest
    pair of distinct images (0.910)."""
    images, labels = shape_images(per_class=40)
    planted = splits_of(images, labels, plant=True)
    features = np.concatenate([extract(split[0]) for split in planted.values()])
    units = near_duplicates.unit_rows(features)
    similarity = units @ units.T
    copy, original = len(planted["train"][0]) - 1, len(planted["train"][0]) + len(planted["val"][0])
    np.fill_diagonal(similarity, -1)
    assert similarity[copy, original] >= SIMILARITY + 0.015
    similarity[copy, original] = similarity[original, copy] = -1
    assert similarity.max() < SIMILARITY - 0.03


def test_confident_learning_rule_on_known_probabilities():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    probabilities = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05],
                              [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.9, 0.0],
                              [0.05, 0.05, 0.9], [0.3, 0.3, 0.4]])
    # image 2: given 0 at 0.1 (class 0's typical self-confidence: 0.6), class 1 at 0.85 >= 0.8
    assert label_issues.single_label_issues(probabilities, labels) == [(2, 1, 0.9)]
    # image 7 is below class 2's 0.65, but no other class reaches its own threshold
    assert label_issues.thresholds(probabilities, labels)[2] == pytest.approx(0.65)


def test_multi_label_issues_flag_a_given_label_absent_and_a_missing_label_present():
    labels = np.array([[1, 0], [1, 0], [1, 1], [0, 1], [0, 0], [0, 1]])
    probabilities = np.array([[0.9, 0.1], [0.95, 0.2], [0.05, 0.9], [0.1, 0.8], [0.1, 0.1],
                              [0.9, 0.85]])
    found = label_issues.multi_label_issues(probabilities, labels)
    assert [(i, label, given) for i, label, given, _ in found] == [(2, 0, True), (5, 0, False)]


def test_out_of_sample_probabilities_never_come_from_a_model_that_saw_the_image():
    """A lone outlier with its own label: a model that trained on it would give it its
    label; out of sample, the probe cannot, so its label is flagged."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(6, 1, (30, 4))])
    y = np.repeat([0, 1], 30)
    y[0] = 1  # a class-0 point labelled 1
    p, held = label_issues.out_of_sample(x, y, x[:2], 2, folds=5, strength=1.0, seed=0)
    assert p[0, 1] < 0.5 and held.shape == (2, 2)
    assert [i for i, _, _ in label_issues.single_label_issues(p, y)] == [0]


def test_pairs_straddling_splits_come_first_train_side_first():
    splits = ["test", "train", "train", "val"]
    pairs = [(1, 2, 0.99), (0, 1, 0.96), (2, 3, 0.97)]
    assert near_duplicates.ordered(pairs, splits) == [(2, 3, 0.97), (1, 0, 0.96), (1, 2, 0.99)]


def write_folder_images(folder):
    images, labels = shape_images(per_class=6, size=48)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        os.makedirs(os.path.join(folder, CLASSES[label]), exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(folder, CLASSES[label], f"{i:03d}.png"))


def test_data_exclude_leaves_out_what_it_names_as_the_audit_lists_it(tmp_path):
    photos = str(tmp_path / "photos")
    write_folder_images(photos)
    listed = os.path.join(photos, "circles", "000.png")  # as the audit's tables print it
    _, skipped = split_dataset(photos, str(tmp_path / "split"), (0.5, 0.25, 0.25), seed=0,
                               exclude=[listed, "boxes/006.png"])
    files = set(read_manifest(str(tmp_path / "split"), None)["file"])
    assert "circles/000.png" not in files and "boxes/006.png" not in files and len(files) == 16
    assert (listed, "in data.exclude: left out") in skipped

    with open(os.path.join(photos, "exclude.txt"), "w", encoding="utf-8") as f:
        f.write("# near-duplicates of test photos\nlines/012.png\n\n")
    split_dataset(photos, str(tmp_path / "again"), (0.5, 0.25, 0.25), seed=0,
                  exclude=os.path.join(photos, "exclude.txt"))
    assert "lines/012.png" not in set(read_manifest(str(tmp_path / "again"), None)["file"])

    with pytest.raises(UserError, match="data.exclude names 'lines/999.png'"):
        split_dataset(photos, str(tmp_path / "typo"), (0.5, 0.25, 0.25), seed=0,
                      exclude=["lines/999.png"])


def clusters(counts, seed=0):
    """Gaussian clusters far apart, one per class, counts[c] points in class c."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(8 * c, 1, (n, 4)) for c, n in enumerate(counts)])
    return x, np.repeat(np.arange(len(counts)), counts)


@pytest.mark.parametrize("counts", [(30, 30, 1), (30, 1)])
def test_a_class_of_one_image_neither_floods_the_audit_nor_stops_it(counts):
    """The fold holding the lone image out trains without its class and gives it 0: as a
    threshold, 0 would make every image 'confident' of that class (planted: half the set
    was flagged); a fold of one class trains a model that answers it (no crash)."""
    x, y = clusters(counts)
    p, _ = label_issues.out_of_sample(x, y, x[:0], len(counts), folds=5, strength=1.0, seed=0)
    assert label_issues.single_label_issues(p, y) == []
    labels = np.zeros((40, 2), int)
    labels[:20, 0] = 1
    labels[0, 1] = 1  # label 1 on one image only
    probabilities = np.full((40, 2), 0.5)
    probabilities[:, 1] = 0.0
    assert label_issues.multi_label_issues(probabilities, labels) == []


def test_data_exclude_reads_either_slash_and_a_byte_order_mark(tmp_path):
    photos = str(tmp_path / "photos")
    write_folder_images(photos)
    with open(os.path.join(photos, "exclude.txt"), "w", encoding="utf-8-sig") as f:
        f.write("circles\\001.png\n" + photos.replace("/", "\\") + "\\boxes\\007.png\n")
    split_dataset(photos, str(tmp_path / "split"), (0.5, 0.25, 0.25), seed=0,
                  exclude=os.path.join(photos, "exclude.txt"))
    files = set(read_manifest(str(tmp_path / "split"), None)["file"])
    assert "circles/001.png" not in files and "boxes/007.png" not in files and len(files) == 16
