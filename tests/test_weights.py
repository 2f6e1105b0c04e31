"""Backbone weights: a weights file is a dependency (DVC sees it replaced under the same path)
and part of a resume's fingerprint with the stage's script and the library versions; a
damaged or mismatched file, and constructor arguments Keras has no weights for, stop the run
with one line."""
import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from imgclf import backup, compute, model_params
from imgclf.backbones import build_backbone
from imgclf.errors import UserError
from tests.conftest import make_pipeline_repo
from tests.informative import MOBILENET_V2_035, ROOT, imagenet_file, pretrained_weights

MOBILENET_075 = "mobilenet_7_5_224_tf_no_top.h5"


def test_a_weights_file_replaced_under_its_path_changes_what_features_and_finetune_depend_on(
        tmp_path):
    repo = make_pipeline_repo(tmp_path, lambda values: values.update(weights="w.h5"))
    (repo / "w.h5").write_bytes(b"first weights")
    run = lambda *command: subprocess.run(command, cwd=repo, capture_output=True, text=True)
    assert run("dvc", "repro", "weights").returncode == 0
    before = (repo / "data" / "weights.json").read_text(encoding="utf-8")
    (repo / "w.h5").write_bytes(b"other weights")  # same path, same params.yaml
    result = run("dvc", "repro", "weights")
    assert result.returncode == 0, result.stderr
    after = (repo / "data" / "weights.json").read_text(encoding="utf-8")
    assert before != after and hashlib.sha256(b"other weights").hexdigest() in after
    with open(repo / "dvc.yaml", encoding="utf-8") as f:
        stages = yaml.safe_load(f)["stages"]
    for name in ("features", "finetune"):
        assert "data/weights.json" in stages[name]["deps"], name
    # Unchanged weights leave the output byte-identical, so DVC skips what follows.
    assert run("dvc", "repro", "weights").returncode == 0
    assert (repo / "data" / "weights.json").read_text(encoding="utf-8") == after


def test_the_resume_fingerprint_covers_script_weights_file_versions_and_compute(tmp_path,
                                                                              monkeypatch):
    script = tmp_path / "finetune.py"
    script.write_text("print('one')\n", encoding="utf-8")
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"a")
    settings = {"distribute": "one_device", "mixed_precision": False, "xla": False,
                "deterministic": True}
    values = {"weights": str(weights), "finetune": {"epochs": 3}, "compute": settings}
    here = compute.resolved(settings, *compute.apply(settings))
    first = backup.fingerprint(values, [str(script)], here)
    assert backup.fingerprint(values, [str(script)], here) == first
    script.write_text("print('two')\n", encoding="utf-8")
    second = backup.fingerprint(values, [str(script)], here)
    assert second != first
    weights.write_bytes(b"b")
    third = backup.fingerprint(values, [str(script)], here)
    assert third != second
    # The same params resolved otherwise (mixed_precision: auto on a GPU): another backup.
    try:
        gpu_like = compute.resolved(settings, *compute.apply({**settings, "mixed_precision": True}))
    finally:
        compute.apply(settings)  # float32 again, for the tests after this one
    assert gpu_like["dtype_policy"] == "mixed_float16"
    assert backup.fingerprint(values, [str(script)], gpu_like) != third
    assert backup.fingerprint(values, [str(script)], {**here, "replicas": 2}) != third
    monkeypatch.setattr(np, "__version__", "0.0.1")
    assert backup.fingerprint(values, [str(script)], here) != third


def test_a_weights_file_of_another_architecture_is_one_line():
    path = pretrained_weights()  # MobileNetV2-0.35's, given to MobileNet
    with pytest.raises(UserError, match=rf"weights '{path}' does not fit mobilenet with "
                                        r"backbones.mobilenet \{'alpha': 0.75\} \(Layer count"):
        build_backbone("mobilenet", path, 64, {"alpha": 0.75})


def test_files_that_are_not_this_backbones_keras_weights_are_one_line(tmp_path):
    import h5py
    import keras

    other = tmp_path / "other.weights.h5"  # Keras 3's format, from a tiny other model
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(other)
    foreign = tmp_path / "foreign.h5"  # HDF5, but not Keras weights
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    for path in (other, foreign):
        with pytest.raises(UserError, match=rf"weights '{path}' does not fit mobilenet_v2"):
            build_backbone("mobilenet_v2", str(path), 64, {"alpha": 0.35})
    with open(os.path.join(ROOT, "params.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    values["weights"] = str(tmp_path / "w.bin")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(UserError, match=r"weights is '.*w.bin'; expected .*\.weights\.h5, \.h5"):
        model_params.validate(values)


def test_a_truncated_weights_file_is_one_line(tmp_path):
    path = tmp_path / "cut.h5"
    with open(pretrained_weights(), "rb") as f:
        path.write_bytes(f.read()[:500_000])
    with pytest.raises(UserError, match=r"weights '.*cut.h5' cannot be read as a Keras weights "
                                        r"file \(Unable to synchronously open file \(truncated"):
        build_backbone("mobilenet_v2", str(path), 64, {"alpha": 0.35})


def test_a_download_cut_off_in_keras_cache_names_the_file_to_delete(tmp_path):
    # Keras reads KERAS_HOME at import: a fresh process with a cache holding a truncated file.
    good = imagenet_file(MOBILENET_075, "mobilenet")
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    shutil.copy(imagenet_file(MOBILENET_V2_035, "mobilenet_v2"), cache)  # an intact neighbour
    (cache / "imagenet_class_index.json").write_text("{}", encoding="utf-8")  # not weights
    with open(good, "rb") as f:
        (cache / MOBILENET_075).write_bytes(f.read()[:3_000_000])
    code = ("from imgclf.backbones import build_backbone\n"
            "from imgclf.errors import run_stage\n"
            "run_stage(lambda: build_backbone('mobilenet', 'imagenet', 64, {'alpha': 0.75}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "KERAS_HOME": str(tmp_path / "keras")})
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert last.startswith(f"error: the ImageNet weights of mobilenet in {cache / MOBILENET_075} "
                           "cannot be read (Unable to synchronously open file (truncated"), last
    assert last.endswith("delete the file and run again to download it afresh")


def test_a_second_process_waits_for_a_download_in_progress(tmp_path):
    """Two queue workers need the same weights: one is downloading (Keras writes straight to
    the cache's file name), the other must wait for it, not read the half-written file."""
    good = imagenet_file(MOBILENET_075, "mobilenet")
    cache = tmp_path / "keras" / "models"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras")}
    downloading = ("import shutil, sys, time\n"
                   "from imgclf.backbones import download_lock\n"
                   "with download_lock():\n"
                   "    with open(sys.argv[2], 'wb') as f, open(sys.argv[1], 'rb') as source:\n"
                   "        f.write(source.read(3_000_000))\n"  # as far as the download got
                   "        f.flush()\n"
                   "        print('half written', flush=True)\n"
                   "        time.sleep(8)\n"
                   "        f.write(source.read())\n")
    first = subprocess.Popen([sys.executable, "-c", downloading, good, str(cache / MOBILENET_075)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "half written"
        code = ("from imgclf.backbones import build_backbone\n"
                "from imgclf.errors import run_stage\n"
                "run_stage(lambda: print(build_backbone('mobilenet', 'imagenet', 64, "
                "{'alpha': 0.75}).count_params()))")
        second = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                text=True, env=env, timeout=300)
    finally:
        first.wait(timeout=60)
    assert second.returncode == 0, second.stderr[-2000:]
    assert int(second.stdout.split()[0]) > 1_000_000  # the whole backbone, its weights loaded


@pytest.mark.parametrize("model, args, weights, message", [
    ("mobilenet", {"alpha": 0.3}, "imagenet",
     r"backbones\.mobilenet\.alpha is 0\.3; expected with weights: imagenet one of: 0\.25, 0\.5, "
     r"0\.75, 1\.0"),
    ("mobilenet", {"depth_multiplier": 2}, "imagenet", r"backbones\.mobilenet\.depth_multiplier is 2"),
    ("mobilenet_v2", {"alpha": 0.6}, "imagenet", r"backbones\.mobilenet_v2\.alpha is 0\.6; .*1\.4"),
    ("mobilenet_v3_small", {"alpha": 0.5}, "imagenet", r"mobilenet_v3_small\.alpha is 0\.5"),
    ("mobilenet", {"alpha": "wide"}, "none", r"backbones\.mobilenet\.alpha is 'wide'; expected a number"),
    ("mobilenet_v3_large", {"minimalistic": "yes"}, "none", r"minimalistic is 'yes'; expected one of"),
    ("mobilenet", {"dropout": 2}, "none", r"backbones\.mobilenet\.dropout is 2"),
    ("mobilenet_v3_small", {"alpha": 0.75, "minimalistic": True}, "imagenet",
     r"mobilenet_v3_small\.alpha is 0\.75; expected with weights: imagenet one of: 1\.0"),
])
def test_backbone_arguments_keras_cannot_build_are_one_line(model, args, weights, message):
    with open(os.path.join(ROOT, "params.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    values.update(model=model, weights=weights)
    values["backbones"][model] = args
    with pytest.raises(UserError, match=message):
        model_params.validate(values)


def test_any_alpha_builds_with_random_weights():
    with open(os.path.join(ROOT, "params.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    values.update(weights="none")
    values["backbones"]["mobilenet"] = {"alpha": 0.3}
    model_params.validate(values)
    assert build_backbone("mobilenet", "none", 64, {"alpha": 0.3}).count_params() > 0


@pytest.mark.parametrize("seed, ok", [(2**32 - 1, True), (2**32, False)])
def test_a_seed_beyond_what_tensorflow_takes_is_one_line(seed, ok):
    with open(os.path.join(ROOT, "params.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    values["seed"] = seed
    if ok:
        model_params.validate(values)
        return
    with pytest.raises(UserError, match=r"seed is 4294967296; expected an integer from 0 to 4294967295"):
        model_params.validate(values)
