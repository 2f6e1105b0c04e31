"""sample: write scikit-learn's handwritten digits (1,797 real 8x8 scans, shipped inside
scikit-learn, no download) as PNG files in class folders, upscaled for the backbones. A file
in data/sample/ that the stage did not write stops it (imgclf.sample): it is never deleted."""
from imgclf import params as params_lib
from imgclf.errors import run_stage
from imgclf.sample import write_digits

OUTPUT = "data/sample"


def main():
    params = params_lib.load()
    count = write_digits(OUTPUT, params["sample"]["resolution"])
    return f"sample: wrote {count} digit images to {OUTPUT}/"


if __name__ == "__main__":
    run_stage(main)
