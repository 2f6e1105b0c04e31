import re
import time

import pytest

from imgclf.compare import comparison_table, flat_keys
from tests.conftest import run


def exp_row(name, model, unfreeze, accuracy):
    # The shape dvc.api.exp_show() gives: ambiguous names qualified by their file.
    return {"Experiment": name, "rev": name or "main", "model": model,
            "finetune.unfreeze": float(unfreeze), "head.dense": "[256]",
            "transfer_accuracy": accuracy - 0.1, "transfer_precision": 0.5,
            "transfer_recall": 0.5, "transfer_f1": 0.5, "accuracy": accuracy,
            "precision": 0.75, "recall": 0.7, "f1": 0.725, "probe_accuracy": accuracy - 0.05,
            "probe_f1": 0.6,
            "metrics/features.json:seconds": 1.0, "metrics/transfer.json:seconds": 2.0,
            "metrics/finetune.json:seconds": 3.25}


def test_table_has_a_row_per_experiment_and_only_the_params_that_differ():
    running = {"Experiment": "exp-3", "rev": "abc", "model": "xception",
               "finetune.unfreeze": 15.0, "head.dense": "[256]", "accuracy": "-",
               "metrics/transfer.json:seconds": "-"}
    rows = [{"rev": "workspace"}, exp_row(None, "vgg16", 15, 0.9),
            exp_row("exp-1", "resnet50", 15, 0.95), exp_row("exp-2", "vgg16", 30, 0.97), running]
    lines = comparison_table(rows, ["model", "finetune.unfreeze", "head.dense"]).splitlines()
    assert lines[0].split(" | ")[:3] == ["| experiment", "model", "finetune.unfreeze"]
    assert "head.dense" not in lines[0]
    assert lines[0].split(" | ")[3:5] == ["probe accuracy", "probe f1"]
    assert lines[2] == ("| main | vgg16 | 15 | 0.85 | 0.6 | 0.8 | 0.5 | 0.5 | 0.5 | 0.9 | 0.75 "
                        "| 0.7 | 0.725 | 6.2 |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| main", "| exp-1", "| exp-2", "| exp-3"]
    assert lines[-1].endswith("| — |")


def test_multi_label_runs_are_compared_on_their_own_scores():
    scores = {"f1_macro": 0.7, "map": 0.8, "subset_accuracy": 0.4, "hamming_loss": 0.19}
    row = {"Experiment": "exp-1", "rev": "exp-1", "model": "mobilenet",
           **{f"{prefix}{key}": value for prefix in ("", "transfer_", "probe_")
              for key, value in scores.items()},
           "metrics/features.json:seconds": 1.0, "metrics/transfer.json:seconds": 2.0,
           "metrics/finetune.json:seconds": 3.0}
    lines = comparison_table([row], ["model"]).splitlines()
    assert lines[0] == ("| experiment | model | probe f1_macro | probe map | transfer f1_macro | "
                        "transfer map | transfer subset_accuracy | transfer hamming_loss | "
                        "fine-tuned f1_macro | fine-tuned map | fine-tuned subset_accuracy | "
                        "fine-tuned hamming_loss | time (s) |")
    assert lines[2] == ("| exp-1 | mobilenet | 0.7 | 0.8 | 0.7 | 0.8 | 0.4 | 0.19 | 0.7 | 0.8 | "
                        "0.4 | 0.19 | 6.0 |")


def test_flat_keys_match_dvc_param_names():
    assert flat_keys({"model": "x", "head": {"dense": [1], "dropout": 0.5},
                      "backbones": {"vgg16": {}}}) == [
        "model", "head.dense", "head.dropout", "backbones.vgg16"]


@pytest.mark.slow
def test_compare_queued_experiments_with_real_dvc(dvc_repo):
    run(dvc_repo, "dvc", "exp", "run", "--queue", "-S", "model=mobilenet,mobilenet_v2",
        "-S", "finetune.unfreeze=2")
    run(dvc_repo, "dvc", "exp", "run", "--queue", "-S", "head.dropout=0.1")
    run(dvc_repo, "dvc", "queue", "start")
    deadline = time.time() + 600
    while re.search(r"\b(Queued|Running)\b", run(dvc_repo, "dvc", "queue", "status")):
        assert time.time() < deadline, run(dvc_repo, "dvc", "queue", "status")
        time.sleep(3)
    assert "Failed" not in run(dvc_repo, "dvc", "queue", "status")
    table = run(dvc_repo, "python", "-m", "imgclf.compare").strip().splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:4] == ["experiment", "model", "head.dropout", "finetune.unfreeze"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert len(rows) == 4  # the baseline and three experiments
    assert sorted((row[1], row[2], row[3]) for row in rows) == sorted([
        ("mobilenet", "0.5", "5"), ("mobilenet", "0.1", "5"), ("mobilenet", "0.5", "2"),
        ("mobilenet_v2", "0.5", "2")])
    # Every experiment learned the tiny dataset: test accuracy before and after fine-tuning.
    assert all(float(row[4]) >= 0.9 and float(row[8]) >= 0.9 for row in rows), table
