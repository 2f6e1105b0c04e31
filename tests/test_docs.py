"""Every relative link in README.md and docs/*.md resolves: the file exists, and a #anchor
names a heading of it (GitHub's anchors: lower case, spaces to '-', other punctuation
dropped)."""
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def pages():
    docs = sorted(f"docs/{name}" for name in os.listdir(os.path.join(ROOT, "docs"))
                  if name.endswith(".md"))
    return ["README.md"] + docs


def text_of(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return FENCE.sub("", f.read())  # a code block's brackets are no links


def anchor(heading):
    words = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return words.replace(" ", "-")


def anchors(page):
    headings = re.findall(r"^#+ (.+)$", text_of(page), re.MULTILINE)
    return {anchor(heading) for heading in headings}


def broken_links(page):
    broken = []
    for target in LINK.findall(text_of(page)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:: not checked offline
        path, _, fragment = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(os.path.join(ROOT, linked)):
            broken.append(f"{target} (no file {linked})")
        elif fragment and linked.endswith(".md") and fragment not in anchors(linked):
            broken.append(f"{target} (no heading #{fragment} in {linked})")
    return broken


def test_anchors_follow_githubs_rules():
    assert anchor("What reruns when") == "what-reruns-when"
    assert anchor("Several labels per image (`task: multi_label`)") == \
        "several-labels-per-image-task-multi_label"


def test_a_broken_link_is_found(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# Top\n[ok](#top) [gone](docs/gone.md) "
                                        "[bad](#nowhere)\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert broken_links("README.md") == ["docs/gone.md (no file docs/gone.md)",
                                         "#nowhere (no heading #nowhere in README.md)"]


@pytest.mark.parametrize("page", pages())
def test_every_link_resolves(page):
    assert not broken_links(page), f"{page}: broken links {broken_links(page)}"


def test_the_readme_is_a_page_a_newcomer_can_start_from():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines: move reference to docs/"
    linked = set(LINK.findall(text_of("README.md")))
    unlinked = [page for page in pages()[1:] if not any(link.split("#")[0] == page
                                                        for link in linked)]
    assert not unlinked, f"README.md links to none of {unlinked}"
