"""The report's section on a hierarchical study: sources, then points inside the selected
sources, and the flat run's budget for the same recall."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ame.artifacts import load_csv, load_json
from ame.data import Dataset
from ame.estimation.results import Estimates
from ame.report.plots import plot_hierarchy_vs_flat
from ame.report.sections import curve_table, smallest_budget_reaching, source_evidence, top_table
from ame.sampling.hierarchy import selected_sources

LEVEL_COLUMNS = ("n_submodels", "n_units_studied", "precision", "recall", "topk_precision")


def hierarchy_section(
    dataset: Dataset, points: dict, levels: dict, plots_dir: Path, rel: Path, direction: str
) -> list[str]:
    """Source and point levels side by side, and the flat run's budget for the same recall."""
    sources = load_json(levels["sources"] / "metrics.json")
    src_estimates = Estimates.load(levels["sources"] / "estimates.npz")
    chosen = selected_sources(src_estimates.selected, src_estimates.ids)
    names = dataset.meta.get("source_names")
    rows = [
        {"level": "sources", **{k: sources[k] for k in LEVEL_COLUMNS}},
        {"level": "points inside the selected sources", **{k: points[k] for k in LEVEL_COLUMNS}},
    ]
    total = sources["n_submodels"] + points["n_submodels"]
    lines = [
        "## Hierarchical study: sources, then points inside the selected sources",
        "",
        f"{dataset.n_sources} sources. The source level selected {len(chosen)} of them (for any "
        f"query): {', '.join(str(names[s] if names else s) for s in chosen)}. The point level "
        f"studied their {points['n_units_studied']} points, every other source being in every "
        "subset. Precision and recall are means over queries; the point level counts a true "
        "point of an unselected source as missed.",
        "",
        pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    if "flat" in levels and points["recall"] is not None:
        flat = load_json(levels["flat"] / "metrics.json")
        curve = load_csv(levels["flat"] / "budget_curve.csv")
        needed = smallest_budget_reaching(curve, points["recall"])
        reach = (
            f"reached that recall at {needed} submodels (the smallest budget prefix of its curve)"
            if needed is not None
            else f"did not reach that recall within its {flat['n_submodels']} submodels"
        )
        lines += [
            f"**Submodels**: the two levels used {sources['n_submodels']} + "
            f"{points['n_submodels']} = {total} for a point-level recall of "
            f"{points['recall']:.3f}. A flat point-level run on the same data, in the same "
            f"workflow run, {reach}; at its full budget of {flat['n_submodels']} it had "
            f"precision {flat['precision']:.3f} and recall {flat['recall']:.3f}. Its curve:",
            "",
            curve_table(curve),
            "",
            f"![hierarchy vs flat]({rel / 'hierarchy_vs_flat.png'})",
            "",
        ]
        plot_hierarchy_vs_flat(curve, total, points, plots_dir / "hierarchy_vs_flat.png")
    checks = levels["sources"] / "validation.json"
    if checks.exists():
        lines += source_evidence(load_json(checks))
    lines += top_table(src_estimates, "### Top sources per query", direction, names=names)
    lines += [
        "## Point level",
        "",
        "The sections below describe the point level, inside the selected sources.",
        "",
    ]
    return lines
