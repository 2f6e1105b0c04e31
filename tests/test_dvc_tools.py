"""DVC's own tools see a run: dvclive's files in `dvc exp show` and `dvc plots`, written each
epoch while the run goes on, and the model as a registry artifact (real DVC, real training)."""
import json
import re
import subprocess
import time

import pytest

from tests.conftest import run


def exp_show(repo):
    return json.loads(run(repo, "dvc", "exp", "show", "--json"))


def workspace_metrics(shown):
    workspace = next(row for row in shown if row["rev"] == "workspace")
    return {path: values["data"] for path, values in workspace["data"]["metrics"].items()}


@pytest.mark.slow
def test_exp_show_has_the_step_and_plots_draw_both_phases_as_one_history(dvc_repo):
    metrics = workspace_metrics(exp_show(dvc_repo))
    transfer = json.loads((dvc_repo / "metrics" / "transfer.json").read_text())
    finetune = json.loads((dvc_repo / "metrics" / "finetune.json").read_text())
    both = transfer["epochs_run"] + finetune["epochs_run"]
    assert metrics["dvclive/transfer/metrics.json"]["step"] == transfer["epochs_run"] - 1
    assert metrics["dvclive/training/metrics.json"]["step"] == both - 1
    assert set(metrics["dvclive/training/metrics.json"]["eval"]) == {"accuracy", "loss"}
    plots = json.loads(run(dvc_repo, "dvc", "plots", "show", "--json", "--split"))["data"]
    accuracy = plots["accuracy"][0]["anchor_definitions"]["<DVC_METRIC_DATA>"]  # its points
    for series in ["train/accuracy.tsv", "eval/accuracy.tsv"]:
        steps = [int(point["step"]) for point in accuracy if point["filename"] == series]
        assert steps == list(range(both)), series  # one axis, no gap or overlap at the boundary


@pytest.mark.slow
def test_a_queued_experiment_updates_its_metrics_every_epoch_while_it_runs(dvc_repo):
    """What the VS Code extension and Studio follow: dvclive's metrics.json in the queued
    experiment's temporary copy of the repository, rewritten as each epoch ends."""
    run(dvc_repo, "dvc", "exp", "run", "--queue", "-S", "transfer.epochs=80",
        "-S", "transfer.patience=0")
    # No pipes: `dvc queue start` leaves a worker running that would hold them open.
    subprocess.Popen(["dvc", "queue", "start"], cwd=dvc_repo, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    copies = dvc_repo / ".dvc" / "tmp" / "exps"
    steps_seen, deadline, next_status = set(), time.time() + 600, 0.0
    while time.time() < deadline:
        for live in copies.glob("tmp*/dvclive/transfer/metrics.json"):
            try:
                steps_seen.add(json.loads(live.read_text())["step"])
            except (OSError, ValueError, KeyError):
                pass  # not written yet, caught mid-write, or the copy just went away
        if time.time() > next_status:
            status = run(dvc_repo, "dvc", "queue", "status")
            if not re.search(r"\b(Queued|Running)\b", status):
                break
            next_status = time.time() + 2
        time.sleep(0.05)
    assert "Success" in status and "Failed" not in status, status
    assert len(steps_seen) >= 10, sorted(steps_seen)  # seen growing, epoch by epoch


@pytest.mark.slow
def test_the_model_is_an_artifact_that_dvc_artifacts_get_fetches(dvc_repo, tmp_path):
    run(dvc_repo, "git", "tag", "-a", "image-classifier@v1.0.0", "-m", "first model")
    run(tmp_path, "dvc", "artifacts", "get", str(dvc_repo), "image-classifier",
        "-o", str(tmp_path / "model.keras"))
    assert (tmp_path / "model.keras").read_bytes() == (dvc_repo / "models" / "model.keras").read_bytes()
