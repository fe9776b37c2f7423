"""Synthetic contributors for the bundled scenarios (``dataset.n_sources``)."""

from __future__ import annotations

import numpy as np

from ame.errors import UserError


def synthetic_sources(
    n_points: int, poisons: np.ndarray, n_sources: int, n_poisoned_sources: int, seed: int
) -> np.ndarray:
    """Group the training points into ``n_sources`` contributors of (nearly) equal size.

    The poisons are dealt round-robin to ``n_poisoned_sources`` random contributors, which are
    then filled up with clean points like the others: poisoned contributors hold clean points too.
    """
    if not 1 <= n_poisoned_sources <= min(n_sources, len(poisons)):
        raise UserError(
            f"dataset.n_poisoned_sources: {n_poisoned_sources} must lie in "
            f"[1, min(n_sources, n_poisons)] = [1, {min(n_sources, len(poisons))}]"
        )
    if n_sources > n_points // 2:
        raise UserError(
            f"dataset.n_sources: {n_sources} sources need at least 2 points each "
            f"({n_points} training points)"
        )
    rng = np.random.default_rng([seed, 1])
    sizes = np.full(n_sources, n_points // n_sources)
    sizes[: n_points % n_sources] += 1
    poisoned = rng.choice(n_sources, size=n_poisoned_sources, replace=False)
    if len(poisons) > sizes[poisoned].sum():
        raise UserError(
            f"dataset.n_poisoned_sources: {n_poisoned_sources} sources of about "
            f"{n_points // n_sources} points cannot hold {len(poisons)} poisons"
        )
    source = np.full(n_points, -1, dtype=np.int64)
    source[rng.permutation(poisons)] = np.resize(poisoned, len(poisons))
    room = sizes - np.bincount(source[source >= 0], minlength=n_sources)
    clean = rng.permutation(np.flatnonzero(source < 0))
    source[clean] = np.repeat(np.arange(n_sources), room)
    return source
