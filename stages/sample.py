"""sample: write scikit-learn's handwritten digits (1,797 real 8x8 scans, shipped inside
scikit-learn, no download) as PNG files in class folders, upscaled for the backbones."""
import os
import shutil

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from imgclf import params as params_lib
from imgclf.errors import run_stage

OUTPUT = "data/sample"


def write_digits(output, size):
    """data/sample/<digit>/<index>.png, dark ink on white, size x size pixels."""
    digits = load_digits()
    tmp = output + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        folder = os.path.join(tmp, str(label))
        os.makedirs(folder, exist_ok=True)
        gray = (255 - pixels * (255 / 16)).round().astype(np.uint8)  # values are 0..16
        image = Image.fromarray(gray, mode="L").resize((size, size), Image.BICUBIC)
        image.save(os.path.join(folder, f"{index:04d}.png"))
    shutil.rmtree(output, ignore_errors=True)
    os.replace(tmp, output)
    return len(digits.target)


def main():
    params = params_lib.load()
    count = write_digits(OUTPUT, params["sample"]["resolution"])
    return f"sample: wrote {count} digit images to {OUTPUT}/"


if __name__ == "__main__":
    run_stage(main)
