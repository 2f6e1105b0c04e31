"""One self-contained HTML page of a run: the verdict first (which model was kept and why,
its figure against the model before fine-tuning and the linear probe, the split scored, the
dataset's counts and skipped files), then metrics, plots and params, images embedded, so it
opens offline and can be mailed as one file."""
import base64
import html
import json
import os

from imgclf.scoring import val_accuracies


def _table(rows):
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def dataset_summary(split_dir, prepared_dir):
    """Images per split (data/split/manifest.csv) and files left out by split or
    preprocess, by reason (their skipped.csv)."""
    import pandas as pd

    manifest = pd.read_csv(os.path.join(split_dir, "manifest.csv"), keep_default_na=False)
    skipped = pd.concat([pd.read_csv(os.path.join(folder, "skipped.csv"), keep_default_na=False)
                         for folder in (split_dir, prepared_dir)])
    return {"images": {split: int(n) for split, n in manifest["split"].value_counts().items()},
            "skipped": {reason: int(n) for reason, n in skipped["reason"].value_counts().items()}}


def kept_model(finetune):
    """Which model is the final one, and why (metrics/finetune.json)."""
    names = {"probe": "the linear probe", "transfer": "the transfer model",
             "finetuned": "the fine-tuned model"}
    start = finetune["started_from"]
    if not finetune["unfrozen_layers"]:
        tuning = "finetune.unfreeze is 0: no fine-tuning"
    elif finetune["reverted_to_start"]:
        tuning = (f"no fine-tuning epoch beat the {start} model it started from on val loss "
                  f"({finetune['epochs_run']} epochs tried)")
    else:
        tuning = (f"fine-tuning from the {start} model ({finetune['unfrozen_layers']} backbone "
                  f"layers unfrozen) reached val loss {finetune['best_val_loss']:.4f} at epoch "
                  f"{finetune['best_epoch']} against its starting {finetune['start_val_loss']:.4f}")
    kept = finetune.get("kept", "transfer" if finetune["reverted_to_start"] else "finetuned")
    because = f"; {finetune['kept_because']}" if "kept_because" in finetune else ""
    return f"{names[kept]} ({tuning}{because})"


def scored_split(test_metrics):
    return "val (there is no test split)" if test_metrics["evaluated_on_val"] else "test"


def verdict(metrics, dataset):
    """The report's first lines, as HTML: every text in them escaped (file names and CSV cells
    reach it through the skipped files' reasons)."""
    escape = html.escape
    test, probe_val = metrics["test"], metrics["probe"]["val_accuracy"]
    split = escape(scored_split(test))
    key, name = ("f1_macro", "macro F1") if "f1_macro" in test else ("accuracy", "accuracy")
    lines = [f"Kept: {escape(kept_model(metrics['finetune']))}.",
             f"On the {split} split, {test['n_images']} images: {name} "
             f"<b>{test[key]:.4f}</b>; before fine-tuning {test['transfer_' + key]:.4f}"
             + (f"; linear probe {test['probe_' + key]:.4f}" if "probe_" + key in test else "")]
    on_val = val_accuracies(metrics["finetune"], metrics["probe"]) if probe_val else None
    if on_val and on_val[0] < on_val[1] - 1e-6:
        lines.append(f"<b>Below the linear probe on val</b> ({on_val[0]:.4f} against "
                     f"{on_val[1]:.4f}): the head or fine-tuning cost time for nothing.")
    audit = metrics.get("audit", {})
    if audit.get("enabled"):
        lines.append(f"Audit: {audit['label_issues']} likely label error(s), "
                     f"{audit.get('label_issues_test', 0)} in test; {audit['near_duplicates']} "
                     f"near-duplicate pair(s), {audit.get('near_duplicates_train_test', 0)} "
                     "across train and test (metrics/label_issues.csv, "
                     "metrics/near_duplicates.csv)")
    counts = ", ".join(f"{escape(split)} {n}" for split, n in dataset["images"].items())
    skipped = sum(dataset["skipped"].values())
    reasons = "; ".join(f"{n} {escape(reason)}" for reason, n in dataset["skipped"].items())
    lines.append(f"Dataset: {counts}; {skipped} file(s) left out" + (f" ({reasons})" if skipped else ""))
    return "<ul class=\"verdict\">" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


def reported_params(params):
    """Every section of params but the backbones other than the model's: what the plot stage
    depends on (dvc.yaml), so the table never shows a value of another run."""
    model = params["model"]
    return {**{key: value for key, value in params.items() if key != "backbones"},
            "backbones": {model: params["backbones"][model]}}


def html_report(metrics, dataset, params, pngs):
    """metrics: {name: {key: value}} (test, probe, transfer, finetune, ...), dataset:
    dataset_summary's, params: nested dict, pngs: {title: path}."""
    import pandas as pd

    sections = ["<h1>Image classifier: run report</h1>", verdict(metrics, dataset)]
    for name, values in metrics.items():
        rounded = [(k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in values.items()]
        if name == "test":  # the scored split: val when there is none
            name = f"scores on the {scored_split(values)} split"
        sections.append(f"<h2>{html.escape(name)}</h2>{_table(rounded)}")
    for title, path in pngs.items():
        with open(path, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        sections.append(f"<h2>{html.escape(title)}</h2><img src=\"data:image/png;base64,{data}\">")
    flat = pd.json_normalize(params).iloc[0].items()
    rows = [(key, json.dumps(value) if isinstance(value, (list, dict)) else value)
            for key, value in flat]
    sections.append(f"<h2>params</h2>{_table(rows)}")
    style = ("body{font-family:sans-serif;max-width:1400px;margin:auto}img{max-width:100%}"
             "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px;"
             "text-align:left}.verdict{font-size:1.15em;line-height:1.6}")
    # The page needs no script: the policy stops one that an unescaped text would let in.
    policy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    head = (f"<head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" "
            f"content=\"{policy}\"><style>{style}</style></head>")
    return f"<!DOCTYPE html><html>{head}<body>{''.join(sections)}</body></html>\n"
