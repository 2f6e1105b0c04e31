"""Writing outputs so that an interrupted stage never leaves a file that looks complete."""
import contextlib
import json
import os
import shutil


@contextlib.contextmanager
def replaced_when_done(path):
    """Yield a temporary path beside `path` (same extension, so Keras and matplotlib know the
    format); it becomes `path` only if the block finishes."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.isdir(tmp):  # left by an earlier interrupted run
        shutil.rmtree(tmp)
    try:
        yield tmp
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(tmp, path)


def shown_name(path):
    """A file name as text that every UTF-8 writer (CSV, JSON, stdout) takes: bytes that are
    not UTF-8, which Python keeps as lone surrogates, are escaped (b"caf\\xe9" becomes
    "caf\\udce9"), as the split's skipped.csv writes them."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def write_json(path, data):
    with replaced_when_done(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
