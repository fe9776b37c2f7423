"""The report's section on a two-stage study: the screen over every point, the candidates it
kept, and the second stage whose estimates the rest of the report describes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ame.artifacts import load_json
from ame.data import Dataset
from ame.estimation.results import ESTIMANDS, Estimates
from ame.report.hierarchy import LEVEL_COLUMNS

OTHERS = {
    "sampled": "the other points sampled as in the screen, so the AME keeps its meaning",
    "in": "the other points in every subset",
}


def stages_section(
    config: dict, dataset: Dataset, points: dict, estimates: Estimates, levels: dict
) -> list[str]:
    """Both stages side by side: budgets, the candidates, the estimand and, where there is a
    ground truth, how many true points the screen kept (evaluation only: the rule never saw it)."""
    screen = load_json(Path(levels["screen"]) / "metrics.json")
    st, truth = config["stages"], dataset.ground_truth
    kept = len(estimates.ids)
    rows = [
        {"stage": "screen (every point)", **{k: screen.get(k) for k in LEVEL_COLUMNS}},
        {"stage": "second stage (the candidates)", **{k: points.get(k) for k in LEVEL_COLUMNS}},
    ]
    columns = ["stage", "n_submodels", "n_units_studied"]
    if truth is not None:
        columns += ["precision", "recall", "topk_precision"]
    lines = [
        "## Two-stage study: a screen, then the candidates",
        "",
        f"The screen trained {screen['n_submodels']} submodels on subsets of all "
        f"{dataset.n_points} points and kept {kept} candidates ({st['candidates']} of the "
        "points: the largest debiased z-statistic for any query, a rule fixed before the run). "
        f"The second stage trained {points['n_submodels']} fresh submodels that vary the "
        f"candidates, {OTHERS[st['others']]}; its estimand is {ESTIMANDS[estimates.estimand]}. "
        f"Every figure below is the second stage's: its selection uses its own submodels only "
        "(valid by sample splitting), and a point the screen did not keep has no estimate.",
        "",
        pd.DataFrame(rows)[columns].to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    if truth is not None:
        found = int(np.isin(truth, estimates.ids).sum())
        lines += [
            f"Of the {len(truth)} true points, the screen kept {found} among its "
            "candidates (the ceiling of the second stage's recall).",
            "",
        ]
    return lines
