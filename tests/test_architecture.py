"""The package's layering: no import cycles, and one module that knows the scenarios' names."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter

import pytest
from imports import SRC, graph, module_file, modules


def cycle(dependencies: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (its modules, the first repeated last), or None."""
    try:
        TopologicalSorter(dependencies).prepare()
    except CycleError as err:
        return err.args[1]
    return None


def test_no_module_of_ame_takes_part_in_an_import_cycle():
    found = cycle(graph())
    assert found is None, "import cycle: " + " -> ".join(found)


def test_the_cycle_check_finds_a_lazy_cycle_and_reads_from_imports_as_the_issue_says():
    """The check is not blind: a function-level import back is a cycle, and ``from a import b``
    on a submodule ``b`` depends on ``a.b``, not on ``a``'s ``__init__``."""
    lazy = graph()
    lazy["ame.data.dataset"] = lazy["ame.data.dataset"] | {"ame.training.builtin"}
    assert cycle(lazy) is not None
    assert "ame.data.digits" in graph()["ame.scenarios.builtin"]
    assert "ame.data" not in graph()["ame.scenarios.builtin"]


SCENARIO_NAMES = ("digits", "npz", "cifar10", "plugin")


@pytest.mark.parametrize("name", modules())
def test_only_the_scenarios_compare_the_dataset_name_with_a_literal(name):
    """``dataset.name`` is dispatched in one place (``ame.scenarios``): no other module compares
    a string with a scenario's name (a data module may still *write* its name in metadata)."""
    if name.startswith("ame.scenarios"):
        return
    tree = ast.parse(module_file(name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                for leaf in ast.walk(side):
                    assert not (isinstance(leaf, ast.Constant) and leaf.value in SCENARIO_NAMES), (
                        f"{module_file(name).relative_to(SRC)}:{node.lineno}: {leaf.value!r}"
                    )


MAX_LINES = 400


@pytest.mark.parametrize("name", modules())
def test_no_module_is_over_400_lines(name):
    """A module that grows past this holds more than one idea: split it by idea (the report by
    section, the validate step by check)."""
    n = len(module_file(name).read_text().splitlines())
    assert n <= MAX_LINES, f"{module_file(name).relative_to(SRC)}: {n} lines"
