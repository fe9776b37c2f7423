"""DVC stage dependencies are complete: every file a stage's command can run is a dependency.

A stage runs Snakemake (the Snakefile, every rule file, the schema, and the `ame` modules the rule
files import at start-up) and, through its allowed rules, `ame <verb>` commands, which import
more of the package. The imports are followed statically and transitively (lazy imports inside
functions included: they *can* run), so a module added to a step is covered or this test fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from imports import SRC, imported, module_file

# rules that run no `ame` verb or another rule's; every other rule runs its own
RULE_VERBS = {"submodels": None, "sample_validation": "sample", "gather_experiment": "gather"}


def closure(roots: set[str]) -> set[Path]:
    """Files of the `ame` modules ``roots`` import, transitively, with their packages' __init__."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            prefix = ".".join(parts[:i])
            if prefix in seen or module_file(prefix) is None:
                continue
            seen.add(prefix)
            path = module_file(prefix)
            package = prefix if path.name == "__init__.py" else prefix.rsplit(".", 1)[0]
            todo.extend(imported(ast.parse(path.read_text()), package))
    return {module_file(name) for name in seen}


def verb_roots(verb: str) -> set[str]:
    """What ``ame <verb>`` imports: the command line module and its verb function's imports."""
    tree = ast.parse((SRC / "ame/cli.py").read_text())
    function = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == f"cmd_{verb}"
    )
    return {"ame.cli", "ame.__main__"} | imported(function, "ame")


def workflow_files(root: Path) -> set[Path]:
    """What Snakemake reads at start-up, and the `ame` modules the rule files import."""
    files = {root / "Snakefile", *(root / "workflow").rglob("*.*")}
    roots = set()
    for smk in (root / "workflow/rules").glob("*.smk"):
        for line in smk.read_text().splitlines():
            match = re.match(r"(?:from (ame[\w.]*) import ([\w, ]+)|import (ame[\w.]*))", line)
            if match:
                module = match.group(1) or match.group(3)
                roots.add(module)
                for name in (match.group(2) or "").split(","):
                    if name.strip() and module_file(f"{module}.{name.strip()}"):
                        roots.add(f"{module}.{name.strip()}")
    return files | closure(roots) | {SRC / "ame/pipeline/params.schema.yaml"}


def all_verbs() -> set[str]:
    tree = ast.parse((SRC / "ame/cli.py").read_text())
    return {
        n.name.removeprefix("cmd_")
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")
    }


def stage_needs(cmd: str) -> set[Path]:
    """What a stage's Snakemake call can run: its allowed rules' verbs, or every verb."""
    allowed = re.search(r"--allowed-rules ([\w ]+)", cmd)
    if allowed:
        verbs = {RULE_VERBS.get(rule, rule) for rule in allowed.group(1).split()} - {None}
    else:
        verbs = all_verbs()
    needed = workflow_files(REPO)
    for verb in verbs:
        needed |= closure(verb_roots(verb))
    return {path.resolve() for path in needed}


def uncovered(needed: set[Path], deps: list, stage_dir: Path) -> list[str]:
    covered = [
        (stage_dir / str(d if isinstance(d, str) else next(iter(d)))).resolve() for d in deps
    ]
    return sorted(
        str(path.relative_to(REPO))
        for path in needed
        if not any(path == dep or dep in path.parents for dep in covered)
    )


def stages(dvc_yaml: Path):
    """(name, cmd, deps) of each stage, ``foreach`` stages expanded."""
    spec = yaml.safe_load(dvc_yaml.read_text())
    smk = "snakemake"
    for entry in spec.get("vars", []):
        smk = entry.get("smk", smk)
    for name, stage in spec["stages"].items():
        items = stage.get("foreach")
        for item in items or [None]:
            body = stage["do"] if items else stage
            cmd = body["cmd"].replace("${smk}", smk).replace("${item}", str(item))
            yield f"{name}@{item}" if items else name, cmd, body.get("deps", [])


PROJECTS = [REPO / "dvc.yaml", *sorted(REPO.glob("studies/*/dvc.yaml"))]
CASES = [(p, name, cmd, deps) for p in PROJECTS for name, cmd, deps in stages(p)]


@pytest.mark.parametrize(
    ("dvc_yaml", "name", "cmd", "deps"),
    CASES,
    ids=[f"{p.parent.name}:{n}" for p, n, _, _ in CASES],
)
def test_every_stage_depends_on_all_the_code_it_can_run(dvc_yaml, name, cmd, deps):
    missing = uncovered(stage_needs(cmd), deps, dvc_yaml.parent)
    assert not missing, f"{dvc_yaml.relative_to(REPO)} stage {name} lacks dependencies: {missing}"


def test_the_check_fails_when_a_dependency_is_removed():
    name, cmd, deps = next(s for s in stages(REPO / "dvc.yaml") if s[0] == "estimate")
    needed = stage_needs(cmd)
    assert not uncovered(needed, deps, REPO)
    without_package = [d for d in deps if d != "src/ame"]
    missing = uncovered(needed, without_package, REPO)
    assert "src/ame/estimation/solver.py" in missing and "src/ame/cli.py" in missing
    without_rules = [d for d in deps if d != "workflow"]
    assert "workflow/rules/estimate.smk" in uncovered(needed, without_rules, REPO)


def test_the_closure_follows_lazy_imports():
    """The estimate verb reaches the solver only through the estimator, inside a function; the
    estimator alone never reaches the report."""
    files = {str(p.relative_to(SRC)) for p in closure(verb_roots("estimate"))}
    assert {"ame/estimation/solver.py", "ame/estimation/active_set.py", "ame/cli.py"} <= files
    alone = {str(p.relative_to(SRC)) for p in closure({"ame.estimation.estimator"})}
    assert "ame/estimation/active_set.py" in alone and "ame/report/report.py" not in alone
