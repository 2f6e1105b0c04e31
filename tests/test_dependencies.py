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
