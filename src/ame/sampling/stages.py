"""The candidates of a two-stage design: the rule, fixed before any data, that reads the
screen's estimate and picks the points the second stage varies (docs/how-to/stages.md).

The rule sees only the screen's own estimate, never ground truth, and the second stage draws
fresh subsets on a stream of its own: its selection is valid by sample splitting, whatever the
screen picked. Which experiments a study runs, and their budgets, is the run plan's business
(``ame.pipeline.plan``).
"""

from __future__ import annotations

import math

import numpy as np


def screen_candidates(
    debiased: np.ndarray, se: np.ndarray, ids: np.ndarray, direction: str, share: float
) -> np.ndarray:
    """The ids of the ``ceil(share * n_units)`` units whose debiased AME is most significant in
    ``direction`` for any query, sorted.

    Each unit scores its largest signed z-statistic (debiased AME over its standard error) over
    the queries (arrays of shape (n_queries, n_units)): z puts queries whose behaviours live on
    different scales on one footing. A unit with no finite z scores last; ties go to the lower id.
    """
    signed = debiased if direction == "positive" else -debiased
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, signed / se, np.nan)
    score = np.nan_to_num(np.nanmax(np.where(np.isfinite(z), z, -np.inf), axis=0), nan=-np.inf)
    n = min(len(ids), math.ceil(share * len(ids)))
    order = np.lexsort((ids, -score))  # strongest first, then by id
    return np.sort(np.asarray(ids)[order[:n]]).astype(np.int64)
