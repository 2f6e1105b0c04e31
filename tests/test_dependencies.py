"""dvc.yaml lists, for every stage, each file of the project's code that the stage runs:
its script and every imgclf module it imports, directly or through other modules (imports
inside functions count). A module left out would let DVC skip a stage after its code
changed."""
import ast
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def imported_modules(path):
    """Project files (stages/..., imgclf/...) that the file at path imports, at any depth."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    files = {name.replace(".", "/") + ".py" for name in names}
    if any(name.split(".")[0] == "imgclf" for name in names):
        files.add("imgclf/__init__.py")  # runs before any module of the package
    return {file for file in files if file.startswith(("imgclf/", "stages/"))
            and os.path.exists(os.path.join(ROOT, file))}


def code_run_by(script):
    seen, pending = set(), [script]
    while pending:
        path = pending.pop()
        if path not in seen:
            seen.add(path)
            pending.extend(imported_modules(path))
    return seen


def stages():
    with open(os.path.join(ROOT, "dvc.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)["stages"]


@pytest.mark.parametrize("name", list(stages()))
def test_dvc_yaml_lists_the_code_each_stage_runs(name):
    stage = stages()[name]
    assert stage["cmd"] == f"python -m stages.{name}"
    deps = {dep for dep in stage["deps"] if isinstance(dep, str)}
    missing = sorted(code_run_by(f"stages/{name}.py") - deps)
    assert not missing, f"dvc.yaml: stage {name} runs {missing} but does not list them in deps"


def test_imports_inside_functions_are_followed():
    # predict imports imgclf.model inside main(); the model imports backbones at the top.
    assert {"imgclf/model.py", "imgclf/backbones.py"} <= code_run_by("imgclf/predict.py")


def code_files():
    """Every module of imgclf/ and every stage script."""
    folders = ("imgclf", "stages")
    return sorted(f"{folder}/{name}" for folder in folders
                  for name in os.listdir(os.path.join(ROOT, folder))
                  if name.endswith(".py") and f"{folder}/{name}" != "stages/__init__.py")


def reruns_by_imports():
    """{file: the stages that run it}, from the imports alone."""
    runs = {name: code_run_by(f"stages/{name}.py") for name in stages()}
    return {file: [name for name in stages() if file in runs[name]] for file in code_files()}


def reruns_in_docs():
    """{file: stages} from the table of docs/reruns.md."""
    table = {}
    with open(os.path.join(ROOT, "docs", "reruns.md"), encoding="utf-8") as f:
        for line in f:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) == 2 and cells[0].startswith(("`imgclf/", "`stages/")):
                listed = [] if cells[1].startswith("none") else cells[1].split(", ")
                table[cells[0].strip("`")] = listed
    return table


@pytest.mark.parametrize("name", list(stages()))
def test_dvc_yaml_lists_no_code_a_stage_does_not_run(name):
    # an extra module would rerun the stage for edits that cannot change its outputs
    deps = {dep for dep in stages()[name]["deps"] if isinstance(dep, str)}
    listed = {dep for dep in deps if dep.startswith(("imgclf/", "stages/"))}
    extra = sorted(listed - code_run_by(f"stages/{name}.py"))
    assert not extra, f"dvc.yaml: stage {name} lists {extra}, which it does not run"


def test_the_reruns_table_in_the_docs_is_the_one_dvc_yaml_gives():
    assert reruns_in_docs() == reruns_by_imports()


@pytest.mark.parametrize("module", ["imgclf/backup.py", "imgclf/export.py", "imgclf/charts.py",
                                    "imgclf/report.py", "imgclf/gallery.py",
                                    "imgclf/multilabel.py", "imgclf/training.py"])
def test_editing_later_code_never_reruns_preprocess_or_features(module):
    assert not {"preprocess", "features"} & set(reruns_by_imports()[module])


def test_adding_a_backbone_never_reruns_the_data_stages():
    assert not {"sample", "split", "preprocess"} & set(reruns_by_imports()["imgclf/backbones.py"])


def test_preprocess_runs_no_tensorflow_code():
    # the image decoding lives apart from tf.data batching: a batching edit leaves it alone
    assert "imgclf/dataset.py" not in code_run_by("stages/preprocess.py")


def test_no_test_or_benchmark_imports_a_stage():
    # stages are thin scripts; what tests need lives in imgclf. test_backbones runs a stage
    # in a subprocess to check that the data stages import no TensorFlow.
    offenders = []
    for folder in ("tests", "benchmarks"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                path = f"{folder}/{name}"
                if any(file.startswith("stages/") for file in imported_modules(path)):
                    offenders.append(path)
    assert not offenders, f"{offenders} import stages/: move what they need into imgclf"
