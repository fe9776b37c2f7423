"""Random subsets: which training points each submodel sees, and the mask artifact.

Subset ``i`` is drawn from its own generator seeded by ``(seed, i)``, so growing the budget keeps
every earlier subset bit-identical and the submodels already trained stay valid.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ame.errors import UserError
from ame.sampling.designs import Design
from ame.sampling.streams import subset_rng


def budget_from_sparsity(n_points: int, c: float, k: int) -> int:
    """The paper's budget rule m = round(c * k * log2 N)."""
    if c <= 0 or k <= 0:
        raise UserError(f"c and k: must be positive, got c={c}, k={k}")
    if n_points < 2:
        raise UserError(f"n_points: need at least 2 training points, got {n_points}")
    return max(1, round(c * k * math.log2(n_points)))


def sample_subset(
    n_points: int, index: int, design: Design, seed: int, stream: int = 0
) -> tuple[np.ndarray, float]:
    """Draw subset ``index``: its inclusion probability, then one Bernoulli(p) bit per point."""
    rng = subset_rng(seed, index, stream)
    p = design.draw_p(rng)
    return rng.random(n_points) < p, p


def sample_subsets(
    n_points: int,
    n_subsets: int | None = None,
    *,
    design: str | Design = "grid",
    seed: int = 0,
    c: float | None = None,
    k: int | None = None,
    start: int = 0,
    stream: int = 0,
    **design_kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw random training subsets.

    Parameters
    ----------
    n_points : int
        Number of training points N.
    n_subsets : int, optional
        Number of subsets m. Alternatively give ``c`` and ``k`` (m = round(c k log2 N)).
    design : str or Design
        Name of the p-design (see :class:`Design`); extra keyword arguments (``p_values``, ``p``,
        ``eps``, ``beta_a``, ``beta_b``) configure it.
    seed : int
        Subset ``i`` depends only on ``(seed, i)``.
    start : int
        Index of the first subset to draw (to draw subsets ``start .. start + n_subsets - 1``).
    stream : int
        Independent sequence of subsets for the same seed (the levels of a hierarchical study).

    Returns
    -------
    masks : ndarray of bool, shape (n_subsets, n_points)
    p : ndarray of float, shape (n_subsets,)
    """
    if not isinstance(design, Design):
        design = Design(name=design, **design_kwargs)
    elif design_kwargs:
        raise TypeError("pass design settings either in a Design or as keywords, not both")
    if n_points < 1:
        raise UserError(f"n_points: must be positive, got {n_points}")
    if n_subsets is None:
        if c is None or k is None:
            raise UserError("give the budget as n_subsets, or as both c and k")
        n_subsets = budget_from_sparsity(n_points, c, k)
    elif c is not None or k is not None:
        raise UserError("give the budget as n_subsets or as c and k, not both")
    if n_subsets < 1:
        raise UserError(f"n_subsets: must be positive, got {n_subsets}")
    masks = np.empty((n_subsets, n_points), dtype=bool)
    p = np.empty(n_subsets)
    for row in range(n_subsets):
        masks[row], p[row] = sample_subset(n_points, start + row, design, seed, stream)
    return masks, p


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Bit-pack boolean masks row by row (8 points per byte, little bit order)."""
    return np.packbits(np.asarray(masks, dtype=bool), axis=1, bitorder="little")


def unpack_masks(packed: np.ndarray, n_points: int) -> np.ndarray:
    return np.unpackbits(packed, axis=1, count=n_points, bitorder="little").astype(bool)


@dataclass
class MaskSet:
    """The sampling artifact: one row of bits per subset, its p, and how it was drawn.

    The columns are the experiment's *units*: training points in a flat experiment, sources
    (contributors) in a source-level one, or the points of the selected sources in the point
    level of a hierarchical study. ``units`` maps every training point to the column that decides
    it (-1: the point is in every subset); ``None`` means one column per point.
    """

    packed: np.ndarray
    p: np.ndarray
    n_points: int
    design: Design
    seed: int
    budget: int | None = None  # subsets the run uses; rows beyond it round up to whole jobs
    units: np.ndarray | None = None  # int64 (n_points,): column of each point, -1 for always in
    ids: np.ndarray | None = None  # int64 (n_units,): source or point id of each column
    unit: str = "point"  # what a column is: "point" or "source"
    stream: int = 0
    seeds: np.ndarray | None = None  # int64 (n_subsets,): training seed of each row, when the
    # rows are replicates that must not share the seed policy's seed (the removal arms)
    columns: np.ndarray | None = None  # int64: the units the regression estimates, when they
    # are fewer than those drawn (a second stage's candidates, the other points sampled too)

    def __post_init__(self):
        if self.budget is None:
            self.budget = len(self.p)

    @property
    def n_subsets(self) -> int:
        return len(self.p)

    @property
    def n_units(self) -> int:
        return self.n_points if self.units is None else len(self.ids)

    @property
    def unit_ids(self) -> np.ndarray:
        return np.arange(self.n_points) if self.ids is None else self.ids

    @property
    def masks(self) -> np.ndarray:
        """Unit masks of shape (n_subsets, n_units): the regression's columns."""
        return unpack_masks(self.packed, self.n_units)

    @property
    def column_ids(self) -> np.ndarray:
        """The id of each regression column: every unit, or the estimated ones (``columns``)."""
        return self.unit_ids if self.columns is None else self.unit_ids[self.columns]

    def column_masks(self, rows=slice(None)) -> np.ndarray:
        """The regression's design: the unit masks of ``rows``, restricted to ``columns``."""
        masks = self.masks[rows]
        return masks if self.columns is None else masks[:, self.columns]

    def point_mask(self, index: int) -> np.ndarray:
        """The training points of subset ``index``."""
        bits = unpack_masks(self.packed[index : index + 1], self.n_units)[0]
        if self.units is None:
            return bits
        return np.where(self.units >= 0, bits[np.maximum(self.units, 0)], True)

    def units_digest(self) -> str | None:
        """Hash of the point-to-column map: what a submodel trained on this experiment saw."""
        if self.units is None:
            return None
        return hashlib.sha256(self.units.astype(np.int64).tobytes()).hexdigest()

    def row_digest(self, index: int) -> str:
        """Hash of subset ``index``'s bits: what its submodel's fingerprint records."""
        return hashlib.sha256(self.packed[index].tobytes()).hexdigest()

    def rows_digest(self) -> str:
        """Hash of every row's bits and training seed: names the store of an artifact whose
        rows follow other results (the removal arms), so new rows mean new submodels."""
        h = hashlib.sha256(self.packed.tobytes())
        if self.seeds is not None:
            h.update(self.seeds.astype(np.int64).tobytes())
        return h.hexdigest()

    def head(self, n_subsets: int) -> MaskSet:
        """The first ``n_subsets`` subsets (a budget prefix)."""
        seeds = None if self.seeds is None else self.seeds[:n_subsets]
        return replace(
            self,
            packed=self.packed[:n_subsets],
            p=self.p[:n_subsets],
            budget=n_subsets,
            seeds=seeds,
        )

    def meta(self) -> dict:
        return {
            "n_points": self.n_points,
            "n_subsets": self.n_subsets,
            "budget": self.budget,
            "seed": self.seed,
            "stream": self.stream,
            "unit": self.unit,
            "n_units": self.n_units,
            "n_columns": len(self.column_ids),
            "design": self.design.to_dict(),
        }

    @classmethod
    def draw(
        cls,
        n_points: int,
        n_subsets: int,
        design: Design,
        seed: int,
        *,
        budget: int | None = None,
        units: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        unit: str = "point",
        stream: int = 0,
    ) -> MaskSet:
        """Draw ``n_subsets`` subsets over the units (one column per id when ``units`` is given)."""
        n_units = n_points if units is None else len(ids)
        masks, p = sample_subsets(n_units, n_subsets, design=design, seed=seed, stream=stream)
        return cls(pack_masks(masks), p, n_points, design, seed, budget, units, ids, unit, stream)

    def save(self, path: str | Path) -> None:
        from ame.artifacts import atomic_savez

        arrays = {
            "packed_masks": self.packed,
            "p": self.p,
            "meta": np.array(json.dumps(self.meta())),
        }
        if self.units is not None:
            arrays.update(units=self.units.astype(np.int64), ids=self.ids.astype(np.int64))
        if self.seeds is not None:
            arrays["seeds"] = self.seeds.astype(np.int64)
        if self.columns is not None:
            arrays["columns"] = self.columns.astype(np.int64)
        atomic_savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> MaskSet:
        from ame.artifacts import ArtifactError, load_npz

        arrays = load_npz(path, required=("packed_masks", "p", "meta"))
        meta = json.loads(str(arrays["meta"]))
        packed, p, n_points = arrays["packed_masks"], arrays["p"], int(meta["n_points"])
        units, ids = arrays.get("units"), arrays.get("ids")
        n_units = n_points if units is None else len(ids)
        if packed.shape != (len(p), (n_units + 7) // 8):
            raise ArtifactError(
                f"{path}: packed masks of shape {packed.shape} do not match "
                f"{len(p)} subsets of {n_units} units"
            )
        if units is not None and (units.shape != (n_points,) or units.max() >= n_units):
            raise ArtifactError(f"{path}: the units map does not match {n_points} points")
        seeds = arrays.get("seeds")
        if seeds is not None and seeds.shape != p.shape:
            raise ArtifactError(f"{path}: {len(seeds)} training seeds for {len(p)} subsets")
        columns = arrays.get("columns")
        if columns is not None and not np.all((columns >= 0) & (columns < n_units)):
            raise ArtifactError(f"{path}: its regression columns are not among its {n_units} units")
        return cls(
            packed,
            p,
            n_points,
            Design.from_dict(meta["design"]),
            int(meta["seed"]),
            int(meta.get("budget", len(p))),
            units,
            ids,
            meta.get("unit", "point"),
            int(meta.get("stream", 0)),
            seeds,
            columns,
        )
