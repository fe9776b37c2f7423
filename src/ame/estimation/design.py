"""The regression design: featurization, buckets of p, identifiability and the AME scale.

Featurization (the only place it lives). Row i of the design describes subset S_i drawn with
inclusion probability p_i:

- ``"inverse"``: X[i, n] = 1/p_i if n ∈ S_i else −1/(1−p_i), for designs with few distinct p (grid,
  fixed). Given p, E[X_n Y | p] = AME_n(L_p) and Var(X_n | p) = 1/(p(1−p)), so the least-squares
  coefficient is β_n = E_p[AME_n(L_p)] / v with v = E_p[1/(p(1−p))]; we report AME_n = v̂ β_n with
  v̂ the mean of 1/(p_i(1−p_i)) over the rows (5.2083 in population for the grid 0.2…0.8).
- ``"centered"``: X[i, n] = 1[n ∈ S_i] − p_i, for continuous designs (many distinct p). Now
  E[X_n Y | p] = p(1−p) AME_n(L_p) and Var(X_n | p) = p(1−p), so β_n = E_P[p(1−p) AME_n(L_p)] /
  E_P[p(1−p)] is itself an AME: the semivalue whose p-density is ∝ P(p) p(1−p). The ``shapley``
  design (density ∝ 1/(p(1−p)) on [ε, 1−ε]) thus estimates the Shapley value restricted to
  p ∈ [ε, 1−ε]; ``uniform`` the Beta(2, 2) and ``beta(a, b)`` the Beta(a+1, b+1) semivalue.
  Uniform sampling cannot give the Shapley value with finite variance through this regression.
  Centered features tilt it to Beta(2, 2); undoing the tilt needs the inverse features, whose
  normalizer v = E_p[1/(p(1−p))] is infinite under p ~ Uniform(0, 1) (v̂ is then a heavy-tailed
  average and the features of rows with p near 0 or 1 are unbounded). With centered features the
  Shapley value needs p-density ∝ 1/(p(1−p)), which only normalizes on [ε, 1−ε]: hence the
  ``shapley`` design and its O(ε) truncation.

Buckets. The mean behaviour depends on p (bigger subsets, better models). One unpenalized
indicator per distinct p (discrete designs) or per quantile bin of p (continuous designs,
``n_p_bins``) absorbs it. Both featurizations have E[X_n | p] = 0, so any function of p is
uncorrelated with X_n in population: the indicators change no coefficient's target, they only
remove the variance that the p-dependent mean would otherwise add to the residuals. Whether the
design is discrete comes from the design when it is known; a bucket needs ``MIN_BUCKET_ROWS``
rows to be centred (a row alone in its bucket is fitted exactly by its indicator).
"""

from __future__ import annotations

import numpy as np
import torch

from ame.errors import UserError
from ame.sampling import Design, unpack_masks
from ame.sampling.streams import knockoff_rng

MAX_DISCRETE_P = 50
MIN_BUCKET_ROWS = 2
_ROW_CHUNK = 64


def featurize(
    masks, p, n_points, featurization, *, knockoff_seed=None, subset_index=None, device="cpu"
):
    """Build the float32 design [X | X̃] once, in row chunks.

    Parameters
    ----------
    masks : ndarray of bool, shape (n_subsets, n_points), or of uint8, shape (n_subsets, ceil(N/8))
        Subsets, plain or bit-packed (little bit order, as :func:`ame.sampling.pack_masks`).
    p : ndarray of shape (n_subsets,)
    n_points : int
    featurization : {"inverse", "centered"}
    knockoff_seed : int, optional
        When given, append N knockoff columns: row i uses a fresh Bernoulli(p_i)^N mask from
        ``knockoff_rng(knockoff_seed, subset_index[i])``, a derivation no sampling stream can
        produce, so the knockoffs of a budget prefix are the prefix of the knockoffs.
    subset_index : ndarray of int, shape (n_subsets,), optional
        Index of each row's subset in the experiment; default 0 .. n_subsets - 1.
    device : str or torch.device

    Returns
    -------
    Tensor of shape (n_subsets, n_points) or (n_subsets, 2 * n_points), float32
    """
    m = len(p)
    subset_index = np.arange(m) if subset_index is None else subset_index
    n_cols = n_points * (1 if knockoff_seed is None else 2)
    X = torch.empty((m, n_cols), dtype=torch.float32, device=device)
    inside, outside = (1 / p, -1 / (1 - p)) if featurization == "inverse" else (1 - p, -p)
    for s in range(0, m, _ROW_CHUNK):
        rows = np.arange(s, min(s + _ROW_CHUNK, m))
        bits = unpack_masks(masks[rows], n_points) if masks.dtype == np.uint8 else masks[rows]
        blocks = [bits]
        if knockoff_seed is not None:
            blocks.append(knockoff_masks(knockoff_seed, subset_index[rows], p[rows], n_points))
        for k, block in enumerate(blocks):
            values = np.where(block, inside[rows, None], outside[rows, None]).astype(np.float32)
            X[rows[0] : rows[-1] + 1, k * n_points : (k + 1) * n_points] = torch.from_numpy(
                values
            ).to(device)
    return X


def knockoff_masks(seed: int, subset_index, p, n_points: int) -> np.ndarray:
    """Knockoff masks of the given subsets, of shape (len(subset_index), n_points), bool."""
    return np.stack(
        [
            knockoff_rng(seed, index).random(n_points) < p_i
            for index, p_i in zip(subset_index, p, strict=True)
        ]
    )


def buckets(p: np.ndarray, design: Design | None, n_p_bins: int) -> tuple[np.ndarray, bool]:
    """Bucket of every row and whether the design is discrete.

    Discrete designs get one bucket per distinct p. Without a design, p is taken as discrete
    when it has at most ``MAX_DISCRETE_P`` distinct values, each on at least ``MIN_BUCKET_ROWS``
    rows; otherwise (continuous) rows go into at most ``n_p_bins`` quantile bins of p, each of at
    least ``MIN_BUCKET_ROWS`` rows.

    Returns
    -------
    groups : ndarray of int, shape (n_subsets,)
        Bucket of each row, 0 .. n_buckets - 1 in increasing p.
    discrete : bool

    Raises
    ------
    ValueError
        A discrete design whose p values are not the design's, or one with a value on fewer
        than ``MIN_BUCKET_ROWS`` rows (a bucket too small to centre).
    """
    values, groups, counts = np.unique(p, return_inverse=True, return_counts=True)
    if design is None:
        discrete = values.size <= MAX_DISCRETE_P and counts.min() >= MIN_BUCKET_ROWS
    else:
        discrete = design.is_discrete
    if not discrete:
        return _quantile_bins(p, min(n_p_bins, len(p) // MIN_BUCKET_ROWS)), False
    if design is not None:
        allowed = np.asarray(design.p_values if design.name == "grid" else (design.p,))
        stray = values[~np.isclose(values[:, None], allowed[None, :], rtol=0, atol=1e-12).any(1)]
        if stray.size:
            raise UserError(
                f"p: the {design.name} design has p in {sorted(allowed.tolist())}, "
                f"got p = {stray[0]:g}"
            )
    if counts.min() < MIN_BUCKET_ROWS:
        small = int(np.argmin(counts))
        raise UserError(
            f"p: the bucket p = {values[small]:g} holds {counts[small]} subset(s); a bucket needs "
            f"at least {MIN_BUCKET_ROWS} to be centred (use more subsets)"
        )
    return groups, True


def _quantile_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile bin of each row, merging bins of fewer than ``MIN_BUCKET_ROWS`` rows."""
    edges = np.quantile(p, np.linspace(0, 1, max(n_bins, 1) + 1)[1:-1])
    groups = np.unique(np.searchsorted(edges, p, side="right"), return_inverse=True)[1]
    counts = np.bincount(groups)
    while counts.size > 1 and counts.min() < MIN_BUCKET_ROWS:
        small = int(np.argmin(counts))
        into = small + 1 if small + 1 < counts.size else small - 1
        groups[groups == small] = into
        groups = np.unique(groups, return_inverse=True)[1]
        counts = np.bincount(groups)
    return groups


def constant_membership(masks, n_points: int, groups: np.ndarray) -> np.ndarray:
    """Whether each point is in all or none of the subsets of each bucket, (n_buckets, n_points).

    A point constant in every bucket (in every subset, or in none, or always in (or out) within
    each bucket) has a column that the bucket indicators explain: no data can tell its effect
    apart from the p-dependent mean. Its AME is not identifiable (nor, for a discrete design,
    its AME at a p where it is constant).
    """
    n_groups = groups.max() + 1
    onehot = np.eye(n_groups, dtype=np.float32)[groups]
    inside = np.zeros((n_groups, n_points))
    for s in range(0, len(groups), _ROW_CHUNK):
        rows = slice(s, s + _ROW_CHUNK)
        bits = unpack_masks(masks[rows], n_points) if masks.dtype == np.uint8 else masks[rows]
        inside += onehot[rows].T @ bits.astype(np.float32)  # exact: counts < 2**24
    rows_per_group = np.bincount(groups, minlength=n_groups)[:, None]
    return (inside == 0) | (inside == rows_per_group)


def row_identity(masks) -> np.ndarray:
    """Id of each row's subset, equal for identical mask rows, of shape (n_subsets,)."""
    rows = masks if masks.dtype == np.uint8 else np.packbits(masks, axis=1, bitorder="little")
    rows = np.ascontiguousarray(rows)
    keys = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()  # one opaque key per row
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=int)
    rank[np.argsort(first)] = np.arange(first.size)  # ids in order of first appearance
    return rank[inverse.ravel()]


def fold_units(masks, fold_groups=None) -> np.ndarray:
    """Id of each row's fold unit: rows of identical subsets, or of one of ``fold_groups``, and
    chains of both (connected components), always share a fold."""
    identity = row_identity(masks)
    if fold_groups is None:
        return identity
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    fold_groups = np.unique(np.asarray(fold_groups), return_inverse=True)[1].ravel()
    if fold_groups.shape != identity.shape:
        raise UserError(
            f"fold_groups: expected shape {identity.shape} to match masks, got {fold_groups.shape}"
        )
    m, n_ids = identity.size, identity.max() + 1
    rows = np.r_[np.arange(m), np.arange(m)]
    nodes = np.r_[identity, n_ids + fold_groups]  # bipartite: rows x (subset ids | fold groups)
    graph = coo_matrix((np.ones(2 * m), (rows, nodes)), shape=(m, n_ids + fold_groups.max() + 1))
    _, labels = connected_components(graph @ graph.T, directed=False)
    return labels


def scatter_columns(values: np.ndarray, columns: np.ndarray, n_points: int) -> np.ndarray:
    """Values of some points, (..., len(columns)), placed in (..., n_points); NaN elsewhere."""
    out = np.full(values.shape[:-1] + (n_points,), np.nan)
    out[..., columns] = values
    return out


def denominators(p: np.ndarray, featurization: str) -> np.ndarray:
    """d_i with E[X_in Y_i | p_i] = d_i AME_n(L_{p_i}): 1 (inverse) or p_i(1−p_i) (centered)."""
    return np.ones_like(p) if featurization == "inverse" else p * (1 - p)


def ame_scale(p: np.ndarray, featurization: str) -> float:
    """AME = scale · coefficient: v̂ = mean 1/(p(1−p)) for inverse features, 1 for centered."""
    return float(np.mean(1 / (p * (1 - p)))) if featurization == "inverse" else 1.0
