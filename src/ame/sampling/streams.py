"""The random streams of an experiment: one registry, so that no two draws can coincide.

Subset ``i`` of stream ``s`` is drawn from ``default_rng([seed, i, s])``; growing the budget keeps
every earlier subset bit-identical. Each experiment of a study draws from its own stream.
"""

from __future__ import annotations

import numpy as np

#: Stream of each kind of draw. Stream 1 is the knockoff masks' (ame.estimation): no experiment
#: may sample from it, or its subsets would equal their own knockoffs.
#: ``validation*``: the held-out subsets of each experiment (ame.evaluation.validation), never
#: estimated from; ``removal``: the random points of the counterfactual removal arms.
STREAMS = {
    "points": 0,
    "knockoffs": 1,
    "sources": 2,
    "restricted": 3,
    "validation": 4,
    "validation_sources": 5,
    "validation_restricted": 6,
    "removal": 7,
}


def subset_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Generator of subset ``index`` of ``stream`` (see ``STREAMS``)."""
    return np.random.default_rng([int(seed), int(index), int(stream)])
