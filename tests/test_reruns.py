"""What reruns when: each change of the README's table, applied with real DVC to a tiny
pipeline (weights: none, 32-pixel images), reruns exactly the stages the table says."""
import pytest
import yaml

from tests.conftest import run, stages_run, stages_skipped, tiny_pipeline_repo

ALL = ["sample", "split", "preprocess", "features", "transfer", "finetune", "evaluate", "export",
       "plot"]


def from_stage(first):
    return set(ALL[ALL.index(first):])


def set_param(repo, dotted_key, value):
    values = yaml.safe_load((repo / "params.yaml").read_text())
    *path, last = dotted_key.split(".")
    node = values
    for key in path:
        node = node[key]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))


def touch(repo, path):
    with open(repo / path, "a") as f:
        f.write("# changed\n")


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    repo = tiny_pipeline_repo(tmp_path_factory.mktemp("reruns"))
    assert stages_run(run(repo, "dvc", "repro")) == set(ALL)
    return repo


# Applied in this order, each to the state the previous row left.
ROWS = [
    ("finetune.unfreeze", 3, from_stage("finetune")),
    ("finetune.learning_rate", 0.001, from_stage("finetune")),
    ("head.dropout", 0.3, from_stage("transfer")),
    ("transfer.learning_rate", 0.002, from_stage("transfer")),
    # Random-weight feature maps at 32 pixels are ~1e-12, zeros in float16: two backbones'
    # features differ only in shape here, so each row that must rerun transfer changes it.
    ("backbones.mobilenet.alpha", 0.5, from_stage("features")),  # 768 -> 512 channels
    ("backbones.mobilenet_v2.alpha", 0.5, set()),  # not the configured model
    ("model", "mobilenet_v2", from_stage("features")),
    ("image_size", 64, from_stage("features")),
    # features applies augmentation only to its extra views (0 here): its output does not
    # change, so DVC skips transfer; finetune trains on augmented images and reruns.
    ("augment.zoom", 0.2, {"features", "finetune", "evaluate", "export", "plot"}),
    ("stages/transfer.py", None, from_stage("transfer")),
    # evaluate writes the same metrics again, so plot's inputs are unchanged and it is skipped.
    ("stages/evaluate.py", None, {"evaluate"}),
    ("split.train", 0.6, from_stage("split")),
]


@pytest.mark.parametrize("change, value, expected", ROWS, ids=[row[0] for row in ROWS])
def test_a_change_reruns_only_what_it_affects(tiny_repo, change, value, expected):
    if change.endswith(".py"):
        touch(tiny_repo, change)
    else:
        if change == "split.train":
            set_param(tiny_repo, "split.test", 0.2)
        set_param(tiny_repo, change, value)
    output = run(tiny_repo, "dvc", "repro")
    assert stages_run(output) == expected, output[-2000:]
    assert stages_skipped(output) == set(ALL) - expected
