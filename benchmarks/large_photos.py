"""Peak memory on very large photos: 20 generated photos of 100 megapixels (10,000 x 10,000;
14 JPEG, 6 PNG, two classes) through the real split and preprocess stages, and export's
full-size check (imgclf.export.check on export.full_size_batches, with the sample's
models/model.keras: run `dvc repro` first). Each runs in its own process; its peak resident
memory is that of the whole process tree (preprocess's decoding workers included), sampled
every 20 ms. Target: under 2 GiB each.

    python -m benchmarks.large_photos            # writes benchmarks/large_photos.json
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil
from PIL import Image

from benchmarks.scale import ROOT, project_copy

SIDE = 10_000  # px: 100 megapixels
PHOTOS = 20
TARGET_MIB = 2048


def write_photos(folder):
    """PHOTOS smooth colour fields with fine noise (JPEG and PNG, like camera files and
    stitched panoramas) in folder/<class>/."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, SIDE, dtype=np.float32)
    for index in range(PHOTOS):
        colour = rng.uniform(40, 215, 3).astype(np.float32)
        pixels = np.empty((SIDE, SIDE, 3), np.uint8)
        for channel in range(3):  # one channel at a time: 100 MB each, not 1.2 GB of floats
            field = colour[channel] + 40 * np.sin(6 * ramp[:, None] + channel + index) \
                * np.cos(4 * ramp[None, :] + index)
            pixels[..., channel] = field.clip(0, 255).astype(np.uint8)
        pixels[::7, ::5] ^= 8  # detail, so the files are not trivially compressed
        target = os.path.join(folder, f"class_{index % 2}")
        os.makedirs(target, exist_ok=True)
        image = Image.fromarray(pixels)
        if index % 10 < 7:
            image.save(os.path.join(target, f"{index:02d}.jpg"), quality=90)
        else:
            image.save(os.path.join(target, f"{index:02d}.png"), compress_level=1)
        del pixels, image


def peak_tree_mib(command, cwd):
    """Run command; its exit code and the peak summed resident memory of it and its children."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        root = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=sample)
    watcher.start()
    _, stderr = process.communicate()
    watcher.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return peak[0] / 2**20


EXPORT_CHECK = """
import sys
import numpy as np
from imgclf import export, model as model_lib
files = sys.argv[2:]
model = model_lib.load(sys.argv[1])
accuracy, count, _ = export.check(model, {}, export.full_size_batches(files, np.zeros(len(files), np.int32)))
assert count == len(files), count
"""


def main():
    model = os.path.join(ROOT, "models", "model.keras")
    if not os.path.exists(model):
        raise SystemExit(f"{model} not found: run dvc repro first (the export check needs a model)")
    with tempfile.TemporaryDirectory() as work:
        started = time.time()
        photos = os.path.join(work, "project", "photos")
        project_copy(os.path.join(work, "project"), lambda values: values["data"].update(dir="photos"))
        write_photos(photos)
        print(f"wrote {PHOTOS} photos of {SIDE}x{SIDE} in {time.time() - started:.0f} s")
        project = os.path.join(work, "project")
        peaks = {}
        for stage in ("split", "preprocess"):
            peaks[stage] = peak_tree_mib([sys.executable, "-m", f"stages.{stage}"], project)
        files = sorted(os.path.join(root, name) for root, _, names in os.walk(photos)
                       for name in names)
        peaks["export_full_size_check"] = peak_tree_mib(
            [sys.executable, "-c", EXPORT_CHECK, model, *files], ROOT)
    result = {"photos": PHOTOS, "megapixels": SIDE * SIDE / 1e6, "cpu_count": os.cpu_count(),
              "peak_mib": {name: round(mib) for name, mib in peaks.items()},
              "target_mib": TARGET_MIB,
              "met": all(mib < TARGET_MIB for mib in peaks.values())}
    print(json.dumps(result, indent=1))
    with open(os.path.join(ROOT, "benchmarks", "large_photos.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
