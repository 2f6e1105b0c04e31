"""plots/report.html travels through DVC remotes, CI artifacts and Studio: no text that a
file name, a CSV cell, a class name or a param value puts into it may become markup, and its
Content-Security-Policy forbids scripts anyway."""
import os
import shutil
from html.parser import HTMLParser

from imgclf.prepare import prepare
from imgclf.report import dataset_summary, html_report
from imgclf.splitting import split_dataset
from tests.conftest import write_images

HOSTILE = "<img src=x onerror=alert(document.cookie)>"
SCRIPT = "<script>alert(1)</script>"
# The only elements and attributes the report writes itself.
ELEMENTS = {"html", "head", "meta", "style", "body", "h1", "h2", "ul", "li", "b", "table", "tr",
            "th", "td", "img"}


class Elements(HTMLParser):
    """Every start tag (name, attributes) and the text, as a browser's tokenizer reads them."""
    def __init__(self, page):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def hostile_dataset(tmp_path):
    """A real split and preprocess whose skipped.csv reasons hold a hostile file name (the
    first of two identical images) and a CSV's hostile split cell."""
    photos = write_images(str(tmp_path / "photos"), ["cat", "dog"], per_class=6)
    first = os.path.join(photos, "cat", "img_000.png")
    shutil.copy(first, os.path.join(photos, "cat", f"{HOSTILE}.png"))
    os.rename(first, os.path.join(photos, "cat", "zz.png"))  # the hostile one sorts first
    rows = ["file,label,split"] + [f"{label}/{name},{label},"
                                   for label in ("cat", "dog")
                                   for name in sorted(os.listdir(os.path.join(photos, label)))]
    rows.append(f"dog/img_001.png,dog,{SCRIPT}")
    (tmp_path / "photos" / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    split_dataset(photos, str(tmp_path / "split"), (0.5, 0.25, 0.25), seed=0,
                  labels=os.path.join(photos, "labels.csv"))
    prepare(str(tmp_path / "split"), photos, str(tmp_path / "prepared"), 32, processes=1)
    return dataset_summary(str(tmp_path / "split"), str(tmp_path / "prepared"))


def test_no_hostile_text_becomes_markup_and_scripts_are_forbidden(tmp_path):
    dataset = hostile_dataset(tmp_path)
    reasons = " ".join(dataset["skipped"])
    assert HOSTILE in reasons and SCRIPT in reasons  # both reach the report
    metrics = {"test": {"accuracy": 0.9, "n_images": 4, "transfer_accuracy": 0.9,
                        "evaluated_on_val": 0, HOSTILE: SCRIPT},
               "probe": {"val_accuracy": 0.9},
               SCRIPT: {"value": HOSTILE},
               "finetune": {"unfrozen_layers": 0, "reverted_to_start": 0, "epochs_run": 0,
                            "started_from": "transfer", "kept": "transfer", "best_val_accuracy": 0.9,
                            "kept_because": f"class {HOSTILE} won"}}
    params = {"model": SCRIPT, "class_weight": {HOSTILE: 2.0}, "data": {"dir": HOSTILE}}
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG not drawn")
    page = html_report(metrics, dataset, params, {HOSTILE: str(png)})
    parsed = Elements(page)
    assert {tag for tag, _ in parsed.tags} <= ELEMENTS, parsed.tags
    assert not [attrs for _, attrs in parsed.tags if any(name.startswith("on") for name in attrs)]
    assert all(attrs["src"].startswith("data:image/png;base64,")
               for tag, attrs in parsed.tags if tag == "img")
    text = "".join(parsed.text)
    assert text.count(HOSTILE) >= 5 and text.count(SCRIPT) >= 4  # shown, as text
    policy = [attrs["content"] for tag, attrs in parsed.tags
              if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"]
    assert policy and "default-src 'none'" in policy[0] and "script-src" not in policy[0]
