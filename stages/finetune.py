"""finetune: the full model (resize, the backbone's preprocess_input, backbone, trained
head), the top finetune.unfreeze backbone layers unfrozen, trained on augmented images at a
low learning rate. finetune.unfreeze: 0 keeps the transfer model as it is.

Writes models/model.keras, models/transfer.keras (the same model before fine-tuning),
metrics/finetune.json and dvclive/training/: the transfer stage's dvclive history continued
on the same step axis, one history of both phases. A killed run resumes from
backups/finetune/ (imgclf.backup).
"""
import os
import shutil

import keras

from imgclf import backup as backup_lib
from imgclf import compute
from imgclf.build import assemble, from_scratch, scratch_phase
from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.augment import augmentation
from imgclf.dataset import batches, is_multi_label, read_classes, read_split, training_batches
from imgclf.errors import run_stage
from imgclf.files import read_json, replaced_when_done, write_json
from imgclf.training import (class_weights, compile_model, fit, one_hot, open_live,
                             positive_weights, set_seed, set_val_thresholds, steps_per_epoch)
from imgclf.unfreeze import top_layer_count, unfreeze_top

PREPARED = "data/prepared"
HEAD = "models/head.keras"
TRANSFER_METRICS = "metrics/transfer.json"
MODEL = "models/model.keras"
TRANSFER_MODEL = "models/transfer.keras"
METRICS = "metrics/finetune.json"
TRANSFER_LIVE = "dvclive/transfer"
LIVE = "dvclive/training"
BACKUP = "backups/finetune"


def finetune(model, train, val, phase, unfrozen, live, transfer, class_weight=None,
             jit_compile=False, backup=None, positive_weights=None):
    """Unfreeze the top `unfrozen` backbone layers, recompile, train; returns the phase
    metrics. train is (batches, steps) as imgclf.training.fit takes it. The model ends with
    the weights that scored the lowest validation loss, the transfer model's included:
    fine-tuning that only made things worse is undone. With nothing to unfreeze (or no
    epochs) the transfer model is kept as it is. `transfer` is the transfer phase's metrics:
    its epochs continue the same epoch axis (and live's steps). Call it under the strategy
    the model was built in."""
    initial_epoch = transfer["epochs_run"]
    unfreeze_top(model_lib.backbone_of(model), unfrozen, phase["train_batchnorm"])
    compile_model(model, phase, train[1], jit_compile, model_lib.is_multi_label(model),
                  positive_weights)
    compute.ready_to_fit(model, val)
    val_loss, val_accuracy = model.evaluate(val, verbose=0)
    kept = {"best_val_accuracy": float(val_accuracy), "best_val_loss": float(val_loss),
            "best_epoch": transfer["best_epoch"], "kept_transfer_model": 1}
    if not (unfrozen and phase["epochs"]):
        return {"unfrozen_layers": 0, **kept, "epochs_run": 0, "seconds": 0.0}
    transfer_weights = model.get_weights()
    live.log_param("finetune_first_step", initial_epoch)  # the phase boundary
    metrics = fit(model, train, val, phase, live, backup, initial_epoch, class_weight)
    if metrics["best_val_loss"] >= val_loss:
        model.set_weights(transfer_weights)
        return {"unfrozen_layers": unfrozen, **metrics, **kept}
    return {"unfrozen_layers": unfrozen, **metrics, "kept_transfer_model": 0}


def main():
    params = params_lib.load()
    phase = params["finetune"]
    strategy, jit_compile = compute.apply(params["compute"])
    set_seed(params["seed"], compute.deterministic_ops(params["compute"]["deterministic"]))
    class_names = read_classes(PREPARED)
    train_images, train_labels, _ = read_split(PREPARED, "train")
    val_images, val_labels, _ = read_split(PREPARED, "val")
    multi_label = is_multi_label(train_labels)
    with strategy.scope():
        model = assemble(params, keras.models.load_model(HEAD), class_names,
                         prepared_resolution=train_images.shape[1], multi_label=multi_label)
    if from_scratch(params):
        phase = scratch_phase(params, model_lib.backbone_of(model))
    unfrozen = top_layer_count(params["model"], model_lib.backbone_of(model), phase["unfreeze"])
    if multi_label:
        set_val_thresholds(model, val_images, val_labels, phase["batch_size"])
    with replaced_when_done(TRANSFER_MODEL) as tmp:
        compute.float32_copy(model).save(tmp)  # before fine-tuning: evaluate reports both

    count = len(class_names)
    augment = augmentation(params["augment"])

    def train_batches(epochs):
        return one_hot(training_batches(train_images, train_labels, phase["batch_size"],
                                        params["seed"], epochs, augment), count)
    train = (train_batches, steps_per_epoch(len(train_labels), phase["batch_size"]))
    val = one_hot(batches(val_images, val_labels, phase["batch_size"]), count)

    made_from = backup_lib.fingerprint(params, [PREPARED, HEAD, TRANSFER_METRICS, __file__])
    if os.path.isdir(LIVE):
        shutil.rmtree(LIVE)
    shutil.copytree(TRANSFER_LIVE, LIVE)  # fine-tuning's steps follow transfer's
    with strategy.scope(), open_live(LIVE, resume=True) as live:
        metrics = finetune(model, train, val, phase, unfrozen, live, read_json(TRANSFER_METRICS),
                           class_weights(params["class_weight"], class_names, train_labels),
                           jit_compile, (BACKUP, made_from),
                           positive_weights(params["class_weight"], class_names, train_labels)
                           if multi_label else None)
    if multi_label:  # the fine-tuned model's own thresholds, on val again
        set_val_thresholds(model, val_images, val_labels, phase["batch_size"])
    with replaced_when_done(MODEL) as tmp:
        compute.float32_copy(model).save(tmp)
    write_json(METRICS, metrics)
    backup_lib.discard(BACKUP)
    kept = " (no epoch beat the transfer model on val loss: kept it)" if (
        metrics["kept_transfer_model"] and metrics["epochs_run"]) else ""
    if from_scratch(params):
        kept += " (weights: none: every layer trained from scratch with transfer.*'s settings)"
    return (f"finetune: {metrics['unfrozen_layers']} backbone layers unfrozen, "
            f"{metrics['epochs_run']} epochs (training {metrics['seconds']} s; "
            f"{compute.summary(strategy, jit_compile)}) -> {MODEL}{kept}")


if __name__ == "__main__":
    run_stage(main)
