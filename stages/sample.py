"""sample: write scikit-learn's handwritten digits (1,797 real 8x8 scans, shipped inside
scikit-learn, no download) as PNG files in data/sample/<digit>/, upscaled for the backbones.
data/sample/ is not a DVC output, so DVC never deletes a file a user put there; the stage
runs on every repro and replaces only files it wrote (imgclf.sample). Its output,
data/sample.json, says what it wrote."""
from imgclf import params as params_lib
from imgclf.errors import run_stage
from imgclf.files import write_json
from imgclf.sample import write_digits

FOLDER = "data/sample"
SUMMARY = "data/sample.json"


def main():
    params = params_lib.load()
    resolution = params["sample"]["resolution"]
    count, others = write_digits(FOLDER, resolution)
    write_json(SUMMARY, {"folder": FOLDER, "images": count, "resolution": resolution})
    note = (f"; {len(others)} other image file(s) there, e.g. {others[0]}, are not the "
            f"sample's: kept, and read as data while data.dir is {FOLDER}" if others else "")
    return f"sample: wrote {count} digit images to {FOLDER}/{note}"


if __name__ == "__main__":
    run_stage(main)
