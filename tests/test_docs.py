"""The documentation: a README that is a front door, pages whose references resolve, and
measured figures that come from results files and cannot go stale.

`make docs` (part of `make test`) builds the site with every warning an error, which catches a
broken link between pages and a function the API reference names that no longer exists. These
tests catch what the build cannot see: the README (not part of the site), and the repository
paths a page names in code spans.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
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


# --- measured figures: each from the results file of the benchmark that measured it ---------

sys.path.insert(0, str(REPO / "benchmarks"))
import record  # noqa: E402
import stale  # noqa: E402
from stale import macros as _macros  # noqa: E402


def measured_sections(text: str) -> list[str]:
    """The text under every heading that says "measured", down to the next heading of the
    same or a higher level."""
    sections, current, level = [], None, 0
    for line in text.splitlines():
        heading = re.match(r"(#+)\s+(.*)", line)
        if heading and (current is None or len(heading[1]) <= level):
            if current is not None:
                sections.append("\n".join(current))
            current = None
            if "measured" in heading[2].lower():
                current, level = [], len(heading[1])
        elif current is not None:
            current.append(line)
    if current is not None:
        sections.append("\n".join(current))
    return sections


def typed_numbers(section: str) -> list[str]:
    """Decimal figures typed by hand: outside macro calls, code spans and code blocks."""
    section = re.sub(r"```.*?```", "", section, flags=re.S)
    section = re.sub(r"\{\{.*?\}\}", "", section, flags=re.S)
    section = re.sub(r"`[^`]*`", "", section)
    return re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", section)


def held_numbers(value) -> list[float]:
    """Every number a results record holds: its values and the figures it printed."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in held_numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in held_numbers(item)]
    if isinstance(value, str):
        return [float(n) for n in re.findall(r"-?\d+\.\d+|-?\d+", value.replace(",", ""))]
    return []


def unheld(section_numbers: list[str], records: list[dict]) -> list[str]:
    held = [n for r in records for n in held_numbers(r["results"]) + held_numbers(r["printed"])]
    missing = []
    for typed in section_numbers:
        digits = len(typed.split(".")[1])
        if not any(f"{abs(n):.{digits}f}" == typed for n in held):
            missing.append(typed)
    return missing


def test_every_quoted_results_file_exists_is_as_written_and_is_not_stale():
    assert stale.quoted(), "the measured pages quote results files"
    assert stale.stale() == {}, "rerun them: .venv/bin/python benchmarks/stale.py --run"


def test_every_number_under_a_measured_heading_comes_from_a_results_file():
    missing = {}
    for page in [*PAGES, REPO / "README.md"]:
        text = page.read_text()
        records = [
            json.loads((REPO / "benchmarks" / "results" / f"{name}.json").read_text())
            for name in _macros().quoted(text)
        ]
        for section in measured_sections(text):
            numbers = unheld(typed_numbers(section), records)
            if numbers:
                missing[page.relative_to(REPO).as_posix()] = numbers
    assert missing == {}


def test_no_page_says_a_figure_is_old_or_missing():
    stale = re.compile(r"measured (before|with the estimator before)|not (re-)?measured yet", re.I)
    said = [p.name for p in [*PAGES, REPO / "README.md"] if stale.search(p.read_text())]
    assert said == []


def test_the_rules_catch_a_hand_typed_an_edited_a_stale_and_a_deleted_figure(tmp_path):
    name = _macros().quoted((REPO / "docs/explanation/measured.md").read_text())[0]
    original = json.loads((REPO / "benchmarks" / "results" / f"{name}.json").read_text())
    assert record.problems(original) == []
    # a number typed under a measured heading that no results file holds
    page = "# X\n\n## Measured\n\nLDS 0.123456 on {{ figure('" + name + "', 'x') }}\n"
    section = measured_sections(page)[0]
    assert unheld(typed_numbers(section), [original]) == ["0.123456"]
    assert measured_sections("# A\n## Measured\nx 1.5\n## Other\ny 2.5\n") == ["x 1.5"]
    # a results file edited by hand
    edited = json.loads(json.dumps(original))
    edited["printed"] = edited["printed"].replace("0", "1", 1)
    assert "edited" in record.problems(edited)[0]
    # code changed since the run (a measured file's digest differs), and a file gone
    stale = json.loads(json.dumps(original))
    stale["code"][next(iter(stale["code"]))] = "0" * 64
    stale["digest"] = record.seal(stale)
    assert "changed since the run" in record.problems(stale)[0]
    gone = json.loads(json.dumps(original))
    gone["code"]["src/ame/no_such_module.py"] = "0" * 64
    gone["digest"] = record.seal(gone)
    assert "gone" in record.problems(gone)[0]
    # a file added since the run cannot have changed it unless a measured file changed to use it
    added = json.loads(json.dumps(original))
    del added["code"][next(name for name in added["code"] if name.startswith("src/"))]
    added["digest"] = record.seal(added)
    assert record.problems(added) == []
    # a results file deleted: the site's macro refuses to render the page
    macros = _macros()
    macros.RESULTS = tmp_path
    with pytest.raises(FileNotFoundError, match="rerun its benchmark"):
        macros.format_figure(name, "results")


def test_the_macros_render_a_figure_a_table_and_a_source_from_a_results_file():
    macros = _macros()
    record_ = {
        "command": "python benchmarks/x.py",
        "commit": "0123456789",
        "machine": {"cpu": "CPU", "cores": 2, "gpu": None, "load_average_at_start": [1.25]},
        "wall_seconds": 1234.5,
        "results": {"rows": [{"model": "linear", "lds": 0.92534}, {"model": "mlp", "lds": 0.7}]},
    }
    macros.results = lambda name: record_
    assert macros.format_figure("x", "results.rows.0.lds", 3) == "0.925"
    assert macros.format_figure("x", "results.rows.1.lds", 1, scale=100) == "70.0"
    assert macros.format_table("x", "results.rows", {"model": "model", "lds": "LDS"}, 2) == (
        "| model | LDS |\n|---|---:|\n| linear | 0.93 |\n| mlp | 0.70 |"
    )
    assert macros.format_source("x") == (
        "`python benchmarks/x.py`, commit 0123456, CPU, 2 cores, load 1.2 at start, 1,234 s: "
        "`benchmarks/results/x.json`"
    )
    assert macros.format_mean("x", "results.rows", "lds", {"model": "mlp"}, 2) == "0.70"
    assert macros.format_mean("x", "results.rows", "lds", {}, 4) == "0.8127"
    with pytest.raises(KeyError, match="no 'nope'"):
        macros.format_figure("x", "results.nope")
