"""The `ame` package's import graph, read statically from its source (lazy imports inside
functions included: they *can* run). Shared by the DVC-dependency and import-cycle tests."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SRC = REPO / "src"


def module_file(name: str) -> Path | None:
    """The file of module ``name`` (a package's ``__init__.py``), or None if there is none."""
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported(tree: ast.AST, package: str) -> set[str]:
    """The `ame` modules a syntax tree depends on: ``import a.b`` on a.b; ``from a import b`` on
    a.b when that is a module, else on a."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "ame"}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative import
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if module.split(".")[0] != "ame":
                continue
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                names.add(submodule if module_file(submodule) else module)
    return names


def modules() -> list[str]:
    """Every module of the package, by dotted name."""
    names = []
    for path in sorted((SRC / "ame").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def package_of(name: str) -> str:
    """The package a module's relative imports are relative to."""
    return name if module_file(name).name == "__init__.py" else name.rsplit(".", 1)[0]


def graph() -> dict[str, set[str]]:
    """Module -> the modules it imports."""
    return {
        name: imported(ast.parse(module_file(name).read_text()), package_of(name))
        for name in modules()
    }
