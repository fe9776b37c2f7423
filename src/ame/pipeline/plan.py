"""The run plan: which experiments a study runs and, for each, its budget, rows and stream.

This is the one home of the budget arithmetic: the paper's rule (``ame.sampling``), the per-level
settings and the rounding up to whole training jobs. The Snakefile and the ``ame`` verbs both ask
:func:`level_plan`; nothing else computes a budget.

A study runs one experiment (``points``) or, with ``hierarchy.enabled``, up to three on the same
dataset (README, "Sources and hierarchical studies"):

- ``sources``: each source (contributor) enters a subset whole, with probability p: one column per
  source, so sparsity is counted in sources and m = O(k_sources log S) submodels suffice.
- ``points``: one column per training point. In a hierarchical study it is restricted to the
  points of the sources selected at the source level (for any query: a false source only costs
  budget here, a missed one is lost for good), and every other source is in every subset. *In*,
  not out: the question is what each point does to the model trained on the data; a model trained
  on a few selected sources alone would be another model (for a backdoor: with no clean data to
  compete, the attack saturates and individual poisons stop mattering).
- ``flat``: the flat point-level experiment on the whole data, run beside the hierarchy so that its
  budget curve gives, in the same run, the submodels a flat study needs for the same recall.

Each experiment draws from its own random stream (``ame.sampling.STREAMS``); the flat comparison
uses the stream of a plain run, so it *is* the plain run of the same settings.

Each experiment also has a *validation* experiment (``validation=True``): fresh subsets of the same
units and design from a stream of their own, ``validation.n_subsets`` of them (or
``validation.fraction`` of the experiment's budget), which only ``ame validate`` reads: held out
from the estimate, they measure how well the estimated effects predict new submodels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ame.errors import UserError
from ame.pipeline.submodels import check_pack_size
from ame.sampling import STREAMS, Design, MaskSet, budget_from_sparsity
from ame.sampling.hierarchy import restriction, selected_sources

LEVELS = ("sources", "points", "flat")
#: The stream of each experiment's validation subsets.
VALIDATION_STREAM = {
    STREAMS["points"]: "validation",
    STREAMS["sources"]: "validation_sources",
    STREAMS["restricted"]: "validation_restricted",
}


@dataclass(frozen=True)
class LevelPlan:
    """One experiment of the study.

    ``budget`` subsets enter the estimate; ``n_train`` (the budget rounded up to whole training
    jobs) are drawn and trained, the extra ones kept for a later, larger budget.
    """

    level: str
    unit: str  # "point" or "source": what a column of the regression is
    restricted: bool  # the point level of a hierarchy: only the points of the selected sources
    stream: int
    budget: int
    n_train: int


def design(config: dict) -> Design:
    s = config["sampling"]
    return Design(
        name=s["design"],
        p_values=tuple(s["p_values"]),
        p=s["p"],
        eps=s["eps"],
        beta_a=s["beta_a"],
        beta_b=s["beta_b"],
    )


def levels(config: dict) -> list[str]:
    """The experiments of the study, in the order they run."""
    h = config["hierarchy"]
    if not h["enabled"]:
        return ["points"]
    return ["sources", "points"] + (["flat"] if h["compare_flat"] else [])


def level_plan(config: dict, level: str, n_units: int, validation: bool = False) -> LevelPlan:
    """Budget, rows to train and stream of ``level`` over ``n_units`` columns (points or sources;
    for the restricted point level, the points of the selected sources); with ``validation``, of
    its held-out validation experiment."""
    if level not in LEVELS:
        raise UserError(f"level: unknown experiment {level!r}; choose one of {LEVELS}")
    s, h = config["sampling"], config["hierarchy"]
    restricted = level == "points" and h["enabled"]
    if level == "sources":
        fixed, k, stream = h["source_subsets"], h["k_sources"], STREAMS["sources"]
    elif level == "flat":
        fixed, k, stream = h["flat_subsets"], s["k"], STREAMS["points"]
    else:
        fixed, k = s["n_subsets"], s["k"]
        stream = STREAMS["restricted" if restricted else "points"]
    budget = int(fixed) if fixed is not None else budget_from_sparsity(n_units, s["c"], k)
    if validation:
        v = config["validation"]
        budget = v["n_subsets"] or max(1, round(v["fraction"] * budget))
        stream = STREAMS[VALIDATION_STREAM[stream]]
    return LevelPlan(
        level=level,
        unit="source" if level == "sources" else "point",
        restricted=restricted,
        stream=stream,
        budget=budget,
        n_train=whole_jobs(config, budget),
    )


def whole_jobs(config: dict, budget: int) -> int:
    """Subsets to train for ``budget``: rounded up to whole training jobs, since a job trains a
    pack of ``training.subsets_per_job`` subsets. The one place a budget is padded."""
    per_job = check_pack_size(config["training"]["subsets_per_job"])
    return math.ceil(budget / per_job) * per_job


def draw_masks(
    config: dict, dataset, level: str, selection=None, validation: bool = False
) -> MaskSet:
    """The subsets of one experiment (``selection``: the source-level estimates, for the
    restricted point level of a hierarchy), or of its validation experiment."""
    hierarchical = config["hierarchy"]["enabled"]
    units = ids = None
    if level == "sources" or (level == "points" and hierarchical):
        if dataset.source is None:
            raise UserError("hierarchy.enabled: the dataset has no source labels")
    if level == "sources":
        units, ids = dataset.source, np.arange(dataset.n_sources)
    elif level == "points" and hierarchical:
        if selection is None:
            raise UserError("sample: the point level of a hierarchical study needs --selection")
        chosen = selected_sources(selection.selected, selection.ids)
        if len(chosen) == 0:
            raise UserError(
                f"hierarchy: no source selected at FDR {config['estimation']['fdr']}; raise "
                "hierarchy.source_subsets (or estimation.fdr) before refining inside sources"
            )
        units, ids = restriction(dataset.source, chosen)
    plan = level_plan(config, level, dataset.n_points if ids is None else len(ids), validation)
    return MaskSet.draw(
        dataset.n_points,
        plan.n_train,
        design(config),
        config["sampling"]["seed"],
        budget=plan.budget,
        units=units,
        ids=ids,
        unit=plan.unit,
        stream=plan.stream,
    )
