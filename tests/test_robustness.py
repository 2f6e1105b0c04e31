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
