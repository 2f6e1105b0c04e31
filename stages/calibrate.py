"""calibrate: the model the finetune stage kept, made to say how sure it is and when an image
is like none it was trained on (docs/calibration.md). Its logits are divided by the
temperature that fits val best, where it lowers held-out val's loss too (imgclf.calibration;
folded into the head's last layer, so every export gives calibrated probabilities), and an
"unknown" score and decision are added on its backbone's pooled features, with the threshold
that keeps evaluate.known_kept of val (imgclf.unknown); where the probe or transfer model was
kept (metrics/finetune.json), the train images' leave-one-out scores may raise that
threshold, never lower it.

Writes models/model.keras (outputs: probabilities, unknown_score, unknown) and
metrics/calibration.json.
"""
from imgclf import calibration
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.dataset import batches, read_split
from imgclf.errors import run_stage
from imgclf.files import read_json, replaced_when_done, write_json
from imgclf.unknown import leave_one_out_scores, set_threshold, with_references

PREPARED = "data/prepared"
SELECTED = "models/selected.keras"
FINETUNE_METRICS = "metrics/finetune.json"
MODEL = "models/model.keras"
METRICS = "metrics/calibration.json"


def main():
    params = params_lib.load()
    settings = params["evaluate"]
    selected = model_lib.load(SELECTED)
    multi_label = model_lib.is_multi_label(selected)
    model = with_references(selected, read_split(PREPARED, "train")[0], settings["batch_size"])
    val_images, val_labels, _ = read_split(PREPARED, "val")
    val = model_lib.outputs(model, batches(val_images, val_labels, settings["batch_size"]))
    before = val["probabilities"]
    temperature = calibration.fit_temperature(before, val_labels, multi_label)
    model_lib.set_temperature(model, temperature)
    after = calibration.scaled(before, temperature, multi_label)
    # A backbone trained on train (fine-tuned, or weights: none) scores its images too low.
    kept = read_json(FINETUNE_METRICS).get("kept")
    frozen = kept in ("probe", "transfer") and params["weights"] != "none"
    train_scores = leave_one_out_scores(model) if frozen else None
    figures = set_threshold(model, val["unknown_score"], settings["known_kept"], train_scores)
    with replaced_when_done(MODEL) as tmp:
        model.save(tmp)
    metrics = {"temperature": temperature,
               **calibration.val_figures(before, after, val_labels, multi_label), **figures}
    write_json(METRICS, metrics)
    shown = temperature if not multi_label else max(temperature, key=lambda t: abs(t - 1))
    return (f"calibrate: temperature {shown:.3f}{' (farthest from 1)' if multi_label else ''}, "
            f"val ECE {metrics['val_ece_before']:.4f} -> {metrics['val_ece']:.4f}; unknown above "
            f"{figures['unknown_threshold']:.4f} (keeps {figures['val_known_kept']:.3f} of val) "
            f"-> {MODEL}")


if __name__ == "__main__":
    run_stage(main)
