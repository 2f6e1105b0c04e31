import csv
import json
import os

import numpy as np
import pytest

from imgclf.images import load_image
from imgclf.predict import image_paths, main, predict
from tests.conftest import write_images
from tests.informative import SIZE, assert_informative


def test_each_file_gets_its_own_prediction_and_bad_files_are_reported(tmp_path, classifier):
    folder = write_images(str(tmp_path / "new"), ["cat", "dog", "fox"], per_class=3, seed=4)
    os.makedirs(tmp_path / "new" / "fox" / "deeper")
    (tmp_path / "new" / "fox" / "deeper" / "broken.jpg").write_text("not an image")
    (tmp_path / "new" / ".hidden.png").write_text("ignored")
    paths = list(image_paths([folder]))
    assert len(paths) == 10 and paths[-1].endswith("broken.jpg")

    rows = predict(classifier, paths, top_k=3, batch_size=4, size=SIZE, processes=1)
    assert [row["file"] for row in rows] == paths
    assert rows[-1]["error"].startswith("UnidentifiedImageError")
    direct = classifier.predict(np.stack([load_image(p, SIZE) for p in paths[:-1]]).astype("float32"),
                                verbose=0)
    assert_informative(direct, [0] * 3 + [1] * 3 + [2] * 3)
    for row, probabilities, path in zip(rows[:-1], direct, paths):
        ranked = [p for _, p in row["predictions"]]
        assert ranked == sorted(ranked, reverse=True)
        assert row["predictions"][0][0] == path.split(os.sep)[-2]  # the image's own class
        by_class = dict(row["predictions"])
        np.testing.assert_allclose([by_class[c] for c in ("cat", "dog", "fox")], probabilities,
                                   atol=1e-5)


def test_command_writes_csv_and_json(tmp_path, monkeypatch, classifier):
    folder = write_images(str(tmp_path / "new"), ["cat", "dog"], per_class=2)
    (tmp_path / "new" / "cat" / "bad.png").write_bytes(b"")
    model_path = str(tmp_path / "model.keras")
    classifier.save(model_path)
    monkeypatch.chdir(tmp_path)  # outside the project: decode at the model's own size
    main([folder, "-m", model_path, "-k", "2", "-o", "out.csv"])
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "class_1", "probability_1", "class_2", "probability_2",
                             "unknown", "unknown_score", "uncertain", "error"]
    assert [bool(row["error"]) for row in rows] == [True, False, False, False, False]  # bad.png first
    assert [row["class_1"] for row in rows[1:]] == ["cat", "cat", "dog", "dog"]
    main([folder, "-m", model_path, "-o", "out.json"])
    result = json.loads((tmp_path / "out.json").read_text())
    assert [row["predictions"][0]["class"] for row in result[1:]] == ["cat", "cat", "dog", "dog"]
    assert {p["class"] for p in result[1]["predictions"]} == {"cat", "dog", "fox"}


def test_images_are_decoded_at_the_resolution_the_model_records(tmp_path, monkeypatch, classifier):
    # The model records the resolution its images were prepared at; a params.yaml in the
    # working directory (another project's, or none) has no say.
    import keras

    folder = write_images(str(tmp_path / "new"), ["cat", "dog"], per_class=2, size=200)
    model_path = str(tmp_path / "model.keras")
    classifier.save(model_path)
    recorded = keras.models.load_model(model_path)
    recorded.get_layer("class_names").prepared_resolution = 96
    recorded.save(model_path)
    (tmp_path / "params.yaml").write_text("preprocess:\n  resolution: 40\n")
    monkeypatch.chdir(tmp_path)
    main([folder, "-m", model_path, "-o", "out.json"])
    rows = json.loads((tmp_path / "out.json").read_text())
    paths = [row["file"] for row in rows]
    for size, matches in ((96, True), (40, False)):
        direct = classifier.predict(np.stack([load_image(p, size) for p in paths]).astype("float32"),
                                    verbose=0)
        got = [[dict((p["class"], p["probability"]) for p in row["predictions"])[c]
                for c in ("cat", "dog", "fox")] for row in rows]
        assert np.allclose(got, direct, atol=1e-5) == matches, size


def test_test_time_augmentation_averages_with_the_mirror_image(tmp_path, classifier):
    from imgclf.dataset import batches
    from imgclf.model import probabilities

    folder = write_images(str(tmp_path / "new"), ["cat", "dog", "fox"], per_class=2, seed=6)
    paths = list(image_paths([folder]))
    images = np.stack([load_image(p, SIZE) for p in paths]).astype("float32")
    plain = classifier.predict(images, verbose=0)
    mirrored = classifier.predict(images[:, :, ::-1], verbose=0)
    expected = (plain + mirrored) / 2
    # The model is sure of these images: the mirror moves the small probabilities, by
    # factors, which is what a relative tolerance sees.
    same = {"rtol": 1e-3, "atol": 1e-12}
    assert not np.allclose(plain, expected, **same)
    rows = predict(classifier, paths, top_k=3, size=SIZE, processes=1, tta=True)
    got = [[dict(row["predictions"])[c] for c in ("cat", "dog", "fox")] for row in rows]
    np.testing.assert_allclose(got, expected, **same)
    labels = np.array([0, 0, 1, 1, 2, 2])
    pixels = images.astype(np.uint8)
    dataset = batches(pixels, labels, 4)
    np.testing.assert_allclose(probabilities(classifier, dataset, tta=True), expected, **same)
    np.testing.assert_allclose(probabilities(classifier, dataset), plain, **same)


def test_a_file_name_that_is_not_utf8_is_written_escaped(tmp_path, monkeypatch, classifier):
    from imgclf.scoring import write_unknowns

    folder = write_images(str(tmp_path / "new"), ["cat"], per_class=2)
    odd = os.path.join(os.fsencode(folder), b"cat", b"caf\xe9.png")
    os.rename(os.path.join(folder, "cat", "img_000.png"), odd)
    model_path = str(tmp_path / "model.keras")
    classifier.save(model_path)
    monkeypatch.chdir(tmp_path)
    main([folder, "-m", model_path, "-o", "out.csv"])
    main([folder, "-m", model_path, "-o", "out.json"])
    main([folder, "-m", model_path])  # stdout
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        files = [row["file"] for row in csv.DictReader(f)]
    assert files[0].endswith("cat/caf\\udce9.png") and len(files) == 2
    assert json.loads((tmp_path / "out.json").read_text())[0]["file"] == files[0]
    # evaluate's table of evaluate.unknown_dir's images
    outputs = {"probabilities": np.array([[0.9, 0.1]]), "unknown_score": np.array([[0.3]]),
               "unknown": np.array([[1]])}
    write_unknowns(str(tmp_path / "unknowns.csv"), [os.fsdecode(odd)], outputs, ["a", "b"])
    assert "caf\\udce9.png" in (tmp_path / "unknowns.csv").read_text(encoding="utf-8")


def test_predict_output_appears_only_when_complete(tmp_path):
    from imgclf.predict import write_rows

    (tmp_path / "out.csv").write_text("an earlier run's\n", encoding="utf-8")
    rows = [{"file": "a.png", "predictions": [("cat", 0.9)]},
            {"file": "b.png", "predictions": [("cat", "not a probability")]}]  # fails midway
    with pytest.raises(ValueError):
        write_rows(rows, str(tmp_path / "out.csv"), 1)
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "an earlier run's\n"
    assert os.listdir(tmp_path) == ["out.csv"]  # no temporary file left
