"""Stage functions on real files, without DVC."""
import os

import numpy as np
import pytest

from imgclf.dataset import read_classes, read_split
from imgclf.errors import UserError
from imgclf.features import float16_rows
from imgclf.scoring import below_probe_note, single_label_score as score
from imgclf import charts
from imgclf.report import html_report
from imgclf.gallery import confident_mistakes, examples_per_class
from imgclf.manifest import read_manifest
from imgclf.prepare import prepare
from imgclf.splitting import split_dataset
from tests.conftest import write_images
from tests.informative import assert_informative, separable_images


def assignment(split_dir):
    """{file: split} of a split's manifest."""
    rows = read_manifest(str(split_dir), None)
    return dict(zip(rows["file"], rows["split"]))


def test_ratio_split_is_seeded_and_leaves_the_source_alone(image_folder, tmp_path):
    before = sorted(os.walk(image_folder))
    counts, skipped = split_dataset(image_folder, str(tmp_path / "a"), (0.6, 0.2, 0.2), seed=1)
    assert counts == {"train": 18, "val": 6, "test": 6} and skipped == []
    split_dataset(image_folder, str(tmp_path / "b"), (0.6, 0.2, 0.2), seed=1)
    split_dataset(image_folder, str(tmp_path / "c"), (0.6, 0.2, 0.2), seed=2)
    a, b, c = (assignment(tmp_path / name) for name in "abc")
    for split, per_class in [("train", 6), ("val", 2), ("test", 2)]:
        assert sum(f.startswith("cat/") and s == split for f, s in a.items()) == per_class
    assert a == b and a != c and sorted(a) == sorted(c)
    assert sorted(os.walk(image_folder)) == before


def test_an_existing_split_is_taken_as_it_is(tmp_path):
    source = tmp_path / "given"
    write_images(str(source / "train"), ["x", "y"], per_class=3)
    write_images(str(source / "val"), ["x", "y"], per_class=1, seed=1)
    counts, _ = split_dataset(str(source), str(tmp_path / "out"), (0.7, 0.2, 0.1), seed=0)
    assert counts == {"train": 6, "val": 2}
    assert sorted(os.listdir(tmp_path / "out")) == ["classes.json", "manifest.csv", "skipped.csv"]
    rows = read_manifest(str(tmp_path / "out"), None)
    assert sorted(rows.loc[rows["split"] == "val", "file"]) == ["val/x/img_000.png", "val/y/img_000.png"]
    assert list(rows["labels"][:3]) == [("x",)] * 3


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "is not a folder"),
    (lambda root: write_images(str(root), ["only"], per_class=2), "1 class"),
])
def test_unusable_data_dir_stops_early(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(UserError, match=message):
        split_dataset(str(root), str(tmp_path / "out"), (0.7, 0.2, 0.1), seed=0)


def test_prepare_decodes_every_split_and_reports_unreadable_files(image_folder, tmp_path):
    (tmp_path / "images" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n")
    split_dataset(image_folder, str(tmp_path / "split"), (0.6, 0.2, 0.2), seed=0)
    counts, skipped = prepare(str(tmp_path / "split"), image_folder, str(tmp_path / "prepared"),
                              24, processes=2)
    with pytest.raises(UserError, match=r"1 of 31 images could not be read, more than preprocess.max_unreadable \(0.01\)"):
        prepare(str(tmp_path / "split"), image_folder, str(tmp_path / "prepared2"), 24, 0.01,
                processes=2)
    assert not os.path.exists(tmp_path / "prepared2")
    assert sum(counts.values()) == 30
    assert [os.path.basename(path) for path, _ in skipped] == ["broken.png"]
    train_count = counts["train"]
    images, labels, files = read_split(str(tmp_path / "prepared"), "train")
    assert images.shape == (train_count, 24, 24, 3) and images.dtype == np.uint8
    assert sorted(np.bincount(labels)) in ([6, 6, 6], [5, 6, 6]) and len(files) == train_count
    assert read_classes(str(tmp_path / "prepared")) == ["cat", "dog", "fox"]
    # A cat image is stored as that image: its red channel is the bright one.
    assert images[labels == 0][..., 0].mean() > images[labels == 0][..., 1].mean() + 100


def test_score_macro_metrics_and_loss():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    metrics, report = score(probabilities, np.array([0, 1, 1, 1]), ["no", "yes"])
    assert metrics["accuracy"] == 0.75 and metrics["n_images"] == 4
    assert metrics["recall"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["precision"] == pytest.approx((0.5 + 1) / 2)
    assert metrics["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))
    assert report["yes"]["support"] == 3


def test_macro_scores_average_over_the_classes_the_split_has():
    labels = np.array([0, 0, 2, 2])  # class 1 has no test image
    metrics, report = score(np.eye(3)[labels] * 0.9 + 0.1 / 3, labels, ["a", "b", "c"])
    assert metrics["precision"] == metrics["recall"] == metrics["f1"] == 1.0
    assert report["absent_classes"] == ["b"]
    wrong = np.eye(3)[[0, 1, 2, 2]]  # one "a" taken for the absent "b"
    metrics, _ = score(wrong, labels, ["a", "b", "c"])
    assert metrics["recall"] == pytest.approx((0.5 + 1) / 2)  # the miss counts against "a"
    assert metrics["f1"] == pytest.approx((2 / 3 + 1) / 2)


def test_plots_are_written(tmp_path):
    rows = [{"epoch": str(e), "accuracy": "0.5", "loss": "1", "val_accuracy": "0.6",
             "val_loss": "0.9"} for e in range(3)]
    histories = {"transfer": rows, "finetune": [{**r, "epoch": str(3 + i)} for i, r in enumerate(rows)]}
    phases = {"transfer": {"best_epoch": 2, "epochs_run": 3}, "finetune": {"best_epoch": 5, "epochs_run": 3}}
    charts.training(histories, phases, str(tmp_path / "training.png"))
    matrix = charts.confusion([{"actual": "b", "predicted": "a"}, {"actual": "a", "predicted": "a"},
                               {"actual": "b", "predicted": "b"}], ["b", "a"])
    assert matrix.tolist() == [[1, 1], [0, 1]]  # rows actual, columns predicted, in class order
    charts.confusion_matrices(["b", "a"], matrix, str(tmp_path / "confusion.png"))
    many = [str(i) for i in range(100)]  # readable up to 100 classes: it still draws
    charts.confusion_matrices(many, np.eye(100, dtype=int), str(tmp_path / "confusion100.png"))
    report = {"a": {"precision": 1, "recall": 0.5, "f1-score": 0.67},
              "b": {"precision": 0.5, "recall": 1, "f1-score": 0.6}}
    charts.per_class(report, ["a", "b"], str(tmp_path / "per_class.png"))
    for name in ("training", "confusion", "confusion100", "per_class"):
        assert os.path.getsize(tmp_path / f"{name}.png") > 5_000


def test_mistakes_are_the_most_confident_wrong_ones():
    rows = [{"actual": "a", "predicted": "b", "confidence": "0.6"},
            {"actual": "a", "predicted": "a", "confidence": "0.99"},
            {"actual": "b", "predicted": "a", "confidence": "0.9"}]
    assert [r["confidence"] for r in confident_mistakes(rows, 5)] == ["0.9", "0.6"]
    assert examples_per_class(rows, 1, 10) == [rows[0], rows[2]]


def test_gradcam_gives_a_map_for_each_image_that_is_not_empty(classifier):
    """The classifier is sure of each image (probabilities near 1): the maps of its
    predicted classes must still show evidence, and another class's map must differ.
    (Where in the image is not checked: at 64 px the last feature map is 2 x 2 and each cell
    sees nearly the whole image.)"""
    from imgclf.gradcam import heat_maps, last_spatial_layer

    assert last_spatial_layer(classifier.get_layer("backbone")) == "out_relu"  # MobileNetV2's
    images, labels = separable_images(3, 2, seed=6)
    images = images.astype("float32")
    assert_informative(classifier.predict(images, verbose=0), labels)
    maps = heat_maps(classifier, images, labels.tolist())
    assert maps.shape == (6, 2, 2)  # 64 px in, stride 32
    assert np.isfinite(maps).all() and np.all((maps >= 0) & (maps <= 1))
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0, atol=1e-6)  # none is empty
    other = heat_maps(classifier, images, ((labels + 1) % 3).tolist())
    assert np.abs(other - maps).max() > 0.1


def test_report_is_one_self_contained_page_that_opens_with_the_verdict(tmp_path):
    png = tmp_path / "x.png"
    charts.per_class({"a": {"precision": 1, "recall": 1, "f1-score": 1}}, ["a"], str(png))
    metrics = {"test": {"accuracy": 0.93456, "n_images": 40, "transfer_accuracy": 0.9,
                        "probe_accuracy": 0.95, "evaluated_on_val": 0},
               "probe": {"val_accuracy": 0.97},
               "transfer": {"best_val_loss": 0.25},
               "finetune": {"unfrozen_layers": 20, "reverted_to_start": 0, "best_epoch": 7,
                            "epochs_run": 4, "best_val_accuracy": 0.96, "best_val_loss": 0.125,
                            "started_from": "transfer", "start_val_loss": 0.25}}
    dataset = {"images": {"train": 120, "val": 30, "test": 40}, "skipped": {"unreadable": 2}}
    page = html_report(metrics, dataset, {"model": "vgg16", "head": {"dense": [256]}},
                       {"scores": str(png)})
    assert "data:image/png;base64," in page and "0.9346" in page and "head.dense" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    verdict = page[:page.index("<h2>")]  # before any table or plot
    assert ("Kept: the fine-tuned model (fine-tuning from the transfer model (20 backbone layers "
            "unfrozen) reached val loss 0.1250 at epoch 7 against its starting 0.2500)") in verdict
    assert "test split, 40 images: accuracy <b>0.9346</b>; before fine-tuning 0.9000; " \
           "linear probe 0.9500" in verdict
    assert "Below the linear probe on val</b> (0.9600 against 0.9700)" in verdict
    assert "train 120, val 30, test 40; 2 file(s) left out (2 unreadable)" in verdict
    assert "<h2>scores on the test split</h2>" in page

    metrics["test"]["evaluated_on_val"] = 1
    metrics["finetune"].update(reverted_to_start=1, best_val_accuracy=0.98, started_from="probe",
                               kept="probe", kept_because="the cheapest")
    page = html_report(metrics, dataset, {}, {})
    verdict = page[:page.index("<h2>")]
    assert ("Kept: the linear probe (no fine-tuning epoch beat the probe model it started from "
            "on val loss (4 epochs tried); the cheapest)") in verdict
    assert "On the val (there is no test split) split" in verdict
    assert "Below the linear probe" not in verdict
    assert "<h2>scores on the val (there is no test split) split</h2>" in page

    # best_val_accuracy (the fine-tuned model's) below the probe: only `kept` keeps the
    # warning out, and then the Keras-measured figures of both
    metrics["finetune"].update(kept="probe", kept_because="probe: right on 29 of 30 val answers",
                               kept_val_accuracy=0.96, best_val_accuracy=0.90)
    verdict = html_report(metrics, dataset, {}, {}).split("<h2>")[0]
    assert "Kept: the linear probe (no fine-tuning epoch beat" in verdict
    assert "; probe: right on 29 of 30 val answers)" in verdict
    assert "Below the linear probe" not in verdict
    metrics["finetune"].update(kept="transfer", kept_val_accuracy=0.9, probe_val_accuracy=0.9)
    assert "Below the linear probe" not in html_report(metrics, dataset, {}, {})
    metrics["finetune"].update(probe_val_accuracy=0.95)
    assert "Below the linear probe on val</b> (0.9000 against 0.9500)" in html_report(
        metrics, dataset, {}, {})


def test_finetune_that_only_hurts_is_undone(tmp_path):
    import yaml

    from imgclf import params
    from imgclf.charts import live_history
    from imgclf.dataset import batches, training_batches
    from imgclf.compute import set_seed
    from imgclf.finetuning import finetune
    from imgclf.training import one_hot, open_live
    from tests.informative import trained_classifier

    set_seed(0)
    model = trained_classifier()
    images, labels = separable_images(3, 6, seed=7)
    images = images.astype("float32")
    train = (lambda epochs: one_hot(training_batches(images, labels, 6, 0, epochs), 3), 3)
    val = one_hot(batches(images[::2], labels[::2], 9), 3)
    with open("params.yaml", encoding="utf-8") as f:
        phase = params.validate(yaml.safe_load(f))["finetune"]
    phase.update(optimizer="sgd", learning_rate=1.0, epochs=2, patience=0,  # destructive
                 schedule="constant", warmup_epochs=0)
    before = model.predict(images, verbose=0)
    assert_informative(before, labels)
    with open_live(str(tmp_path / "live")) as live:
        metrics = finetune(model, train, val, phase, 20, live, {"epochs_run": 4, "best_epoch": 3})
    assert metrics["reverted_to_start"] == 1 and metrics["best_epoch"] == 3
    assert metrics["epochs_run"] == 2 and metrics["unfrozen_layers"] == 20
    history = live_history(tmp_path / "live")
    assert [row["epoch"] for row in history] == [4, 5]  # epochs 5 and 6, after transfer's 4
    assert min(row["val_loss"] for row in history) > metrics["best_val_loss"]
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)


def test_features_beyond_float16_range_stop_the_stage():
    assert float16_rows(np.array([[1.5, -70000.0]]) / 2, "train.npy").dtype == np.float16
    with pytest.raises(UserError, match=r"train.npy: .*7e\+04.*float16"):
        float16_rows(np.array([[1.5, -70000.0]]), "train.npy")
    with pytest.raises(UserError, match="nan"):
        float16_rows(np.array([[np.nan]]), "train.npy")


def test_the_below_probe_note_is_not_fooled_by_float32_rounding():
    assert below_probe_note(53 / 55, float(np.float32(53 / 55))) == ""
    assert "below the linear probe on val (0.9455 against 0.9636)" in below_probe_note(53 / 55,
                                                                                       52 / 55)


def test_the_final_model_is_the_candidate_that_gets_val_right(tmp_path):
    """keep_best with real models: a fine-tuned model that fine-tuning broke loses to the
    transfer model saved before it, and the kept one is the object that gets saved."""
    from imgclf.compute import set_seed
    from imgclf.finetuning import keep_best
    from tests.informative import trained_classifier

    set_seed(0)
    good = trained_classifier()
    images, labels = separable_images(3, 10, seed=3)
    images = images.astype("float32")
    assert_informative(good.predict(images, verbose=0), labels)
    good.save(tmp_path / "transfer.keras")
    broken = trained_classifier()
    head = broken.get_layer("head")
    head.set_weights([np.roll(w, 1, axis=-1) for w in head.get_weights()])  # classes swapped
    metrics = {"reverted_to_start": 0}
    final = keep_best(broken, metrics, str(tmp_path / "transfer.keras"), None,
                      (images, labels), 8)
    assert metrics["kept"] == "transfer" and metrics["kept_val_accuracy"] == 1.0, metrics
    assert "finetuned against transfer: 0 won" in metrics["kept_because"]
    np.testing.assert_array_equal(final.predict(images, verbose=0).argmax(axis=1), labels)
    metrics = {"reverted_to_start": 0}
    assert keep_best(good, metrics, str(tmp_path / "transfer.keras"), broken,
                     (images, labels), 8) is not broken
    assert metrics["kept"] == "transfer"  # the probe slot: broken, so transfer beats it


def test_a_kept_probe_built_under_mixed_precision_is_saved_in_float32(tmp_path):
    import keras

    from imgclf.finetuning import keep_best
    from tests.informative import trained_classifier

    images, labels = separable_images(3, 10, seed=3)
    images = images.astype("float32")
    broken = trained_classifier()
    head = broken.get_layer("head")
    head.set_weights([np.roll(w, 1, axis=-1) for w in head.get_weights()])
    broken.save(tmp_path / "transfer.keras")
    keras.mixed_precision.set_global_policy("mixed_float16")  # as compute.apply sets it on a GPU
    try:
        probe = trained_classifier()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert probe.get_layer("backbone").compute_dtype == "float16"
    metrics = {"reverted_to_start": 1}
    final = keep_best(None, metrics, str(tmp_path / "transfer.keras"), probe, (images, labels), 8)
    assert metrics["kept"] == "probe" and metrics["probe_val_accuracy"] == 1.0, metrics
    assert final.get_layer("backbone").compute_dtype == "float32"
