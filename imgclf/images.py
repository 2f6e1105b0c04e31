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


# Modes Image.reduce takes (not 1, P, I;16: those are decoded at full size, then converted).
REDUCIBLE = {"L", "RGB", "RGBA", "LA", "PA", "I", "F", "CMYK", "YCbCr"}


def reduced(image, size, max_side):
    """The image shrunk by whole factors, before any full-size copy: for a size x size image
    to no less than 3x that (the gap Pillow's own resize leaves, so it looks the same), for
    max_side to no less than max_side. JPEG at decode time (draft), other formats right
    after decoding (reduce): a 100-megapixel PNG costs one decode, not one per conversion."""
    bound = size or max_side
    image.draft("RGB", (bound, bound))  # JPEG: decoded at 1/2, 1/4 or 1/8 scale
    width, height = image.size
    if size:  # a square of size: each side on its own, as resize(reducing_gap=3) does
        factors = (max(1, width // (3 * size)), max(1, height // (3 * size)))
    else:  # at most max_side on the longer side, the aspect kept; no gap: a check, not a
        # training image (a 10,000-px photo would not be reduced at all below 3 x 2,048)
        factors = (max(1, max(width, height) // max_side),) * 2
    if factors == (1, 1) or image.mode not in REDUCIBLE:
        return image
    return image.reduce(factors)


def load_image(path, size=None, max_side=None):
    """One image file as a uint8 array: size x size x 3 (size None: as it is, or with
    max_side at most that on its longer side, the aspect kept): EXIF orientation applied,
    first frame, transparency on white, any mode converted to RGB. Large photos are
    reduced before anything else (reduced). Raises on unreadable files and on content of
    any format but PIL_FORMATS."""
    try:
        opened = Image.open(path, formats=PIL_FORMATS)
    except UnidentifiedImageError:
        raise UnidentifiedImageError("not a JPEG, PNG, BMP, GIF, WebP or TIFF image by its "
                                     "content (other formats are not decoded)") from None
    with opened as image:
        if size or max_side:
            image = reduced(image, size, max_side)
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
        elif max_side and max(image.size) > max_side:
            image.thumbnail((max_side, max_side), Image.BILINEAR, reducing_gap=3.0)
        return np.asarray(image, dtype=np.uint8)


def pixel_count(path):
    """Width x height from the file's header (nothing decoded); 0 if it cannot be read."""
    try:
        with Image.open(path, formats=PIL_FORMATS) as image:
            return image.width * image.height
    except Exception:  # whatever Pillow raises for this file: decoding reports it later
        return 0


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
