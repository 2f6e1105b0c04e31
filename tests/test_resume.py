"""A run killed in the middle of fine-tuning resumes where it stopped and ends where an
uninterrupted run ends (real DVC, real training, SIGKILL)."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from tests.conftest import run, stages_run

FINETUNE_EPOCHS = 5


def longer_finetune(repo):
    with open(repo / "params.yaml", encoding="utf-8") as f:
        values = yaml.safe_load(f)
    values["finetune"].update(epochs=FINETUNE_EPOCHS, patience=2)
    with open(repo / "params.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(values, f, sort_keys=False)


def kill_after_backup(repo, epoch, timeout=600):
    """Start `dvc repro`, SIGKILL it and its stages once finetune's backup holds `epoch`."""
    process = subprocess.Popen(["dvc", "repro"], cwd=repo, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = repo / "backups" / "finetune" / "latest"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if latest.exists() and latest.read_text() == f"epoch-{epoch}":
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.02)
    raise AssertionError(f"finetune never saved epoch {epoch} (dvc repro: {process.poll()})")


def results(repo):
    """Every figure the run ends with, and the loss of every epoch of both phases."""
    finetune = json.loads((repo / "metrics" / "finetune.json").read_text())
    finetune.pop("seconds")
    history = repo / "dvclive" / "training" / "plots" / "metrics"
    return (finetune, (repo / "metrics" / "metrics.json").read_text(),
            (history / "train" / "loss.tsv").read_text(), (history / "eval" / "loss.tsv").read_text())


@pytest.mark.slow
def test_a_killed_finetune_resumes_at_the_next_epoch_and_ends_the_same(dvc_repo, tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    shutil.copytree(dvc_repo, uninterrupted, symlinks=True)
    longer_finetune(uninterrupted)
    run(uninterrupted, "dvc", "repro")
    expected = results(uninterrupted)

    longer_finetune(dvc_repo)
    transfer_epochs = json.loads((dvc_repo / "metrics" / "transfer.json").read_text())["epochs_run"]
    kill_after_backup(dvc_repo, transfer_epochs + 2)  # after fine-tuning's second epoch
    # Nothing the killed stage half wrote counts as done: DVC still sees it to run.
    assert "finetune" in run(dvc_repo, "dvc", "status")
    output = run(dvc_repo, "dvc", "repro")
    assert stages_run(output) >= {"finetune", "evaluate"} and "transfer" not in stages_run(output)
    assert f"resuming after epoch {transfer_epochs + 2}" in output
    assert results(dvc_repo) == expected
    assert not (dvc_repo / "backups" / "finetune").exists()  # a finished stage leaves none


@pytest.mark.slow
def test_a_backup_made_from_other_params_is_not_resumed(dvc_repo):
    longer_finetune(dvc_repo)
    transfer_epochs = json.loads((dvc_repo / "metrics" / "transfer.json").read_text())["epochs_run"]
    kill_after_backup(dvc_repo, transfer_epochs + 2)
    with open(dvc_repo / "params.yaml", encoding="utf-8") as f:
        values = yaml.safe_load(f)
    values["finetune"]["learning_rate"] /= 2
    with open(dvc_repo / "params.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(values, f, sort_keys=False)
    output = run(dvc_repo, "dvc", "repro")
    assert "backup made from other params or inputs; starting afresh" in output
    assert "resuming" not in output
    finetune = json.loads((dvc_repo / "metrics" / "finetune.json").read_text())
    assert finetune["epochs_run"] >= 3  # trained from its first epoch again
