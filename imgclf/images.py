"""Image files on disk -> uint8 arrays: which files are images, and decoding them (Pillow,
restricted to the formats below)."""
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgclf.errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# The only decoders Pillow may use, whatever a file's name says: without formats= it picks one
# from the content, and an EPS file named x.jpg would go to Ghostscript.
PIL_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")


def image_files(folder):
    """Every image file below folder, sorted, hidden files and folders left out, extensions
    matched in any case."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            if not file.startswith(".") and os.path.splitext(file)[1].lower() in IMAGE_EXTENSIONS:
                yield os.path.join(root, file)


def linked_folders(folder):
    """Every link to a folder below folder (hidden ones left out), sorted. Neither
    image_files nor DVC's hash of a dependency looks inside one (DVC's walk follows no
    folder link), so its images could change unseen: the split lists them, skipped."""
    links = []
    for root, dirs, _ in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        links += [os.path.join(root, d) for d in dirs if os.path.islink(os.path.join(root, d))]
    return sorted(links)


def load_image(path, size=None):
    """One image file as a size x size x 3 uint8 array (size None: as it is): EXIF
    orientation applied, first frame, transparency on white, any mode converted to RGB.
    Raises on unreadable files and on content of any format but PIL_FORMATS."""
    try:
        opened = Image.open(path, formats=PIL_FORMATS)
    except UnidentifiedImageError:
        raise UnidentifiedImageError("not a JPEG, PNG, BMP, GIF, WebP or TIFF image by its "
                                     "content (other formats are not decoded)") from None
    with opened as image:
        if size:
            image.draft("RGB", (size, size))  # JPEG: decode at reduced scale, much faster
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "P", "PA") and (
                image.mode != "P" or "transparency" in image.info):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        if image.mode == "I;16" or image.mode == "I":
            image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8))
        image = image.convert("RGB")
        if size:
            image = image.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
        return np.asarray(image, dtype=np.uint8)


def try_load_image(path, size):
    """(pixels, None), or (None, the reason) for a file that cannot be read: reported, not fatal."""
    try:
        return load_image(path, size), None
    except Exception as error:  # whatever Pillow raises for this file
        return None, f"{type(error).__name__}: {error}".splitlines()[0]


def read_folder(folder, size, param):
    """Every image file below folder (the value of param) at size x size: (images [n, size,
    size, 3] uint8, their files, [(file, why)] for those that could not be read)."""
    if not os.path.isdir(folder):
        raise UserError(f"params.yaml: {param} {folder!r} is not a folder; expected null or "
                        "the path of a folder of images")
    pixels, files, unreadable = [], [], []
    for path in image_files(folder):
        image, reason = try_load_image(path, size)
        if image is None:
            unreadable.append((path, reason))
        else:
            pixels.append(image)
            files.append(path)
    if not pixels:
        raise UserError(f"params.yaml: {param} {folder!r} holds no readable image "
                        f"({len(unreadable)} unreadable); expected .jpg, .png and the like")
    return np.stack(pixels), files, unreadable
