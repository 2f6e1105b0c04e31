"""plot: PNG plots readable offline: training curves of both phases on one epoch axis with
the phase boundary and restored epochs marked, and the confusion matrix."""
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imgclf.errors import run_stage  # noqa: E402
from imgclf.files import read_json, replaced_when_done  # noqa: E402

HISTORIES = {"transfer": "plots/history/transfer.csv", "finetune": "plots/history/finetune.csv"}
PHASE_METRICS = {"transfer": "metrics/transfer.json", "finetune": "metrics/finetune.json"}
PREDICTIONS = "plots/confusion.csv"
TRAINING_PNG = "plots/training.png"
CONFUSION_PNG = "plots/confusion.png"


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_training(histories, phase_metrics, path):
    """Accuracy and loss, train and val, per epoch (1-based, continuing across phases)."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, ["accuracy", "loss"]):
        for phase, rows in histories.items():
            if not rows:
                continue
            epochs = [int(r["epoch"]) + 1 for r in rows]
            ax.plot(epochs, [float(r[metric]) for r in rows], "-", label=f"{phase} train")
            ax.plot(epochs, [float(r[f"val_{metric}"]) for r in rows], "--", label=f"{phase} val")
            best = phase_metrics[phase].get("best_epoch")
            if best and phase_metrics[phase].get("epochs_run"):
                ax.axvline(best, color="gray", linestyle=":", linewidth=1)
        transfer_epochs = len(histories["transfer"])
        if histories["finetune"]:
            ax.axvline(transfer_epochs + 0.5, color="black", linewidth=1)
            ax.text(transfer_epochs + 0.6, ax.get_ylim()[1], " fine-tuning", va="top")
        ax.set_xlabel("epoch (dotted: best epoch restored)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    with replaced_when_done(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def confusion(rows):
    """Class names and the count matrix, rows = actual, columns = predicted."""
    names = sorted({r["actual"] for r in rows} | {r["predicted"] for r in rows})
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for r in rows:
        matrix[index[r["actual"]], index[r["predicted"]]] += 1
    return names, matrix


def plot_confusion(names, matrix, path):
    size = max(5, 0.45 * len(names) + 2)
    figure, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if len(names) <= 30:
        for i, j in np.ndindex(matrix.shape):
            color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color, fontsize=8)
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"confusion matrix ({matrix.sum()} images, accuracy {accuracy:.3f})")
    figure.tight_layout()
    with replaced_when_done(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def main():
    histories = {phase: read_rows(path) for phase, path in HISTORIES.items()}
    plot_training(histories, {p: read_json(path) for p, path in PHASE_METRICS.items()},
                  TRAINING_PNG)
    plot_confusion(*confusion(read_rows(PREDICTIONS)), CONFUSION_PNG)
    print(f"plot: wrote {TRAINING_PNG} and {CONFUSION_PNG}")


if __name__ == "__main__":
    run_stage(main)
