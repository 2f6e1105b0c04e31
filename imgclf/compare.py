"""Compare experiments as one Markdown table: a row per experiment, test scores of the linear
probe and of the model before and after fine-tuning, the params that differ between rows, and
the wall time of the work.

    dvc exp run --queue -S model=vgg16,resnet50,xception && dvc queue start
    python -m imgclf.compare            # after the queue has finished
"""
import sys

import yaml

SCORES = ["accuracy", "precision", "recall", "f1"]
MULTI_LABEL_SCORES = ["f1_macro", "map", "subset_accuracy", "hamming_loss"]  # imgclf.multilabel
TIMED_STAGES = ["features", "transfer", "finetune"]


def lookup(row, key, file=None):
    """A value from a dvc.api.exp_show() row, whose columns are 'key' when the name is
    unique and 'file:key' when several files have it."""
    if file and f"{file}:{key}" in row:
        return row[f"{file}:{key}"]
    return row.get(key)


def flat_keys(values, prefix=""):
    """DVC's dotted param names. Not pandas.json_normalize: it drops an empty section
    (backbones.vgg16: {}), which DVC lists as a param."""
    keys = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            keys += flat_keys(value, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def _cell(value):
    if value is None or value in ("-", "!", "None"):  # how DVC marks a missing value
        return "—"
    if isinstance(value, float):  # DVC reports every number as a float
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value)


def comparison_table(rows, param_keys):
    """Markdown for experiment rows (dicts as dvc.api.exp_show returns them)."""
    rows = [row for row in rows if row.get("rev") != "workspace"]
    differing = [key for key in param_keys if key != "model" and
                 len({repr(lookup(row, key)) for row in rows}) > 1]
    multi_label = any(lookup(row, "f1_macro", "metrics/metrics.json") is not None for row in rows)
    scores = MULTI_LABEL_SCORES if multi_label else SCORES
    probe = scores[:2] if multi_label else ["accuracy", "f1"]
    header = (["experiment", "model", *differing, *(f"probe {s}" for s in probe)]
              + [f"transfer {s}" for s in scores] + [f"fine-tuned {s}" for s in scores]
              + ["time (s)"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        name = row.get("Experiment") or row.get("rev")
        times = [lookup(row, "seconds", f"metrics/{stage}.json") for stage in TIMED_STAGES]
        cells = ([name, lookup(row, "model")] + [lookup(row, key) for key in differing]
                 + [lookup(row, f"probe_{s}") for s in probe]
                 + [lookup(row, f"transfer_{s}") for s in scores]
                 + [lookup(row, s, "metrics/metrics.json") for s in scores])
        # A queued, running or failed experiment has no numbers (DVC shows "-" or None).
        timed = all(isinstance(t, (int, float)) for t in times)
        cells = [_cell(cell) for cell in cells] + [f"{sum(times):.1f}" if timed else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    import dvc.api

    with open("params.yaml", encoding="utf-8") as f:
        param_keys = flat_keys(yaml.safe_load(f))
    rows = dvc.api.exp_show()
    if len(rows) <= 2:
        sys.exit("compare: no experiments yet; run some, e.g. "
                 "dvc exp run --queue -S model=mobilenet,mobilenet_v2 && dvc queue start")
    print(comparison_table(rows, param_keys))


if __name__ == "__main__":
    main()
