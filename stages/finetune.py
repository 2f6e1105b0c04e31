"""finetune: the full model (resize, the backbone's preprocess_input, backbone, trained
head), the top finetune.unfreeze backbone layers unfrozen, trained on augmented images at a
low learning rate. finetune.unfreeze: 0 keeps the transfer model as it is.

Writes models/model.keras, models/transfer.keras (the same model before fine-tuning),
metrics/finetune.json and plots/history/finetune.csv.
"""
import csv
import os

import keras

from imgclf import model as model_lib
from imgclf import params as params_lib
from imgclf.dataset import augmentation, batches, read_classes, read_split
from imgclf.errors import run_stage
from imgclf.training import compile_model, fit, read_json, set_seed, write_json

PREPARED = "data/prepared"
HEAD = "models/head.keras"
TRANSFER_METRICS = "metrics/transfer.json"
MODEL = "models/model.keras"
TRANSFER_MODEL = "models/transfer.keras"
METRICS = "metrics/finetune.json"
HISTORY = "plots/history/finetune.csv"


def assemble(params, head, class_names):
    """The full classifier with the trained head, everything frozen."""
    extractor = model_lib.feature_extractor(params["model"], params["weights"],
                                            params_lib.input_size(params),
                                            params_lib.backbone_args(params))
    return model_lib.full_model(extractor, head, class_names)


def finetune(model, train, val, finetune_params, history_csv, initial_epoch):
    """Unfreeze, recompile, train; returns the phase metrics. With nothing to unfreeze (or
    no epochs) the transfer model is kept and only measured on val, so the keys stay the same."""
    unfrozen = model_lib.unfreeze_top(model_lib.backbone_of(model), finetune_params["unfreeze"])
    compile_model(model, finetune_params["learning_rate"])
    if unfrozen and finetune_params["epochs"]:
        metrics = fit(model, train, val, finetune_params["epochs"], finetune_params["patience"],
                      history_csv, initial_epoch=initial_epoch)
        return {"unfrozen_layers": unfrozen, **metrics}
    with open(history_csv, "w", newline="") as f:  # empty history: the plot has one phase
        csv.writer(f).writerow(["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])
    val_loss, val_accuracy = model.evaluate(val, verbose=0)
    return {"unfrozen_layers": 0, "best_val_accuracy": float(val_accuracy),
            "best_val_loss": float(val_loss), "best_epoch": initial_epoch,
            "epochs_run": 0, "seconds": 0.0}


def main():
    params = params_lib.load()
    set_seed(params["seed"])
    class_names = read_classes(PREPARED)
    model = assemble(params, keras.models.load_model(HEAD), class_names)
    os.makedirs(os.path.dirname(MODEL), exist_ok=True)
    model.save(TRANSFER_MODEL)  # before fine-tuning, so evaluate can report both phases
    batch_size = params["finetune"]["batch_size"]
    augment = augmentation(params["augment"], params["seed"])

    train_images, train_labels, _ = read_split(PREPARED, "train")
    train = batches(train_images, train_labels, batch_size, shuffle=True, seed=params["seed"],
                    augment=augment)
    val_images, val_labels, _ = read_split(PREPARED, "val")
    val = batches(val_images, val_labels, batch_size)

    os.makedirs(os.path.dirname(HISTORY), exist_ok=True)
    metrics = finetune(model, train, val, params["finetune"], HISTORY,
                       initial_epoch=read_json(TRANSFER_METRICS)["epochs_run"])
    model.save(MODEL)
    write_json(METRICS, metrics)
    print(f"finetune: {metrics['unfrozen_layers']} backbone layers unfrozen, "
          f"{metrics['epochs_run']} epochs, {metrics['seconds']} s -> {MODEL}")


if __name__ == "__main__":
    run_stage(main)
