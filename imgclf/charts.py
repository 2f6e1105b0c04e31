"""Matplotlib figures of a run, saved as PNG files that open without internet."""
import matplotlib

matplotlib.use("Agg")
# Class names and file names are shown as they are: "$5 bill" would be parsed as mathtext
# (and "$5 bill vs $10 bill" crashes the plot).
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imgclf.files import replaced_when_done  # noqa: E402


def save(figure, path):
    figure.tight_layout()
    with replaced_when_done(path) as tmp:
        figure.savefig(tmp, dpi=100, bbox_inches="tight")  # titles of equal-aspect axes too
    plt.close(figure)


def live_history(live_dir):
    """dvclive's per-epoch files -> one row per step (0-based epoch): accuracy, loss,
    val_accuracy, val_loss."""
    import os

    import pandas as pd

    columns = []
    for split, prefix in [("train", ""), ("eval", "val_")]:
        for metric in ["accuracy", "loss"]:
            path = os.path.join(live_dir, "plots", "metrics", split, f"{metric}.tsv")
            if os.path.exists(path):  # none when no epoch trained (weights: none, unfreeze 0)
                table = pd.read_csv(path, sep="\t", index_col="step")
                columns.append(table[metric].rename(prefix + metric))
    if not columns:
        return []
    history = pd.concat(columns, axis=1).sort_index()
    return [{"epoch": int(step), **row.dropna().to_dict()} for step, row in history.iterrows()]


def training(histories, phase_metrics, path):
    """Accuracy and loss, train and val, per epoch (1-based, continuing across phases), the
    phase boundary and each phase's restored epoch marked."""
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
    save(figure, path)


def confusion(rows, class_names):
    """The count matrix, rows = actual, columns = predicted, in class_names order."""
    from sklearn.metrics import confusion_matrix

    if not rows:  # scikit-learn refuses empty input
        return np.zeros((len(class_names), len(class_names)), int)
    return confusion_matrix([r["actual"] for r in rows], [r["predicted"] for r in rows],
                            labels=class_names)


def confusion_matrices(names, matrix, path, counted="images"):
    """Counts and row-normalised (recall per class) side by side; numbers written in the
    cells up to 30 classes, tick labels shrinking with the class count up to 100. counted:
    what a row of the matrix counts, images or (multi_label) label decisions."""
    size = min(40, max(5, 0.4 * len(names) + 2.5))
    font = 8 if len(names) <= 30 else 6  # a 0.4-inch cell is 29 points tall
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    right = f"accuracy {np.trace(matrix) / max(matrix.sum(), 1):.3f}" if counted == "images" else (
        f"{np.trace(matrix)} right")  # label decisions: (none)-(none) is never a row
    titles = [f"counts ({matrix.sum()} {counted}, {right})",
              "row-normalised (recall of each class on the diagonal)"]
    for ax, values, title in [(axes[0], matrix, titles[0]), (axes[1], normalised, titles[1])]:
        ax.imshow(values, cmap="Blues", vmin=0)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=font)
        ax.set_yticks(range(len(names)), names, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        if len(names) <= 30:
            for i, j in np.ndindex(values.shape):
                text = str(values[i, j]) if values is matrix else f"{values[i, j]:.2f}"
                color = "white" if values[i, j] > values.max() / 2 else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=7)
        ax.set_title(title)
    save(figure, path)


def per_class(report, class_names, path):
    """Precision, recall and F1 per class as horizontal bars, worst F1 at the top; classes
    absent from the split are named in the title, not drawn as zeros."""
    absent = report.get("absent_classes", [])
    order = sorted((name for name in class_names if name not in absent),
                   key=lambda name: report[name]["f1-score"])
    figure, ax = plt.subplots(figsize=(8, max(3, 0.3 * len(order) + 1.5)))
    y = np.arange(len(order))
    for offset, key in [(-0.27, "precision"), (0, "recall"), (0.27, "f1-score")]:
        ax.barh(y + offset, [report[name][key] for name in order], height=0.27, label=key)
    ax.set_yticks(y, order, fontsize=8 if len(order) <= 40 else 5)
    ax.invert_yaxis()  # worst first
    ax.set_xlim(0, 1)
    ax.set_xlabel("test score")
    ax.set_title("per class, worst F1 first" + (f" (not in the split: {', '.join(absent)})"
                                                 if absent else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="x", alpha=0.3)
    save(figure, path)


def image_grid(images, titles, path, suptitle, overlays=None, columns=6):
    """Images (uint8) in a grid with a title each; optional heat maps (0..1) drawn over them."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (image, title) in enumerate(zip(images, titles)):
        ax = axes.ravel()[i]
        ax.imshow(image)
        if overlays is not None:
            ax.imshow(overlays[i], cmap="jet", alpha=0.35, interpolation="bilinear",
                      extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))
        ax.set_title(title, fontsize=8)
    if not len(images):
        axes[0, 0].text(0, 0.5, "none", fontsize=14)
    figure.suptitle(suptitle)
    save(figure, path)


def precision_recall(labels, probabilities, names, path, most=30):
    """One precision-recall curve per class or label (one-vs-rest), worst average precision
    first, at most `most` of them; labels are 0/1 columns, one per name."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    present = [i for i in range(len(names)) if labels[:, i].any()]
    scores = {i: average_precision_score(labels[:, i], probabilities[:, i]) for i in present}
    shown = sorted(present, key=scores.get)[:most]
    columns = min(5, max(1, len(shown)))
    rows = -(-len(shown) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown):
        precision, recall, _ = precision_recall_curve(labels[:, i], probabilities[:, i])
        ax.plot(recall, precision)
        ax.set_title(f"{names[i]} (AP {scores[i]:.3f})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    figure.suptitle(f"precision (y) against recall (x) on test, worst average precision first"
                    f" ({len(shown)} of {len(names)} shown)")
    save(figure, path)


def calibration(table, path):
    """The reliability diagram (plots/calibration.csv): accuracy against confidence per bin,
    before and after temperature scaling, the diagonal perfect; marker area ~ images."""
    figure, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for model, rows in table.groupby("model", sort=False):
        ax.plot(rows["confidence"], rows["accuracy"], marker="o", label=model)
        area = 200 * rows["count"] / table["count"].max()
        ax.scatter(rows["confidence"], rows["accuracy"], s=area, alpha=0.3)
    ax.set_xlabel("confidence (mean of the bin)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title("reliability on the scored split")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    save(figure, path)


def risk_coverage(table, path):
    """Accuracy of the accepted decisions against the share accepted, most confident first
    (plots/risk_coverage.csv), with the confidence threshold that gives each share."""
    figure, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(table["coverage"], table["accuracy"], label="accuracy of the accepted")
    ax.plot(table["coverage"], table["min_confidence"], linestyle=":",
            label="--min-confidence that accepts them")
    ax.set_xlabel("share accepted (coverage)")
    ax.set_xlim(0, 1)
    ax.set_title("selective prediction: accuracy against coverage")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    save(figure, path)
