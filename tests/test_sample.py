"""The sample's folder is the default data.dir, so it is the first folder a user fills: it is
no DVC output, and a photo put into it (or into data/, or a folder of the user's) survives
every command of the documented workflow."""
import os
import re
import time

import pytest
import yaml
from PIL import Image

from imgclf import params
from imgclf.errors import UserError
from imgclf.sample import write_digits
from tests.conftest import make_pipeline_repo, run


def test_the_stage_rewrites_its_own_files_and_never_touches_others(tmp_path):
    output = str(tmp_path / "sample")
    assert write_digits(output, 16) == (1797, [])
    mine = tmp_path / "sample" / "3" / "my_photo.jpg"
    Image.new("RGB", (30, 30), (9, 9, 9)).save(mine)
    count, others = write_digits(output, 24)  # its own files, at another resolution: replaced
    assert (count, others) == (1797, [str(mine)])
    with Image.open(os.path.join(output, "3", "0003.png")) as image:
        assert image.size == (24, 24)
    assert mine.exists()
    edited = tmp_path / "sample" / "5" / "0005.png"
    Image.new("L", (24, 24), 0).save(edited)  # a file of the sample's name, other content
    with pytest.raises(UserError, match=r"0005.png: a file the sample stage did not write"):
        write_digits(output, 16)
    with Image.open(edited) as image:
        assert image.size == (24, 24) and image.getextrema() == (0, 0)
    edited.unlink()
    os.symlink(tmp_path / "sample" / "3" / "0003.png", edited)  # a link: the user's
    with pytest.raises(UserError, match=r"0005.png: a file the sample stage did not write"):
        write_digits(output, 16)
    assert os.path.islink(edited)


PHOTOS = ["data/holiday.jpg", "data/sample/7/a.jpg", "data/sample/7/b.png",
          "data/sample/7/c.jpg", "data/sample/7/more/d.jpg", "my_photos/cat/e.jpg"]
LATE = "data/sample/3/late.jpg"  # put there after the last commit


def missing(repo, names):
    return [name for name in names if not (repo / name).is_file()]


@pytest.mark.slow
def test_photos_survive_repro_exp_run_the_queue_and_exp_apply(tmp_path, keras_home):
    def small(values):
        values["sample"]["resolution"] = 16
        values["image_size"] = values["preprocess"]["resolution"] = 32

    repo = make_pipeline_repo(tmp_path, small)
    # The stages up to preprocess: every data/ output, and `dvc exp apply` finds each stage's
    # outputs in the cache (it fails on stages that never ran).
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    pipeline = {"stages": {name: pipeline["stages"][name]
                           for name in ("weights", "sample", "split", "preprocess")}}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    env = {"KERAS_HOME": keras_home}
    run(repo, "dvc", "repro", env=env)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "the sample, prepared")
    for number, name in enumerate(PHOTOS):  # after a run, as a user would
        os.makedirs((repo / name).parent, exist_ok=True)
        Image.new("RGB", (40, 40), (30 * number, 9, 9)).save(repo / name)
    output = run(repo, "dvc", "repro", env=env)
    assert "4 other image file(s) there, e.g. data/sample/7/a.jpg" in output  # not data/'s
    assert missing(repo, PHOTOS) == []
    manifest = (repo / "data" / "split" / "manifest.csv").read_text()
    assert "7/more/d.jpg" in manifest and "7/0007.png" in manifest
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "with the photos")
    Image.new("RGB", (40, 40), (1, 2, 3)).save(repo / LATE)
    photos = PHOTOS + [LATE]

    run(repo, "dvc", "exp", "run", "-S", "seed=1", env=env)
    assert missing(repo, photos) == []
    run(repo, "dvc", "exp", "run", "--queue", "-n", "queued", "-S", "seed=2", env=env)
    run(repo, "dvc", "queue", "start", env=env)
    deadline = time.time() + 300
    while re.search(r"\b(Queued|Running)\b", run(repo, "dvc", "queue", "status")):
        assert time.time() < deadline, run(repo, "dvc", "queue", "status")
        time.sleep(2)
    assert "Failed" not in run(repo, "dvc", "queue", "status")
    assert missing(repo, photos) == []
    run(repo, "dvc", "exp", "apply", "queued", env=env)
    assert "seed: 2" in (repo / "params.yaml").read_text()
    assert missing(repo, photos) == []
    run(repo, "dvc", "checkout", "--force", env=env)
    assert missing(repo, photos) == []


@pytest.mark.parametrize("data_dir", ["data/prepared", "data/split/more", "models/export/x",
                                      "dvclive/training/x"])
def test_a_data_dir_inside_another_stage_output_is_refused(data_dir, monkeypatch):
    from tests.informative import ROOT

    monkeypatch.chdir(ROOT)
    values = params.load()
    values["data"]["dir"] = data_dir
    with pytest.raises(UserError, match=rf"data.dir '{data_dir}' is inside .*, an output of the "
                                        r"\w+ stage, which DVC deletes"):
        params.validate(values)
