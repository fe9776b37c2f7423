"""The random streams of an experiment: one registry, so that no two draws can coincide.

Subset ``i`` of stream ``s`` is drawn from ``default_rng([seed, i, s])``; growing the budget keeps
every earlier subset bit-identical. Each experiment of a study draws from its own stream.
"""

from __future__ import annotations

import numpy as np

#: Stream of each experiment's subsets. The knockoff masks are no stream: ``knockoff_rng`` derives
#: them so that no stream can produce them (stream 1, theirs until then, stays unused).
#: ``validation*``: the held-out subsets of each experiment (ame.evaluation.lds), never
#: estimated from; ``removal``: the random points of the counterfactual removal arms;
#: ``candidates``: the second stage of a two-stage design (the first is the plain run's stream).
STREAMS = {
    "points": 0,
    "sources": 2,
    "restricted": 3,
    "validation": 4,
    "validation_sources": 5,
    "validation_restricted": 6,
    "removal": 7,
    "candidates": 8,
    "validation_candidates": 9,
}


def subset_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Generator of subset ``index`` of ``stream`` (see ``STREAMS``)."""
    return np.random.default_rng([int(seed), int(index), int(stream)])


#: Spawn key of the knockoff masks. ``subset_rng`` never passes a spawn key, so its entropy is the
#: three words (seed, index, stream), hashed as a pool of four; a knockoff generator hashes
#: (seed, index, 0, 0) and then this key. For seeds, indices and streams below 2**32 no sampling
#: stream feeds SeedSequence the same input, whatever ``stream`` it names.
KNOCKOFF_SPAWN_KEY = 0x6B6E6F63  # "knoc"


def knockoff_rng(seed: int, index: int) -> np.random.Generator:
    """Generator of the knockoff mask of subset ``index`` (ame.estimation's model-X knockoffs).

    Derived with a spawn key that no sampling stream uses, so that no experiment drawn with
    :func:`subset_rng` (any ``stream``) can reproduce a knockoff mask.
    """
    sequence = np.random.SeedSequence([int(seed), int(index)], spawn_key=(KNOCKOFF_SPAWN_KEY,))
    return np.random.default_rng(sequence)
