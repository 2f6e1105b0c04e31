"""Interrupted writes leave nothing that looks complete; the same seed gives the same run."""
import json
import os

import pytest

from imgclf.files import replaced_when_done
from tests.conftest import run


def test_an_interrupted_write_leaves_the_old_output_and_no_partial_one(tmp_path):
    path = tmp_path / "models" / "model.keras"
    path.parent.mkdir()
    path.write_text("complete, from the last run")
    with pytest.raises(KeyboardInterrupt):
        with replaced_when_done(str(path)) as tmp:
            assert tmp.endswith(".tmp.keras")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("half of a new")
            raise KeyboardInterrupt  # Ctrl-C in the middle of saving
    assert path.read_text() == "complete, from the last run"
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]

    with replaced_when_done(str(tmp_path / "folder")) as tmp:  # folders too
        os.makedirs(tmp)
        (tmp_path / "folder.tmp" / "x").write_text("done")
    assert (tmp_path / "folder" / "x").read_text() == "done"


@pytest.mark.slow
def test_the_same_seed_gives_the_same_metrics(tiny_dvc_repo, dvc_repo):
    """Two full runs of the tiny pipeline (one in the session's repo, one forced in its
    copy) give the same split and the same numbers, to the last digit."""
    outputs = ["metrics/metrics.json", "plots/confusion.csv",  # losses to 16 digits, every epoch:
               *(f"dvclive/training/plots/metrics/{split}/loss.tsv" for split in ["train", "eval"])]

    def results(repo):
        split = (repo / "data" / "split" / "manifest.csv").read_text()
        return split, {path: (repo / path).read_text() for path in outputs}

    first = results(tiny_dvc_repo)
    assert json.loads(first[1]["metrics/metrics.json"])["accuracy"] >= 0.9
    run(dvc_repo, "dvc", "repro", "--force")
    assert results(dvc_repo) == first


def test_every_temporary_name_the_project_uses_is_ignored_by_git():
    from tests.informative import ROOT

    if not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout (an unpacked archive): nothing to ignore files")
    names = ["models/model.tmp.keras", "models/transfer.tmp.keras", "metrics/metrics.tmp.json",
             "plots/report.tmp.html", "plots/confusion.tmp.csv", "models/probe.tmp.npz",
             "data/prepared.tmp/train/images.npy", "data/sample/3/0003.tmp.png",
             "models/export.tmp/labels.txt", "backups/finetune/latest.tmp", "data/weights.tmp.json"]
    result = run(ROOT, "git", "check-ignore", "--no-index", *names)
    assert sorted(result.split()) == sorted(names)


def test_a_failed_preprocess_leaves_no_temporary_copy(tmp_path):
    from imgclf.errors import UserError
    from imgclf.prepare import prepare
    from imgclf.splitting import split_dataset
    from tests.conftest import write_images

    source = write_images(str(tmp_path / "photos"), ["a", "b"], per_class=10)
    split_dataset(source, str(tmp_path / "split"), (0.5, 0.5), seed=0)
    with open(os.path.join(source, "b", "img_009.png"), "ab") as f:
        f.write(b"changed after the split")  # stops preprocess in the middle of a split
    with pytest.raises(UserError, match="changed since the split"):
        prepare(str(tmp_path / "split"), source, str(tmp_path / "prepared"), 8, processes=1)
    assert sorted(os.listdir(tmp_path)) == ["photos", "split"]
