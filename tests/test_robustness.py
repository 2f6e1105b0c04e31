"""Interrupted writes leave nothing that looks complete; the same seed gives the same run."""
import json
import os

import pytest

from imgclf.files import replaced_when_done
from tests.conftest import run, tiny_pipeline_repo


def test_an_interrupted_write_leaves_the_old_output_and_no_partial_one(tmp_path):
    path = tmp_path / "models" / "model.keras"
    path.parent.mkdir()
    path.write_text("complete, from the last run")
    with pytest.raises(KeyboardInterrupt):
        with replaced_when_done(str(path)) as tmp:
            assert tmp.endswith(".tmp.keras")
            with open(tmp, "w") as f:
                f.write("half of a new")
            raise KeyboardInterrupt  # Ctrl-C in the middle of saving
    assert path.read_text() == "complete, from the last run"
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]

    with replaced_when_done(str(tmp_path / "folder")) as tmp:  # folders too
        os.makedirs(tmp)
        (tmp_path / "folder.tmp" / "x").write_text("done")
    assert (tmp_path / "folder" / "x").read_text() == "done"


def test_the_same_seed_gives_the_same_metrics(tmp_path):
    repo = tiny_pipeline_repo(tmp_path)
    outputs = ["metrics/metrics.json", "plots/history/transfer.csv", "plots/history/finetune.csv",
               "plots/confusion.csv"]  # losses to 16 digits, every epoch, both phases

    def results():
        split = sorted(str(p.relative_to(repo)) for p in (repo / "data" / "split").rglob("*.png"))
        return split, {path: (repo / path).read_text() for path in outputs}

    run(repo, "dvc", "repro")
    first = results()
    assert json.loads(first[1]["metrics/metrics.json"])["n_test"] > 0
    run(repo, "dvc", "repro", "--force")
    assert results() == first
