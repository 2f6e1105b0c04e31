"""The sample's folder is the default data.dir: a photo a user drops into it is never deleted,
by the stage or by DVC; the run stops with one line instead."""
import os
import subprocess

import pytest
from PIL import Image

from imgclf import params
from imgclf.errors import UserError
from imgclf.sample import write_digits
from tests.conftest import make_pipeline_repo


def test_the_stage_rewrites_its_own_files_and_refuses_to_touch_others(tmp_path):
    output = str(tmp_path / "sample")
    assert write_digits(output, 16) == 1797
    assert write_digits(output, 24) == 1797  # its own files, at another resolution: replaced
    with Image.open(os.path.join(output, "3", "0003.png")) as image:
        assert image.size == (24, 24)
    mine = tmp_path / "sample" / "3" / "my_photo.jpg"
    Image.new("RGB", (30, 30), (9, 9, 9)).save(mine)
    with pytest.raises(UserError, match=r"my_photo.jpg in .*sample/ were not written by the "
                                        r"sample stage.*move them to a folder of your own"):
        write_digits(output, 16)
    assert mine.exists()
    mine.unlink()
    os.symlink(tmp_path, tmp_path / "sample" / "linked")  # a linked folder: the user's
    with pytest.raises(UserError, match=r"sample/linked in"):
        write_digits(output, 24)
    os.unlink(tmp_path / "sample" / "linked")
    edited = tmp_path / "sample" / "5" / "0005.png"
    Image.new("L", (24, 24), 0).save(edited)  # a file of the sample's name, other content
    with pytest.raises(UserError, match=r"0005.png in"):
        write_digits(output, 24)
    assert edited.exists()


def test_dvc_repro_keeps_a_photo_dropped_into_the_sample_folder(tmp_path):
    repo = make_pipeline_repo(tmp_path, lambda values: values["sample"].update(resolution=16))
    run = lambda *command: subprocess.run(command, cwd=repo, capture_output=True, text=True)
    assert run("dvc", "repro", "sample").returncode == 0
    mine = repo / "data" / "sample" / "7" / "holiday.jpg"
    sevens = len(os.listdir(mine.parent))
    Image.new("RGB", (30, 30), (200, 9, 9)).save(mine)
    result = run("dvc", "repro", "sample")
    assert result.returncode != 0
    assert "holiday.jpg in data/sample/ were not written by the sample stage" in result.stderr
    assert mine.exists() and len(os.listdir(mine.parent)) == sevens + 1


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
