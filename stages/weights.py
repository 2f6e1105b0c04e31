"""weights: data/weights.json, what identifies the backbone weights of this run (imagenet,
none, or a file's path with its size and SHA-256). A path in params.yaml is only a string to
DVC: this stage runs every time (it hashes one file), and features and finetune depend on its
output, so a weights file replaced under the same name reruns them, and the run cache never
restores features made from the old file. Unchanged weights leave the output byte-identical
and DVC skips what follows."""
from imgclf import model_params
from imgclf.backbones import weights_record
from imgclf.errors import run_stage
from imgclf.files import write_json

OUTPUT = "data/weights.json"


def main():
    params = model_params.load()  # first in every dvc repro: checks the backbone's params
    record = weights_record(params["weights"])
    write_json(OUTPUT, record)
    sha = f" (sha256 {record['sha256'][:12]}...)" if "sha256" in record else ""
    return f"weights: {params['weights']}{sha} -> {OUTPUT}"


if __name__ == "__main__":
    run_stage(main)
