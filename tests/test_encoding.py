"""Every text file the project writes or reads is UTF-8, whatever the platform's default
(Windows' is cp1252): class names outside it survive split, preprocess and the JSON files."""
import ast
import glob
import os
import subprocess
import sys

from tests.informative import ROOT

SCRIPT = """
import sys
import warnings
warnings.filterwarnings("error", category=EncodingWarning, module=r"(imgclf|tests)\\.")
from imgclf.dataset import read_classes, read_split
from imgclf.files import read_json, write_json
from imgclf.prepare import prepare
from imgclf.splitting import split_dataset
from tests.conftest import write_images

folder, work = sys.argv[1], sys.argv[2]
names = ["caf\\u00e9", "\\u65e5\\u672c", "\\u0161um"]
write_images(folder, names, per_class=4)
split_dataset(folder, work + "/split", (0.5, 0.5), seed=0)
prepare(work + "/split", folder, work + "/prepared", 8, processes=1)
assert read_classes(work + "/prepared") == sorted(names), read_classes(work + "/prepared")
images, labels, files = read_split(work + "/prepared", "train")
assert all(name in " ".join(files) for name in names), files
write_json(work + "/m.json", {"class": names[1]})
assert read_json(work + "/m.json") == {"class": names[1]}
print("ok")
"""


def test_split_and_preprocess_never_rely_on_the_platform_default(tmp_path):
    # -X warn_default_encoding warns at every text open() that falls back on the platform's
    # encoding (cp1252 on Windows, where a class name outside it is a traceback); SCRIPT's
    # filter makes each one in the project's code fail the run.
    command = [sys.executable, "-X", "warn_default_encoding", "-c", SCRIPT, str(tmp_path / "photos"), str(tmp_path / "work")]
    result = subprocess.run(command, env={**os.environ, "PYTHONPATH": ROOT},
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_every_text_open_in_the_project_names_its_encoding():
    """labels.txt, report.html, confusion.csv, params.yaml ...: no open() in text mode
    without encoding= in imgclf/, stages/ or benchmarks/."""
    missing = []
    for path in sorted(glob.glob(os.path.join(ROOT, "*", "*.py"))):
        if os.path.basename(os.path.dirname(path)) not in ("imgclf", "stages", "benchmarks"):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open"):
                continue
            mode = node.args[1].value if len(node.args) > 1 and isinstance(
                node.args[1], ast.Constant) else "r"
            keywords = {keyword.arg for keyword in node.keywords}
            if "b" not in mode and "encoding" not in keywords:
                missing.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert missing == []
