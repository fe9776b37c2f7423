"""Sampling over units other than points: sources, and the points of some sources.

A units map sends every training point to the column that decides it (-1: always in), so one
mask artifact describes source-level experiments and point-level experiments restricted to the
selected sources alike (``ame.sampling.MaskSet``). Which experiments a study runs, and their
budgets, is the run plan's business (``ame.pipeline.plan``).
"""

from __future__ import annotations

import numpy as np


def selected_sources(selected: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Source ids selected for at least one query, from selections of shape (Q, n_sources)."""
    return np.sort(ids[selected.any(axis=0)])


def restriction(source: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Units map of a point-level experiment inside the ``chosen`` sources.

    Returns ``units`` (column of each point, -1 for points of other sources, which are in every
    subset) and ``ids`` (the point id of each column).
    """
    ids = np.flatnonzero(np.isin(source, chosen))
    units = np.full(len(source), -1, dtype=np.int64)
    units[ids] = np.arange(len(ids))
    return units, ids.astype(np.int64)
