"""The documentation: a README that is a front door, and pages whose references resolve.

`make docs` (part of `make test`) builds the site with every warning an error, which catches a
broken link between pages and a function the API reference names that no longer exists. These
tests catch what the build cannot see: the README (not part of the site), and the repository
paths a page names in code spans.
"""

from __future__ import annotations

import re

from conftest import REPO

PAGES = sorted((REPO / "docs").rglob("*.md"))
#: top-level folders and files of the repository a page may name
TOP = {p.name for p in REPO.iterdir() if not p.name.startswith(".")}


def test_the_readme_is_a_front_door_that_links_only_to_pages_that_exist():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)", readme)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 20  # the two commands' pages and the site's sections
    missing = [link for link in local if not (REPO / link).exists()]
    assert missing == []


def named_paths(text: str) -> list[str]:
    """Repository paths named in code spans: `src/ame/x.py`, `tests/workflow/test_y.py`."""
    spans = re.findall(r"`([^`\n]+)`", text)
    paths = []
    for span in spans:
        for token in span.split():
            token = token.strip("(),;:")
            head = token.split("/", 1)[0]
            if "/" in token and head in TOP and not re.search(r"[<>{}*…]|\.\.\.", token):
                paths.append(token)
    return paths


def test_every_repository_path_a_page_names_exists():
    missing = {}
    for page in [*PAGES, REPO / "README.md"]:
        for path in named_paths(page.read_text()):
            if not (REPO / path).exists() and not path.startswith(("results/", "data/", "logs/")):
                missing.setdefault(page.relative_to(REPO).as_posix(), []).append(path)
    assert missing == {}


def test_a_renamed_file_is_caught():
    text = "see `src/ame/estimation/estimator.py` and `tests/no_such_test.py`"
    assert named_paths(text) == ["src/ame/estimation/estimator.py", "tests/no_such_test.py"]
    assert not (REPO / named_paths(text)[1]).exists()


def test_every_page_is_in_the_navigation():
    import yaml

    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    listed = set(re.findall(r"[\w/.-]+\.md", str(nav)))
    pages = {p.relative_to(REPO / "docs").as_posix() for p in PAGES}
    assert pages == listed
