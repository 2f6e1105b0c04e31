"""Labels that would silently change meaning: a newline inside a quoted CSV label (labels.txt
holds one name per line), one name in two Unicode forms, and a `$` that matplotlib would
read as mathtext."""
import os
import shutil
import unicodedata

import numpy as np
import pytest

from imgclf import charts
from imgclf.errors import UserError
from imgclf.manifest import read_manifest
from imgclf.splitting import split_dataset
from tests.conftest import write_images


def test_a_control_character_in_a_csv_label_stops_the_split_naming_the_row(tmp_path):
    photos = write_images(str(tmp_path / "photos"), ["cat", "dog"], per_class=4)
    rows = ["file,label", "cat/img_000.png,cat", '"cat/img_001.png","cat\ntabby"'] + [
        f"dog/img_00{i}.png,dog" for i in range(4)]
    (tmp_path / "photos" / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"labels.csv row 3: label 'cat\\ntabby' holds the "
                                        r"control character '\\n'; labels must be one line"):
        split_dataset(photos, str(tmp_path / "split"), (0.5, 0.5), seed=0,
                      labels=os.path.join(photos, "labels.csv"))


def test_a_control_character_in_a_class_folder_name_stops_the_split(tmp_path):
    photos = write_images(str(tmp_path / "photos"), ["cat", "dog"], per_class=4)
    os.rename(os.path.join(photos, "dog"), os.path.join(photos, "do\tg"))
    with pytest.raises(UserError, match=r"class folder .*do\\tg.*: label 'do\\tg' holds the "
                                        r"control character '\\t'"):
        split_dataset(photos, str(tmp_path / "split"), (0.5, 0.5), seed=0)


def test_one_name_in_nfc_and_nfd_is_one_class(tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    photos = write_images(str(tmp_path / "photos"), [nfc, "tea"], per_class=4)
    write_images(os.path.join(photos, "more"), [nfd], per_class=4, seed=1)
    shutil.move(os.path.join(photos, "more", nfd), os.path.join(photos, nfd))
    os.rmdir(os.path.join(photos, "more"))
    assert sorted(os.listdir(photos)) == sorted([nfc, nfd, "tea"])  # two folders on disk
    split_dataset(photos, str(tmp_path / "split"), (0.5, 0.5), seed=0)
    rows = read_manifest(str(tmp_path / "split"), None)
    assert sorted(set(rows["label"])) == [nfc, "tea"] and len(rows) == 12
    assert sum(file.startswith(nfd + "/") for file in rows["file"]) == 4  # paths as on disk
    csv_rows = ["file,label"] + [f"{file},{nfd if label == nfc and i % 2 else label}"
                                 for i, (file, label) in enumerate(zip(rows["file"], rows["label"]))]
    (tmp_path / "photos" / "labels.csv").write_text("\n".join(csv_rows) + "\n", encoding="utf-8")
    split_dataset(photos, str(tmp_path / "csv_split"), (0.5, 0.5), seed=0,
                  labels=os.path.join(photos, "labels.csv"))
    assert set(read_manifest(str(tmp_path / "csv_split"), None)["label"]) == {nfc, "tea"}


def test_dollar_signs_in_class_names_are_drawn_as_text(tmp_path):
    names = ["$5 bill", "$10 bill", "$x^{2$"]
    matrix = np.array([[3, 1, 0], [0, 4, 0], [1, 0, 2]])
    charts.confusion_matrices(names, matrix, str(tmp_path / "confusion.png"))
    report = {name: {"precision": 0.5, "recall": 0.5, "f1-score": 0.5} for name in names}
    charts.per_class(report, names, str(tmp_path / "per_class.png"))
    images = np.zeros((2, 8, 8, 3), np.uint8)
    charts.image_grid(images, ["$5 bill -> $10 bill", "$x^{2$"], str(tmp_path / "grid.png"),
                      "mistakes: $5 bill")
    assert all((tmp_path / name).stat().st_size > 1000
               for name in ("confusion.png", "per_class.png", "grid.png"))
