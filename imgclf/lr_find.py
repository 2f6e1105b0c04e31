"""Learning-rate finder, as fastai's lr_find: train the configured phase for a few hundred
steps while the rate grows exponentially, and plot the loss against the rate.

    python -m imgclf.lr_find                      # transfer: the head on the cached features
    python -m imgclf.lr_find --phase finetune     # the full model, finetune.unfreeze unfrozen
    dvc exp run -S transfer.learning_rate=0.003   # then use (about) the suggested rate

Run it after `dvc repro` (it reads data/features, or data/prepared and models/head.keras).
The model it trains is thrown away; nothing of the pipeline's changes. One device, no class
weights: it looks for the rate's order of magnitude, not for a model.
"""
import argparse

import numpy as np

STOP_FACTOR = 4.0  # the sweep ends once the smoothed loss is 4x its lowest: it diverged
FALL_FACTOR = 0.8  # a loss that ends 20% below where it started has "fallen"
RISE_FACTOR = 1.5  # the loss "starts to climb" where it is 1.5x its lowest so far
SWEEP_EPOCHS = range(1000)  # more epochs of batches than any sweep takes (built lazily)
SETTLE_STEPS = 10  # the first steps' smoothed loss rests on a handful of batches: not a low
PREPARED = "data/prepared"
FEATURES = "data/features"
HEAD = "models/head.keras"


def rates(low, high, steps):
    return np.geomspace(low, high, steps)


def smoothed(losses, beta=0.98):
    """The losses' exponential moving average, bias-corrected (fastai's smoothing): single
    batches are too noisy to read a curve from."""
    curve, average = [], 0.0
    for step, loss in enumerate(losses, 1):
        average = beta * average + (1 - beta) * loss
        curve.append(average / (1 - beta ** step))
    return np.asarray(curve)


def sweep(model, dataset, rates_to_try):
    """One training step at each rate in turn, on dataset's batches (repeated as needed), until
    the rates run out or the loss diverges. Returns the rates used and each step's loss."""
    losses = []
    batches = iter(dataset.repeat())
    for rate in rates_to_try:
        model.optimizer.learning_rate = float(rate)
        x, y = next(batches)
        losses.append(float(model.train_on_batch(x, y, return_dict=True)["loss"]))
        curve = smoothed(losses)[SETTLE_STEPS:]
        if not np.isfinite(losses[-1]) or (len(curve) and curve[-1] > STOP_FACTOR * curve.min()):
            break
    return np.asarray(rates_to_try[:len(losses)]), np.asarray(losses)


def suggestion(rates_used, losses):
    """A tenth of a rate read off the smoothed curve. Where the loss falls (by FALL_FACTOR or
    more: a new head), of the rate where it is lowest, the classic reading: there it still
    falls fast. Where it barely falls (fine-tuning a trained model) the lowest point is
    noise, and what the curve shows is where training starts to break: the rate where the
    loss climbs to RISE_FACTOR times its lowest so far."""
    curve, rates_seen = smoothed(losses)[SETTLE_STEPS:], rates_used[SETTLE_STEPS:]
    lowest = int(np.argmin(curve))
    if curve[lowest] <= FALL_FACTOR * curve[0]:
        return float(rates_seen[lowest] / 10)
    climbing = np.flatnonzero(curve > RISE_FACTOR * np.minimum.accumulate(curve))
    return float(rates_seen[climbing[0] if len(climbing) else -1] / 10)


def plot(rates_used, losses, suggested, title, path):
    from imgclf.charts import plt, save

    figure, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(rates_used, losses, color="lightgray", label="loss of each step")
    ax.plot(rates_used, smoothed(losses), label="smoothed")
    ax.axvline(suggested, color="black", linestyle=":", label=f"suggested {suggested:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save(figure, path)


def transfer_setup(params):
    """The new head and the cached train features, as the transfer stage trains them."""
    from imgclf import features as features_lib
    from imgclf.dataset import read_classes, training_batches
    from imgclf.errors import UserError
    from imgclf.model import build_head
    from imgclf.training import one_hot

    if not features_lib.is_cached(FEATURES):
        raise UserError("lr_find: no cached features (weights: none trains from scratch in "
                        "finetune, with transfer.*'s settings): use --phase finetune")
    features, labels = features_lib.load(FEATURES, "train")
    count = len(read_classes(FEATURES))
    multi_label = params["task"] == "multi_label"
    head = build_head(features.shape[1:], count, **params["head"], multi_label=multi_label)
    phase = params["transfer"]
    dataset = training_batches(features, labels, phase["batch_size"], params["seed"], SWEEP_EPOCHS)
    return head, one_hot(dataset, count), phase, multi_label


def finetune_setup(params):
    """The full model with the trained head, unfrozen as the finetune stage unfreezes it,
    and the augmented train images."""
    from imgclf.augment import augmentation
    from imgclf.build import assemble, from_scratch, scratch_phase
    from imgclf.dataset import read_classes, read_split, training_batches
    from imgclf.model import backbone_of, load
    from imgclf.training import one_hot
    from imgclf.unfreeze import top_layer_count, unfreeze_top

    classes = read_classes(PREPARED)
    images, labels, _ = read_split(PREPARED, "train")
    multi_label = params["task"] == "multi_label"
    model = assemble(params, load(HEAD), classes, images.shape[1], multi_label)
    backbone = backbone_of(model)
    phase = scratch_phase(params, backbone) if from_scratch(params) else params["finetune"]
    unfrozen = top_layer_count(params["model"], backbone, phase["unfreeze"])
    unfreeze_top(backbone, unfrozen, phase["train_batchnorm"])
    dataset = training_batches(images, labels, phase["batch_size"], params["seed"], SWEEP_EPOCHS,
                               augmentation(params["augment"]))
    return model, one_hot(dataset, len(classes)), phase, multi_label


def find(phase_name, steps, low, high, output=None):
    """Sweep the phase's rates in the project; the one-line summary with the suggestion."""
    from imgclf import model_params
    from imgclf.compute import set_seed
    from imgclf.training import compile_model

    params = model_params.load()
    set_seed(params["seed"])
    setup = transfer_setup if phase_name == "transfer" else finetune_setup
    model, dataset, phase, multi_label = setup(params)
    # A constant rate that the sweep sets step by step (no schedule, no warm-up).
    compile_model(model, {**phase, "schedule": "constant", "warmup_epochs": 0, "ema_epochs": 0,
                          "learning_rate": low}, steps_per_epoch=1, multi_label=multi_label)
    used, losses = sweep(model, dataset, rates(low, high, steps))
    suggested = suggestion(used, losses)
    # From scratch (weights: none), finetune trains with transfer.*'s settings.
    key = "finetune" if phase_name == "finetune" and params["weights"] != "none" else "transfer"
    output = output or f"lr_find_{phase_name}.png"
    plot(used, losses, suggested, f"{phase_name}: {len(losses)} steps", output)
    return (f"lr_find: {len(losses)} {phase_name} steps from {low:g} to {used[-1]:.3g}; "
            f"suggested {key}.learning_rate {suggested:.2g} "
            f"(dvc exp run -S {key}.learning_rate={suggested:.2g}); plot: {output}")


def main(argv=None):
    from imgclf.errors import run_stage

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["transfer", "finetune"], default="transfer")
    parser.add_argument("--steps", type=int, default=300, help="at most this many steps")
    parser.add_argument("--low", type=float, default=1e-7, help="the first rate")
    parser.add_argument("--high", type=float, default=10.0, help="the last rate")
    parser.add_argument("-o", "--output", help="the plot (default: lr_find_<phase>.png)")
    args = parser.parse_args(argv)
    run_stage(lambda: find(args.phase, args.steps, args.low, args.high, args.output))


if __name__ == "__main__":
    main()
