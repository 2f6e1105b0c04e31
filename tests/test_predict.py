import csv
import json
import os

import numpy as np

from imgclf.dataset import load_image
from imgclf.predict import image_paths, main, predict
from tests.conftest import write_images
from tests.test_model import tiny_classifier


def test_predict_files_and_folders_with_bad_files_reported(tmp_path):
    folder = write_images(str(tmp_path / "new"), ["x", "y"], per_class=3)
    os.makedirs(tmp_path / "new" / "y" / "deeper")
    (tmp_path / "new" / "y" / "deeper" / "broken.jpg").write_text("not an image")
    (tmp_path / "new" / ".hidden.png").write_text("ignored")
    paths = list(image_paths([folder]))
    assert len(paths) == 7 and paths[-1].endswith("broken.jpg")

    model = tiny_classifier(classes=("cat", "dog", "fox"))
    rows = predict(model, paths, top_k=3, batch_size=4, size=32, processes=1)
    assert [row["file"] for row in rows] == paths
    assert rows[-1]["error"].startswith("UnidentifiedImageError")
    direct = model.predict(np.stack([load_image(p, 32) for p in paths[:-1]]).astype("float32"), verbose=0)
    for row, probabilities in zip(rows[:-1], direct):
        ranked = [p for _, p in row["predictions"]]
        assert ranked == sorted(ranked, reverse=True)
        by_class = dict(row["predictions"])
        np.testing.assert_allclose([by_class[c] for c in ("cat", "dog", "fox")], probabilities, atol=1e-5)


def test_command_writes_csv_and_json(tmp_path, monkeypatch):
    folder = write_images(str(tmp_path / "new"), ["x"], per_class=2)
    (tmp_path / "new" / "x" / "bad.png").write_bytes(b"")
    model_path = str(tmp_path / "model.keras")
    tiny_classifier(classes=("a", "b")).save(model_path)
    monkeypatch.chdir(tmp_path)  # outside the project: decode at the model's own size
    main([folder, "-m", model_path, "-k", "2", "-o", "out.csv"])
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "class_1", "probability_1", "class_2", "probability_2", "error"]
    assert [bool(row["error"]) for row in rows] == [True, False, False]  # bad.png sorts first
    main([folder, "-m", model_path, "-o", "out.json"])
    result = json.loads((tmp_path / "out.json").read_text())
    assert {p["class"] for p in result[1]["predictions"]} == {"a", "b"}
