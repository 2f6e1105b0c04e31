"""finetune: the full model (resize, the backbone's preprocess_input, backbone, and the
trained head or, with finetune.start: probe, the linear probe) with the top finetune.unfreeze
backbone layers unfrozen, trained on augmented images at a low learning rate; then the final
model, whichever of the probe, transfer and fine-tuned models val shows better (imgclf.selection).

Writes models/selected.keras (the calibrate stage's input), models/transfer.keras (before
fine-tuning), metrics/finetune.json and dvclive/training/ (transfer's dvclive history
continued on the same step axis). A killed run resumes from backups/finetune/ (imgclf.backup)."""
from imgclf import backup as backup_lib
from imgclf import compute
from imgclf import model as model_lib
from imgclf import model_params
from imgclf.build import assemble, from_scratch, probe_candidate, scratch_phase, start_model
from imgclf.dataset import read_classes, read_split
from imgclf.errors import run_stage
from imgclf.files import read_json, replaced_when_done, write_json
from imgclf.finetuning import finetune, image_batches, keep_best, summary
from imgclf.training import class_weights, continue_live, positive_weights, set_val_thresholds
from imgclf.unfreeze import top_layer_count

PREPARED = "data/prepared"
HEAD = "models/head.keras"
PROBE = "models/probe.npz"
TRANSFER_METRICS = "metrics/transfer.json"
MODEL = "models/selected.keras"  # the calibrate stage makes models/model.keras of it
TRANSFER_MODEL = "models/transfer.keras"
METRICS = "metrics/finetune.json"
TRANSFER_LIVE = "dvclive/transfer"
LIVE = "dvclive/training"
BACKUP = "backups/finetune"


def main():
    params = model_params.load()
    phase = params["finetune"]
    strategy, jit_compile = compute.apply(params["compute"])
    compute.set_seed(params["seed"], compute.deterministic_ops(params["compute"]["deterministic"]))
    class_names = read_classes(PREPARED)
    train = read_split(PREPARED, "train")[:2]
    val = read_split(PREPARED, "val")[:2]
    multi_label = params["task"] == "multi_label"
    head = model_lib.load(HEAD)
    with strategy.scope():
        model = assemble(params, head, class_names,
                         prepared_resolution=train[0].shape[1], multi_label=multi_label)
    if from_scratch(params):
        phase = scratch_phase(params, model_lib.backbone_of(model))
    unfrozen = top_layer_count(params["model"], model_lib.backbone_of(model), phase["unfreeze"])
    if multi_label:
        set_val_thresholds(model, *val, phase["batch_size"])
    with replaced_when_done(TRANSFER_MODEL) as tmp:
        compute.float32_copy(model).save(tmp)  # before fine-tuning: evaluate reports both
    with strategy.scope():
        model, started_from = start_model(params, phase, model, PROBE)
    train_batches, val_batches = image_batches(train, val, len(class_names), phase,
                                               params["seed"], params["augment"])
    weighting = params["class_weight"]
    made_from = backup_lib.fingerprint(params, [PREPARED, HEAD, PROBE, TRANSFER_METRICS, __file__],
                                       compute.resolved(params["compute"], strategy, jit_compile))
    with strategy.scope(), continue_live(TRANSFER_LIVE, LIVE) as live:
        metrics = finetune(model, train_batches, val_batches, phase, unfrozen, live,
                           read_json(TRANSFER_METRICS),
                           class_weights(weighting, class_names, train[1]), jit_compile,
                           (BACKUP, made_from),
                           positive_weights(weighting, class_names, train[1]) if multi_label else None)
    metrics["started_from"] = started_from
    if multi_label:  # the fine-tuned model's own thresholds, on val again
        set_val_thresholds(model, *val, phase["batch_size"])
    probe = probe_candidate(params, PROBE, model)
    final = keep_best(model, metrics, TRANSFER_MODEL, probe, val, phase["batch_size"])
    with replaced_when_done(MODEL) as tmp:
        final.save(tmp)
    write_json(METRICS, metrics)
    backup_lib.discard(BACKUP)
    line = summary(metrics, from_scratch(params), compute.summary(strategy, jit_compile))
    return f"finetune: {line} -> {MODEL}"


if __name__ == "__main__":
    run_stage(main)
