"""`dvc exp run -S` rewrites params.yaml with DVC's round-trip YAML editor. Laid out as that
editor writes it (lists in block style with their comment above, nulls empty, no comment
right after a list), the project's params.yaml stays valid and unchanged but for the values
set, through any sequence of edits; with `dense: [256]  # comment` the second edit that sets
a list merged two lines into invalid YAML (DVC 3.67)."""
import os
import shutil
import subprocess

import pytest
import yaml

from tests.informative import ROOT

pytestmark = pytest.mark.slow

# Back to back, each applied to the workspace, as a user runs them: every list-valued and
# nullable param, both ways, and a few scalars and flow mappings around them.
EDITS = [
    ["seed=1", "finetune.unfreeze=0"],
    ["seed=1", "finetune.unfreeze=0", "head.dense=[]"],
    ["head.dense=[64,32]"], ["head.dense=[256]"],
    ["export.formats=[]"], ["export.formats=[saved_model,tflite_int8]"],
    ["data.exclude=[a.png,b.png]"], ["data.exclude=[]"],
    ["data.labels=my_images/labels.csv"], ["data.labels=null"],
    ["evaluate.unknown_dir=other_photos"], ["evaluate.unknown_dir=null"],
    ["image_size=null"], ["image_size=224"],
    ["backbones.mobilenet.alpha=0.5"], ["class_weight={cat: 2.0}"], ["class_weight=none"],
    ["head.pooling=max", "export.strict=true", "data.max_bad_rows=0.1"],
]


def set_value(values, dotted_key, text):
    *path, last = dotted_key.split(".")
    for key in path:
        values = values[key]
    values[last] = yaml.safe_load(text)


def comments(text):
    """Every comment and blank line, in order: what an edit must not move or drop."""
    return [line.split("#", 1)[1].strip() if "#" in line else ""
            for line in text.splitlines() if "#" in line or not line.strip()]


def test_back_to_back_set_params_keep_params_yaml_valid_and_its_other_values(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(os.path.join(ROOT, "params.yaml"), repo / "params.yaml")
    (repo / "dvc.yaml").write_text("stages:\n  echo:\n    cmd: python -c pass\n"
                                   "    params: [seed]\n")
    run = lambda *command: subprocess.run(command, cwd=repo, capture_output=True, text=True)
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                    ["git", "config", "user.name", "test"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "params"]):
        assert run(*command).returncode == 0
    original = (repo / "params.yaml").read_text()
    expected = yaml.safe_load(original)
    for edit in EDITS:
        result = run("dvc", "exp", "run", *[arg for pair in edit for arg in ("-S", pair)])
        assert result.returncode == 0, (edit, result.stderr[-1500:])
        for pair in edit:
            set_value(expected, *pair.split("=", 1))
        text = (repo / "params.yaml").read_text()
        assert yaml.safe_load(text) == expected, edit
        assert comments(text) == comments(original), edit
