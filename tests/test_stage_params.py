"""Each stage reads no param outside its `params:` list in dvc.yaml, and no other stage's
output outside its `deps:`: a read it does not declare would leave DVC to skip the stage
after that input changed (a stale output). Read statically from the code each stage runs
(its script and the imgclf modules it imports)."""
import ast
import os

import pytest
import yaml

from imgclf.report import reported_params
from tests.test_dependencies import ROOT, code_run_by, stages

# Their reads change no output: params.py and model_params.py validate every key (a bad
# value stops any stage), and backup.py hashes all of them to decide whether to resume.
VALIDATE_ONLY = {"imgclf/params.py", "imgclf/model_params.py", "imgclf/backup.py"}


def key_chain(node, aliases):
    """The dotted key of a subscript chain params["a"]["b"] (or alias["b"] where
    alias = params["a"]), or None when it is not rooted at params."""
    chain = []
    while isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, str):
        chain.insert(0, node.slice.value)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    if node.id == "params":
        return ".".join(chain)
    if node.id in aliases:
        return ".".join([aliases[node.id], *chain])
    return None


def param_reads(path):
    """Dotted keys the file reads: chains rooted at a name `params`, or at a name assigned
    one (settings = params["evaluate"]; settings["tta"] reads evaluate.tta). A name of a
    section used whole (passed on) reads all of it."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            pairs = [(node.targets[0], node.value)]
            if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = zip(node.targets[0].elts, node.value.elts)
            for target, value in pairs:
                key = key_chain(value, {})
                if isinstance(target, ast.Name) and key:
                    aliases[target.id] = key
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}
    assigned = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)}
    assigned |= {id(element) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Tuple) for element in node.value.elts}
    reads = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and id(node) not in inner | assigned:
            key = key_chain(node, aliases)
            if key:
                reads.add(key)
        elif isinstance(node, ast.Name) and node.id in aliases and id(node) not in inner \
                and isinstance(node.ctx, ast.Load):
            reads.add(aliases[node.id])  # the section itself, passed on
    used = {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return reads | {key for name, key in aliases.items() if name not in used}


def declared(name):
    return [next(iter(p)) if isinstance(p, dict) else p for p in stages()[name].get("params", [])]


def covered(key, declared_keys):
    return any(key == d or key.startswith(d + ".") or (d == "backbones.${model}" and
               key.startswith("backbones")) for d in declared_keys)


@pytest.mark.parametrize("name", list(stages()))
def test_a_stage_reads_only_the_params_it_declares(name):
    reads = {(key, path) for path in sorted(code_run_by(f"stages/{name}.py") - VALIDATE_ONLY)
             for key in param_reads(path)}
    undeclared = sorted((key, path) for key, path in reads if not covered(key, declared(name)))
    assert not undeclared, f"dvc.yaml: stage {name} reads {undeclared} but does not list them"


def test_the_reader_sees_chains_aliases_and_sections_passed_on(tmp_path, monkeypatch):
    code = ("def main(params):\n"
            "    a, b = params['evaluate'], params['head']['pooling']\n"
            "    settings = params['export']\n"
            "    use(a['tta'], settings)\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "x.py").write_text(code, encoding="utf-8")
    monkeypatch.setattr("tests.test_stage_params.ROOT", str(tmp_path))
    assert param_reads("stages/x.py") == {"evaluate.tta", "head.pooling", "export"}


def test_the_report_shows_only_params_the_plot_stage_declares():
    with open(os.path.join(ROOT, "params.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    shown = reported_params(values)
    assert set(shown["backbones"]) == {values["model"]}
    missing = [key for key in shown if not covered(key, declared("plot"))]
    assert not missing, f"the report shows {missing}, which the plot stage does not declare"


def path_constants(script):
    """The module-level string constants of a stage script (PREPARED = "data/prepared", ...)
    and the strings of module-level dicts of them."""
    with open(os.path.join(ROOT, script), encoding="utf-8") as f:
        tree = ast.parse(f.read(), script)
    values = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            values |= {n.value for n in ast.walk(node.value)
                       if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return values


@pytest.mark.parametrize("name", list(stages()))
def test_a_stage_declares_every_other_stages_output_its_script_names(name):
    from imgclf.params import stage_outputs

    outputs = stage_outputs(os.path.join(ROOT, "dvc.yaml"))
    deps = {dep for dep in stages()[name].get("deps", []) if isinstance(dep, str)}
    named = {path for path in path_constants(f"stages/{name}.py")
             if outputs.get(path, name) != name}
    assert not named - deps, f"dvc.yaml: stage {name} reads {sorted(named - deps)} undeclared"
