"""DVC's own tools see a run: dvclive's files in `dvc exp show` and `dvc plots`, written each
epoch while the run goes on, and the model as a registry artifact (real DVC, real training)."""
import json
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
def test_an_experiment_updates_its_metrics_every_epoch_while_it_runs(dvc_repo):
    process = subprocess.Popen(["dvc", "exp", "run", "-S", "transfer.epochs=60",
                                "-S", "transfer.patience=0"], cwd=dvc_repo,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    live = dvc_repo / "dvclive" / "transfer" / "metrics.json"
    steps_seen = set()
    while process.poll() is None:
        try:
            steps_seen.add(json.loads(live.read_text())["step"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass  # not written yet, or caught mid-write
        time.sleep(0.05)
    assert process.returncode == 0
    assert len(steps_seen) >= 10, sorted(steps_seen)  # seen growing, epoch by epoch


@pytest.mark.slow
def test_the_model_is_an_artifact_that_dvc_artifacts_get_fetches(dvc_repo, tmp_path):
    run(dvc_repo, "git", "tag", "-a", "image-classifier@v1.0.0", "-m", "first model")
    run(tmp_path, "dvc", "artifacts", "get", str(dvc_repo), "image-classifier",
        "-o", str(tmp_path / "model.keras"))
    assert (tmp_path / "model.keras").read_bytes() == (dvc_repo / "models" / "model.keras").read_bytes()
