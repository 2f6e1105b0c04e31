"""Speed benchmarks, measured side by side in one run; prints figures and ratios and writes
benchmarks/results.json. Needs ../shared (real flower photos and MobileNetV2-0.35 weights).

    python -m benchmarks.run [--images 1500]

1. Transfer phase: the notebooks' way (the whole model, backbone frozen, fitted on images
   augmented on the fly) against the features + transfer stages, 10 epochs each.
2. Input pipeline: prepared arrays + augmentation (imgclf.dataset.batches) against what a
   MobileNetV2 fine-tuning step consumes, and against Keras' two readers of JPEG folders.
3. The features stage's extraction against the backbone's own forward pass on tensors
   already in memory, same batch size.
4, 5. Memory at 2,000 and 20,000 images, and the cost of an experiment: benchmarks/scale.py.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
FLOWERS = os.path.join(SHARED, "datasets", "flowers5-128")
WEIGHTS = os.path.join(SHARED, "keras", "models")
SIZE, BATCH, EPOCHS = 128, 32, 10
AUGMENT = {"flip": "horizontal", "rotation": 0.1, "zoom": 0.1, "translation": 0.1, "contrast": 0.1}


def subset(source, target, per_class):
    """A copy of the first per_class photos of each class (sorted names)."""
    for name in sorted(os.listdir(source)):
        os.makedirs(os.path.join(target, name))
        for file in sorted(os.listdir(os.path.join(source, name)))[:per_class]:
            shutil.copy(os.path.join(source, name, file), os.path.join(target, name))


def images_per_second(batches, limit):
    """Images per second that iterating `batches` delivers, over at most `limit` images."""
    count, start = 0, time.perf_counter()
    for x, _ in batches:
        count += len(x)
        if count >= limit:
            break
    return count / (time.perf_counter() - start)


def live(work, name):
    """A dvclive logger in the benchmark's scratch folder (training logs each epoch)."""
    from imgclf.training import open_live

    return open_live(os.path.join(work, name))


def transfer_phase(prepared, phase, head_params, seed):
    """Target 1: seconds and best validation accuracy of both ways, same data and epochs."""
    import keras

    from imgclf import compute
    from imgclf import model as model_lib
    from imgclf.augment import augmentation
    from imgclf.dataset import batches, read_split, training_batches
    from imgclf.compute import set_seed
    from imgclf.features import extract, traced_forward
    from imgclf.head import train_head
    from imgclf.training import compile_model, fit, one_hot, steps_per_epoch

    train_x, train_y, _ = read_split(prepared, "train")
    val_x, val_y, _ = read_split(prepared, "val")
    classes = int(train_y.max()) + 1
    results = {}

    set_seed(seed)
    start = time.perf_counter()
    extractor = model_lib.feature_extractor("mobilenet_v2", "imagenet", SIZE, {"alpha": 0.35})
    work = tempfile.mkdtemp()
    forward = traced_forward(extractor, train_x.shape[1:])
    train_y2 = extract(forward, train_x, train_y, 64, 1, os.path.join(work, "train.npy"))
    val_y2 = extract(forward, val_x, val_y, 64, 1, os.path.join(work, "val.npy"))
    import numpy as np

    features = ((np.load(os.path.join(work, "train.npy"), mmap_mode="r"), train_y2),
                (np.load(os.path.join(work, "val.npy"), mmap_mode="r"), val_y2))
    _, metrics = train_head(*features, [str(i) for i in range(classes)],
                            {"transfer": phase, "head": head_params, "seed": seed,
                             "class_weight": "none"}, live(work, "cached"),
                            compute.strategy("one_device"))
    results["cached_features"] = {"seconds": time.perf_counter() - start,
                                  "val_accuracy": metrics["best_val_accuracy"]}

    set_seed(seed)
    start = time.perf_counter()
    extractor = model_lib.feature_extractor("mobilenet_v2", "imagenet", SIZE, {"alpha": 0.35})
    head = model_lib.build_head(extractor.output.shape[1:], classes, **head_params)
    model = model_lib.full_model(extractor, head, [str(i) for i in range(classes)])
    compile_model(model, phase, len(train_y) // phase["batch_size"] + 1)

    def train(epochs):
        return one_hot(training_batches(train_x, train_y, phase["batch_size"], seed, epochs,
                                        augmentation(AUGMENT)), classes)
    val = one_hot(batches(val_x, val_y, phase["batch_size"]), classes)
    metrics = fit(model, (train, steps_per_epoch(len(train_y), phase["batch_size"])), val, phase,
                  live(work, "full"))
    results["notebook_way"] = {"seconds": time.perf_counter() - start,
                               "val_accuracy": metrics["best_val_accuracy"]}
    shutil.rmtree(work)
    keras.backend.clear_session()
    return results


def input_pipeline(prepared, raw_train, finetune_phase, seed):
    """Target 2: images per second of each reader, and of a MobileNetV2 fine-tuning step."""
    import keras
    import numpy as np
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    from imgclf import model as model_lib
    from imgclf.augment import augmentation
    from imgclf.dataset import read_split, training_batches
    from imgclf.training import compile_model
    from imgclf.unfreeze import top_layer_count, unfreeze_top

    train_x, train_y, _ = read_split(prepared, "train")
    ours = training_batches(train_x, train_y, BATCH, seed, range(1), augmentation(AUGMENT))
    rates = {"prepared_arrays_with_augmentation": max(
        images_per_second(ours.repeat(), 4 * len(train_y)) for _ in range(2))}
    generator = ImageDataGenerator(rotation_range=36, zoom_range=0.1, width_shift_range=0.1,
                                   height_shift_range=0.1, horizontal_flip=True)
    flow = generator.flow_from_directory(raw_train, target_size=(SIZE, SIZE), batch_size=BATCH)
    rates["ImageDataGenerator.flow_from_directory"] = images_per_second(flow, len(train_y))
    folder = keras.utils.image_dataset_from_directory(raw_train, image_size=(SIZE, SIZE),
                                                      batch_size=BATCH, verbose=False)
    rates["image_dataset_from_directory"] = images_per_second(folder.prefetch(2), len(train_y))

    extractor = model_lib.feature_extractor("mobilenet_v2", "imagenet", SIZE, {"alpha": 0.35})
    head = model_lib.build_head(extractor.output.shape[1:], 5, "avg", [256], 0.5)
    model = model_lib.full_model(extractor, head, list("abcde"))
    backbone = model_lib.backbone_of(model)
    unfreeze_top(backbone, top_layer_count("mobilenet_v2", backbone, finetune_phase["unfreeze"]))
    compile_model(model, finetune_phase, 1)
    x = np.asarray(train_x[:BATCH], dtype="float32")
    y = np.eye(5)[np.asarray(train_y[:BATCH])]
    model.train_on_batch(x, y)  # compile the step once
    steps, start = 20, time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    rates["finetune_step_consumes"] = steps * BATCH / (time.perf_counter() - start)
    keras.backend.clear_session()
    return rates


def feature_throughput(prepared):
    """Target 3: the features stage's loop (read, forward, write) against the same traced
    forward pass on tensors already in memory, batch 64; and the one-off tracing."""
    import numpy as np
    import tensorflow as tf

    from imgclf import model as model_lib
    from imgclf.dataset import read_split
    from imgclf.features import extract, traced_forward

    images, labels, _ = read_split(prepared, "train")
    extractor = model_lib.feature_extractor("mobilenet_v2", "imagenet", SIZE, {"alpha": 0.35})
    start = time.perf_counter()
    forward = traced_forward(extractor, images.shape[1:])
    forward.get_concrete_function()
    trace_seconds = time.perf_counter() - start
    count = len(labels) // 64 * 64
    in_memory = tf.constant(np.asarray(images[:count], dtype="float32"))
    best_bare, best_stage = 0.0, 0.0
    for _ in range(2):
        start = time.perf_counter()
        for i in range(0, count, 64):
            forward(in_memory[i:i + 64]).numpy()
        best_bare = max(best_bare, count / (time.perf_counter() - start))
        work = tempfile.mkdtemp()
        start = time.perf_counter()
        extract(forward, images, labels[:count], 64, 1, os.path.join(work, "f.npy"))
        best_stage = max(best_stage, count / (time.perf_counter() - start))
        shutil.rmtree(work)
    return {"backbone_forward_in_memory": best_bare, "features_stage": best_stage,
            "tracing_once_seconds": trace_seconds}


def main():
    parser = argparse.ArgumentParser(description="speed benchmarks")
    parser.add_argument("--images", type=int, default=1500, help="flower photos to use (max 4317)")
    args = parser.parse_args()
    if not (os.path.isdir(FLOWERS) and os.path.isdir(WEIGHTS)):
        sys.exit(f"benchmarks: {SHARED} (flower photos and ImageNet weights) is absent")
    home = tempfile.mkdtemp()
    shutil.copytree(WEIGHTS, os.path.join(home, "models"))
    os.environ["KERAS_HOME"] = home  # before Keras is imported
    sys.path.insert(0, ROOT)
    import splitfolders

    from imgclf.prepare import prepare
    from imgclf.splitting import split_dataset

    work = tempfile.mkdtemp()
    raw = os.path.join(work, "raw")
    subset(FLOWERS, raw, args.images // 5)
    split_dataset(raw, os.path.join(work, "split"), (0.7, 0.3), seed=42)
    prepare(os.path.join(work, "split"), raw, os.path.join(work, "prepared"), SIZE)
    # The folder readers compared with ours need copies; split-folders makes the same split.
    splitfolders.ratio(raw, os.path.join(work, "copies"), seed=42, ratio=(0.7, 0.3))
    prepared = os.path.join(work, "prepared")
    from imgclf import params as params_lib

    defaults = params_lib.load(os.path.join(ROOT, "params.yaml"))  # the project's defaults
    phase = {**defaults["transfer"], "epochs": EPOCHS, "batch_size": BATCH, "patience": 0}
    head = defaults["head"]

    transfer = transfer_phase(prepared, phase, head, seed=42)
    copies = os.path.join(work, "copies", "train")
    rates = input_pipeline(prepared, copies, defaults["finetune"], seed=42)
    features = feature_throughput(prepared)
    results = {
        "machine": f"{os.cpu_count()} CPU cores", "images": args.images, "image_size": SIZE,
        "1_transfer_phase": {**transfer, "speedup": transfer["notebook_way"]["seconds"]
                             / transfer["cached_features"]["seconds"],
                             "accuracy_difference_points": 100 * (
                                 transfer["cached_features"]["val_accuracy"]
                                 - transfer["notebook_way"]["val_accuracy"])},
        "2_input_pipeline_images_per_second": {
            **rates, "ratio_to_finetune_step": rates["prepared_arrays_with_augmentation"]
            / rates["finetune_step_consumes"]},
        "3_features_throughput_images_per_second": {
            **features, "ratio": features["features_stage"] / features["backbone_forward_in_memory"]},
    }
    print(json.dumps(results, indent=2), flush=True)
    from benchmarks import scale

    results["4_peak_memory"] = scale.memory(work)
    print(json.dumps(results["4_peak_memory"], indent=2), flush=True)
    results["5_experiment_cost"] = scale.experiments(work)
    shutil.rmtree(work)
    shutil.rmtree(home)
    with open(os.path.join(ROOT, "benchmarks", "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
