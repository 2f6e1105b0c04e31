"""Targets 4 and 5, each stage or DVC command in its own process, as users run them.

4. Peak resident memory of preprocess, features and finetune on 2,000 and on 20,000
   generated images (128 px, MobileNetV2-0.35 with ImageNet weights, one epoch per phase).
5. Wall time of `dvc exp run -S finetune.unfreeze=...` and `-S head.dropout=...` against a
   full `dvc repro`, on the digits sample with the project's params, in a temporary repo.
"""
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import yaml
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", "stages", "imgclf"]


def project_copy(folder, update_params):
    """The project's stages, package and params (changed by update_params) in folder."""
    os.makedirs(folder)
    for name in PROJECT_FILES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(folder, name),
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, folder)
    with open(os.path.join(folder, "params.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    update_params(values)
    with open(os.path.join(folder, "params.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(values, f, sort_keys=False)


def generate_split(folder, count, classes=5, seed=0):
    """count smooth random 160-pixel JPEG photos in folder/{train,val}/<class>/, 70/30."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        split = "train" if index % 10 < 7 else "val"
        target = os.path.join(folder, split, f"class_{index % classes}")
        os.makedirs(target, exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((160, 160), Image.BICUBIC).save(
            os.path.join(target, f"{index:06d}.jpg"), quality=90)


# Starts argv[2:], then writes its peak resident memory (KiB) to argv[1]. Forked from this
# small process, the measured command does not count the benchmark's own memory, which a
# child forked from the benchmark inherits (and reports as resident) until it execs.
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN)"
            ".ru_maxrss)); sys.exit(code)")


def run(command, cwd, log):
    """Run command; its wall seconds and peak resident memory in MiB."""
    peak_file = log + ".peak_rss"
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as out:
        code = subprocess.call([sys.executable, "-c", PEAK_RSS, peak_file, *command], cwd=cwd,
                               stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if code:
        sys.exit(f"benchmarks: {' '.join(command)} failed in {cwd}; see {log}")
    with open(peak_file, encoding="utf-8") as f:
        return seconds, int(f.read()) / 1024  # Linux: KiB


def memory_at(work, count):
    """Target 4 at one dataset size: {stage: peak MiB}."""
    folder = os.path.join(work, f"memory_{count}")

    def params(values):
        values.update(model="mobilenet_v2", image_size=128)
        values["preprocess"]["resolution"] = 128
        values["transfer"].update(epochs=1, patience=0)
        values["finetune"].update(epochs=1, patience=0)
        values["data"]["dir"] = "data/raw"

    project_copy(folder, params)
    generate_split(os.path.join(folder, "data", "raw"), count)
    peaks, log = {}, os.path.join(folder, "log.txt")
    for stage in ("split", "preprocess", "features", "transfer", "finetune"):
        _, peaks[stage] = run([sys.executable, "-m", f"stages.{stage}"], folder, log)
    del peaks["transfer"]  # run only for finetune's input
    shutil.rmtree(folder)
    return peaks


def memory(work, small=2000, large=20000):
    at_small, at_large = memory_at(work, small), memory_at(work, large)
    return {"images": [small, large],
            **{stage: {"peak_mib": [round(at_small[stage]), round(at_large[stage])],
                       "growth": at_large[stage] / at_small[stage] - 1} for stage in at_small}}


def experiments(work):
    """Target 5: seconds of a full dvc repro and of two experiments, and their fractions."""
    folder = os.path.join(work, "experiments")
    project_copy(folder, lambda values: None)
    log = os.path.join(folder, "log.txt")
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "b@example.com"],
                    ["git", "config", "user.name", "benchmark"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "project"]):  # dvclive needs a commit
        run(command, folder, log)
    full, _ = run(["dvc", "repro"], folder, log)
    run(["git", "add", "-A"], folder, log)
    run(["git", "commit", "-qm", "baseline"], folder, log)
    with open(os.path.join(folder, "params.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    unfreeze = "blocks:1" if values["finetune"]["unfreeze"] != "blocks:1" else "blocks:2"
    dropout = 0.3 if values["head"]["dropout"] != 0.3 else 0.2
    seconds = {"full_dvc_repro": full}
    for key, value in (("finetune.unfreeze", unfreeze), ("head.dropout", dropout)):
        seconds[f"exp_run {key}={value}"], _ = run(
            ["dvc", "exp", "run", "-S", f"{key}={value}"], folder, log)
    shutil.rmtree(folder)
    return {"seconds": seconds, **{f"fraction {name}": value / full
                                   for name, value in seconds.items() if name != "full_dvc_repro"}}
