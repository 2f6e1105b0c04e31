"""What reruns when: each change of the table in docs/reruns.md, applied with real DVC to the tiny
pipeline (tests/conftest.py), reruns exactly the stages the table says.

Most rows only ask which stages a change invalidates: `dvc repro --dry` tells which stages'
own inputs changed, and DVC reruns those and what depends on their outputs. Two rows depend on
a stage's output coming out byte-identical, which only a real run shows."""
import pytest
import yaml

from tests.conftest import run, stages_run, stages_skipped

pytestmark = pytest.mark.slow

ALL = ["sample", "weights", "split", "preprocess", "features", "probe", "transfer", "finetune",
       "calibrate", "evaluate", "export", "audit", "plot"]
# Runs in every repro (it hashes a weights file); its output is byte-identical unless the
# weights change, so what depends on it is skipped.
ALWAYS = {"weights", "sample"}


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
    with open(repo / path, "a", encoding="utf-8") as f:
        f.write("# changed\n")


def downstream(repo, stages):
    """The stages, and every stage that depends on one of their outputs, transitively."""
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]

    def paths(entries):
        return {next(iter(e)) if isinstance(e, dict) else e for e in entries}
    result = set(stages)
    for name in ALL:  # dvc.yaml lists the stages in an order that respects their dependencies
        outs = set().union(*(paths(pipeline[s].get("outs", []) + pipeline[s].get("metrics", []))
                             for s in result))
        if paths(pipeline[name].get("deps", [])) & outs:
            result.add(name)
    return result


def change(repo, what, value):
    if what.endswith(".py"):
        touch(repo, what)
    else:
        if what == "split.train":
            set_param(repo, "split.test", 0.15)
        set_param(repo, what, value)


DRY_ROWS = [
    ("finetune.unfreeze", 3, from_stage("finetune")),
    ("finetune.learning_rate", 0.001, from_stage("finetune")),
    ("head.dropout", 0.3, from_stage("transfer")),
    ("head.pooling", "max", from_stage("transfer") | {"probe"}),
    ("transfer.learning_rate", 0.002, from_stage("transfer")),
    ("class_weight", "balanced", from_stage("transfer")),
    ("backbones.mobilenet.alpha", 0.5, from_stage("features")),
    ("backbones.mobilenet_v2.alpha", 0.5, set()),  # not the configured model
    ("model", "mobilenet_v2", from_stage("features")),
    ("weights", "none", from_stage("features")),
    ("image_size", 96, from_stage("features")),
    ("features.batch_size", 16, from_stage("features")),
    ("compute.xla", True, from_stage("features")),
    ("preprocess.max_unreadable", 0.1, from_stage("preprocess")),
    ("split.train", 0.6, from_stage("split")),
    ("seed", 7, from_stage("split")),
    ("data.max_bad_rows", 0.1, from_stage("split")),
    ("task", "multi_label", from_stage("split")),
    ("export.representative_images", 10, {"export", "plot"}),  # the report shows it
    ("evaluate.known_kept", 0.9, from_stage("calibrate")),
    ("evaluate.tta", True, {"evaluate", "audit", "plot"}),
    ("evaluate.unknown_dir", "elsewhere", {"evaluate", "export", "audit", "plot"}),
    ("audit.similarity", 0.8, {"audit", "plot"}),
    ("stages/transfer.py", None, from_stage("transfer")),
    ("imgclf/unfreeze.py", None, from_stage("finetune")),
    ("imgclf/params.py", None, set(ALL)),  # every stage validates params with it
    ("imgclf/training.py", None, from_stage("transfer")),  # features seeds with imgclf/compute.py
]


@pytest.fixture(scope="module")
def repo(tiny_dvc_repo, tmp_path_factory):
    import shutil

    copy = tmp_path_factory.mktemp("reruns") / "repo"
    shutil.copytree(tiny_dvc_repo, copy, symlinks=True)
    return copy


@pytest.mark.parametrize("what, value, expected", DRY_ROWS, ids=[row[0] for row in DRY_ROWS])
def test_a_change_invalidates_what_the_table_says(repo, what, value, expected):
    change(repo, what, value)
    try:
        output = run(repo, "dvc", "repro", "--dry")
    finally:
        run(repo, "git", "checkout", "-q", ".")
    assert stages_run(output) >= ALWAYS
    assert downstream(repo, stages_run(output) - ALWAYS) == expected - ALWAYS, output[-2000:]


def test_changes_whose_outputs_come_out_the_same_stop_there(dvc_repo):
    # features applies augmentation only to its extra views (0 here): its output does not
    # change, so DVC skips transfer; finetune trains on augmented images and reruns.
    set_param(dvc_repo, "augment.zoom", 0.2)
    output = run(dvc_repo, "dvc", "repro")
    expected = {"features", "finetune", "calibrate", "evaluate", "export", "audit", "plot"} | ALWAYS
    assert stages_run(output) == expected, output[-2000:]
    assert stages_skipped(output) == set(ALL) - expected
    # evaluate writes the same metrics again, so plot's inputs are unchanged and it is skipped.
    touch(dvc_repo, "stages/evaluate.py")
    output = run(dvc_repo, "dvc", "repro")
    assert stages_run(output) == {"evaluate"} | ALWAYS, output[-2000:]
    assert stages_skipped(output) == set(ALL) - {"evaluate"} - ALWAYS


def test_a_new_resolution_stores_images_at_it(dvc_repo):
    # Under a param named `size`, DVC 3.67 took this change for the run it had cached and
    # restored the old images (treeverse/dvc#10296).
    import numpy as np

    set_param(dvc_repo, "preprocess.resolution", 80)
    output = run(dvc_repo, "dvc", "repro", "preprocess")
    assert "is cached" not in output, output[-2000:]
    for split in ("train", "val", "test"):
        images = np.load(dvc_repo / "data" / "prepared" / split / "images.npy", mmap_mode="r")
        assert images.shape[1:] == (80, 80, 3)
