"""The embedded sample: scikit-learn's handwritten digits (1,797 real 8x8 scans, shipped
inside scikit-learn, no download) as PNG files in class folders, upscaled for the backbones.

Its folder is the default data.dir, so it is the first folder a user fills. It is therefore
not a DVC output: DVC deletes what an output folder holds beyond dvc.lock's list on every
`dvc exp run`, `dvc exp apply` and `dvc checkout`, before any stage runs (docs/data.md). The
stage runs on every `dvc repro` and writes its own files one by one, each replaced only if
the stage wrote it; a file of the user's is never replaced or deleted. Its DVC output is a
small summary (data/sample.json) that orders the split after it.
"""
import hashlib
import io
import json
import os

import numpy as np
from PIL import Image

from imgclf.errors import UserError
from imgclf.files import replaced_when_done
from imgclf.images import image_files

WRITTEN = ".written.json"  # {file: sha256} of what the stage wrote (hidden: split skips it)


def digit_pngs(resolution):
    """{relative path: PNG bytes}: <digit>/<index>.png, dark ink on white."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    files = {}
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        gray = (255 - pixels * (255 / 16)).round().astype(np.uint8)  # values are 0..16
        image = Image.fromarray(gray, mode="L").resize((resolution, resolution), Image.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        files[f"{label}/{index:04d}.png"] = buffer.getvalue()
    return files


def digest(data):
    return hashlib.sha256(data).hexdigest()


def own_file(path, recorded_sha, data):
    """Whether the file at path is one the stage wrote: its bytes are those it recorded, or
    those it writes now; a link or a file it cannot read is not."""
    if os.path.islink(path):
        return False
    try:
        with open(path, "rb") as f:
            sha = digest(f.read())
    except OSError:
        return False
    return sha == recorded_sha or sha == digest(data)


def read_written(output):
    try:
        with open(os.path.join(output, WRITTEN), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def write_file(path, data):
    """path holds data, or its old bytes if the write is interrupted."""
    with replaced_when_done(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_digits(output, resolution):
    """Write the sample into output, file by file; a path of the sample's that holds a file
    (or link) the stage did not write stops it with one line, before anything is written.
    Returns (images written, the image files in output that are not the sample's)."""
    files = digit_pngs(resolution)
    written = read_written(output)
    taken = [os.path.join(output, relative) for relative, data in files.items()
             if os.path.lexists(os.path.join(output, relative))
             and not own_file(os.path.join(output, relative), written.get(relative), data)]
    if taken:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise UserError(f"{taken[0]}{more}: a file the sample stage did not write, at a path "
                        f"of the sample's; rename or move it (a folder of your own, e.g. "
                        f"my_images/, set as data.dir), and it is never overwritten")
    for relative, data in files.items():
        path = os.path.join(output, relative)
        if not (os.path.isfile(path) and written.get(relative) == digest(data)):
            write_file(path, data)
    write_file(os.path.join(output, WRITTEN),
               json.dumps({relative: digest(data) for relative, data in files.items()}).encode())
    sample_paths = {os.path.join(output, relative) for relative in files}
    others = [path for path in image_files(output) if path not in sample_paths]
    return len(files), others
