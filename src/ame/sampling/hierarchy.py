"""Source-level and hierarchical experiments: which contributors matter, then which of their points.

A study runs one experiment (``points``) or, with ``hierarchy.enabled``, up to three on the same
dataset:

- ``sources``: each source (contributor) enters a subset whole, with probability p. The
  regression has one column per source, so sparsity is counted in sources and
  m = O(k_sources log S) submodels suffice.
- ``points``: one column per training point. In a hierarchical study it is restricted to the
  points of the sources selected at the source level (selected for any query: a false source
  only costs budget at this level, a missed one is lost for good), and every other source is in
  every subset. *In*, not out: the question is what each point does to the model trained on
  the data, and the other sources are part of that model; a model trained on a few selected
  sources alone would be a different model (for a backdoor: with no clean data to compete, the
  attack saturates and individual poisons stop mattering).
- ``flat``: the flat point-level experiment on the whole data, run beside the hierarchy so that
  its budget curve gives, in the same run, the submodels a flat study needs for the same recall.

Each experiment draws its subsets from its own random stream of ``sampling.seed``; the flat
comparison uses the stream of a plain run, so it is the plain run of the same settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ame import params
from ame.data import Dataset
from ame.sampling import MaskSet

LEVELS = ("sources", "points", "flat")
STREAMS = {"points": 0, "flat": 0, "sources": 2, "restricted": 3}


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


def draw_masks(config: dict, dataset: Dataset, level: str, selection=None) -> MaskSet:
    """The subsets of one experiment of the study (``selection``: the source-level estimates)."""
    design, seed = params.design(config), config["sampling"]["seed"]
    hierarchical = config["hierarchy"]["enabled"]
    if level == "sources" or (level == "points" and hierarchical):
        if dataset.source is None:
            raise ValueError("hierarchy.enabled: the dataset has no source labels")
    if level == "sources":
        n_sources = dataset.n_sources
        budget = params.source_budget(config, n_sources)
        units, ids, unit, stream = (
            dataset.source,
            np.arange(n_sources),
            "source",
            STREAMS["sources"],
        )
    elif level == "points" and hierarchical:
        if selection is None:
            raise ValueError("sample: the point level of a hierarchical study needs --selection")
        chosen = selected_sources(selection.selected, selection.ids)
        if len(chosen) == 0:
            raise ValueError(
                f"hierarchy: no source selected at FDR {config['estimation']['fdr']}; raise "
                "hierarchy.source_subsets (or estimation.fdr) before refining inside sources"
            )
        units, ids = restriction(dataset.source, chosen)
        budget = params.n_subsets(config, len(ids))
        unit, stream = "point", STREAMS["restricted"]
    elif level in ("points", "flat"):
        budget = (params.flat_budget if level == "flat" else params.n_subsets)(
            config, dataset.n_points
        )
        units, ids, unit, stream = None, None, "point", STREAMS[level]
    else:
        raise ValueError(f"level: unknown experiment {level!r}; choose one of {LEVELS}")
    return MaskSet.draw(
        dataset.n_points,
        params.whole_jobs(config, budget),
        design,
        seed,
        budget=budget,
        units=units,
        ids=ids,
        unit=unit,
        stream=stream,
    )


def smallest_budget_reaching(curve: pd.DataFrame, recall: float) -> int | None:
    """Fewest submodels at which a budget curve's mean recall reaches ``recall`` (None: never)."""
    reached = curve[curve["recall"] >= recall - 1e-12]
    return None if reached.empty else int(reached["n_submodels"].min())
