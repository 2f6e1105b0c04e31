"""Fine-tuning the full model (the finetune stage): unfreeze the top backbone layers,
recompile, train on augmented images, keep the transfer model when that did not help."""
from imgclf import compute
from imgclf import model as model_lib
from imgclf.augment import augmentation
from imgclf import selection
from imgclf.dataset import batches, is_multi_label, training_batches
from imgclf.training import compile_model, fit, one_hot, steps_per_epoch
from imgclf.unfreeze import unfreeze_top


def image_batches(train, val, class_count, phase, seed, augment_params):
    """(train, val) as finetune takes them: train is (function of epochs -> augmented one-hot
    batches, steps per epoch), val one-hot batches; train and val are (images, labels)."""
    augment = augmentation(augment_params)

    def train_batches(epochs):
        return one_hot(training_batches(*train, phase["batch_size"], seed, epochs, augment),
                       class_count)
    steps = steps_per_epoch(len(train[1]), phase["batch_size"])
    return (train_batches, steps), one_hot(batches(*val, phase["batch_size"]), class_count)


def finetune(model, train, val, phase, unfrozen, live, transfer, class_weight=None,
             jit_compile=False, backup=None, positive_weights=None):
    """Unfreeze the top `unfrozen` backbone layers, recompile, train; returns the phase
    metrics. train is (batches, steps) as imgclf.training.fit takes it. The model ends with
    the weights that scored the lowest validation loss, its starting weights included:
    fine-tuning that only made things worse is undone (`reverted_to_start`). With nothing to
    unfreeze (or no epochs) the model is kept as it is. `transfer` is the transfer phase's metrics:
    its epochs continue the same epoch axis (and live's steps). Call it under the strategy
    the model was built in."""
    initial_epoch = transfer["epochs_run"]
    unfreeze_top(model_lib.backbone_of(model), unfrozen, phase["train_batchnorm"])
    compile_model(model, phase, train[1], jit_compile, model_lib.is_multi_label(model),
                  positive_weights)
    compute.ready_to_fit(model, val)
    val_loss, val_accuracy = model.evaluate(val, verbose=0)
    kept = {"best_val_accuracy": float(val_accuracy), "best_val_loss": float(val_loss),
            "best_epoch": transfer["best_epoch"], "reverted_to_start": 1,
            "start_val_loss": float(val_loss), "start_val_accuracy": float(val_accuracy)}
    if not (unfrozen and phase["epochs"]):
        return {"unfrozen_layers": 0, **kept, "epochs_run": 0, "seconds": 0.0}
    transfer_weights = model.get_weights()
    live.log_param("finetune_first_step", initial_epoch)  # the phase boundary
    metrics = fit(model, train, val, phase, live, backup, initial_epoch, class_weight)
    if metrics["best_val_loss"] >= val_loss:
        model.set_weights(transfer_weights)
        return {"unfrozen_layers": unfrozen, **metrics, **kept}
    return {"unfrozen_layers": unfrozen, **metrics, "reverted_to_start": 0,
            "start_val_loss": float(val_loss), "start_val_accuracy": float(val_accuracy)}


def keep_best(finetuned, metrics, transfer_path, probe, val, batch_size):
    """The final model: of the probe (None: there is none), the transfer model saved at
    transfer_path and the fine-tuned one (unless finetune() already went back to the
    transfer model), the one imgclf.selection.choose keeps on val = (images, labels).
    metrics (finetune()'s) get which one, `kept`, and why, `kept_because`."""
    candidates = {"transfer": model_lib.load(transfer_path)}
    if probe is not None:  # built under the compute policy (mixed precision on a GPU)
        candidates["probe"] = compute.float32_copy(probe)
    if not metrics["reverted_to_start"]:
        candidates["finetuned"] = compute.float32_copy(finetuned)
    right = {}
    for name, model in candidates.items():
        probabilities = model_lib.probabilities(model, batches(*val, batch_size))
        right[name] = selection.right_answers(probabilities, val[1],
                                              model_lib.label_thresholds(model))
    metrics["kept"], metrics["kept_because"] = selection.choose(right)
    if not is_multi_label(val[1]):  # a share of val answers right is an accuracy
        metrics["kept_val_accuracy"] = float(right[metrics["kept"]].mean())
        if "probe" in right:  # the probe's on the same images, through Keras
            metrics["probe_val_accuracy"] = float(right["probe"].mean())
    return candidates[metrics["kept"]]

def summary(metrics, from_scratch, compute_summary):
    """What the finetune stage prints: how deep, how long, on what, and which model it kept."""
    line = (f"{metrics['unfrozen_layers']} backbone layers unfrozen, {metrics['epochs_run']} "
            f"epochs (training {metrics['seconds']} s; {compute_summary})")
    if metrics["reverted_to_start"] and metrics["epochs_run"]:
        start = metrics["started_from"]
        line += f" (no epoch beat the {start} model it started from on val loss: reverted to it)"
    if from_scratch:
        line += " (weights: none: every layer trained from scratch with transfer.*'s settings)"
    return f"{line}; kept {metrics['kept_because']}"
