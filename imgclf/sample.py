"""The embedded sample: scikit-learn's handwritten digits (1,797 real 8x8 scans, shipped
inside scikit-learn, no download) as PNG files in class folders, upscaled for the backbones.

Its folder is the default data.dir, so a user may drop photos into it. DVC would delete them
before rerunning the stage; the stage's output is therefore persistent (dvc.yaml) and the
stage itself refuses to run while the folder holds a file it did not write.
"""
import hashlib
import io
import json
import os

import numpy as np
from PIL import Image

from imgclf.errors import UserError
from imgclf.files import replaced_when_done

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


def foreign_files(output, files):
    """The files in output that the stage did not write: neither recorded in its WRITTEN
    list nor equal to what it writes now (`files`)."""
    try:
        with open(os.path.join(output, WRITTEN), encoding="utf-8") as f:
            written = json.load(f)
    except (FileNotFoundError, ValueError):
        written = {}
    foreign = []
    for root, dirs, names in os.walk(output):
        # The stage writes no links: a linked file or folder is the user's (os.walk would not
        # look inside a linked folder, and the rewrite would delete the link).
        foreign += [os.path.join(root, name) for name in dirs
                    if os.path.islink(os.path.join(root, name))]
        for name in sorted(names):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, output).replace(os.sep, "/")
            if relative != WRITTEN and not own_file(path, written.get(relative),
                                                    files.get(relative)):
                foreign.append(path)
    return sorted(foreign)


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
    return sha == recorded_sha or (data is not None and sha == digest(data))


def write_digits(output, resolution):
    """Write the sample into output, replacing only what an earlier run wrote; a file it did
    not write stops it with one line, and nothing is deleted."""
    files = digit_pngs(resolution)
    foreign = foreign_files(output, files) if os.path.isdir(output) else []
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise UserError(f"{foreign[0]}{more} in {output}/ were not written by the sample stage, "
                        f"which rewrites {output}/; move them to a folder of your own (e.g. "
                        f"my_images/) and set data.dir to it")
    with replaced_when_done(output) as tmp:
        for relative, data in files.items():
            os.makedirs(os.path.join(tmp, os.path.dirname(relative)), exist_ok=True)
            with open(os.path.join(tmp, relative), "wb") as f:
                f.write(data)
        with open(os.path.join(tmp, WRITTEN), "w", encoding="utf-8") as f:
            json.dump({relative: digest(data) for relative, data in files.items()}, f)
    return len(files)
