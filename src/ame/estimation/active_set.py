"""Restricted LASSO problems on active sets: cached float64 Gram matrices and batched FISTA.

Helper of :mod:`ame.solver`. Every fit of every query (a CV fold, the full data, a bootstrap
replicate) keeps its own active set: the columns the strong rule or the KKT check ever let in.
Different folds let in different noise columns, so past the CV minimum the union over the folds of
one query is several times larger than each fold's own set (3 times on the m = 1,000 benchmark);
per-fit sets keep the Grams, whose memory and work grow with the square of the set size, that much
smaller. The fits of a query are stored padded to a common capacity and solved as one batch.
"""

from __future__ import annotations

import warnings

import torch

from ame.estimation.fista import solve_batch

_BATCH_BYTES = 16 << 20


class ConvergenceWarning(UserWarning):
    """A restricted LASSO problem stopped at ``max_iter`` before reaching the KKT tolerance."""


class QueryProblems:
    """The restricted problems of one query: per fit an active set and a float64 Gram.

    For fit f (row weights w_f, total W_f) and buckets g (weight W_gf, weighted sums S_gf of the
    scaled active columns) the Gram is
    ``H_f = (X_U^T diag(w_f) X_U − Σ_g S_gf S_gf^T / W_gf) / W_f``, the Gram of the design
    centered inside buckets with the weights of that fit, built without ever materializing a
    centered copy of X. It grows by blocks as columns enter.

    The columns active in any fit of the query are copied once into a small cache, scaled, in
    float64 and transposed (one row per column): a column read from the big design costs one
    scattered read per subset, so re-reading and converting the active columns at every step
    would dominate the run time.

    Parameters
    ----------
    X : Tensor of shape (n_subsets, n_features)
        Shared design; only entering columns are read.
    weights : Tensor of shape (n_subsets, n_fits), float64
    onehot : Tensor of shape (n_subsets, n_groups), float64
    wyc : Tensor of shape (n_subsets, n_fits)
        ``w_f * (y − weighted bucket mean of y)`` for this query, float64.
    scale : Tensor of shape (n_features,), float64
        Column scales; the problems are solved for the scaled columns X / scale.
    """

    def __init__(self, X, weights, onehot, wyc, scale):
        self.X, self.w, self.onehot, self.wyc, self.scale = X, weights, onehot, wyc, scale
        self.total = weights.sum(0)
        group_w = onehot.T @ weights
        self.inv_group_w = torch.where(group_w > 0, 1.0 / group_w.clamp_min(1e-300), 0.0)
        F, G = weights.shape[1], onehot.shape[1]
        self.size = [0] * F
        opts = {"dtype": torch.float64, "device": X.device}
        self.slot = torch.zeros(F, 0, dtype=torch.long, device=X.device)  # cache row per slot
        self.H, self.S = torch.zeros(F, 0, 0, **opts), torch.zeros(F, G, 0, **opts)
        self.b, self.beta, self.vec = (torch.zeros(F, 0, **opts) for _ in range(3))
        self.lipschitz = None  # largest Gram eigenvalues (n_fits, 1); None after columns entered
        self.rng = torch.Generator(device=X.device).manual_seed(0)  # power-iteration starts
        self.columns = torch.zeros(0, dtype=torch.long, device=X.device)
        self.cache = torch.zeros(0, X.shape[0], **opts)
        self.row_of = torch.full((X.shape[1],), -1, dtype=torch.long, device=X.device)
        self.n_cached = 0

    @property
    def width(self) -> int:
        return max(self.size)

    def _reserve(self, need: int, limit: int | None) -> None:
        """Grow the capacity to ``need`` slots, geometrically but not past ``limit``."""
        cap = self.H.shape[-1]
        if need <= cap:
            return
        grown = int(cap * 1.5) + 16
        cap, u = max(need, grown if limit is None else min(grown, limit)), self.width
        H = self.H.new_zeros(self.H.shape[0], cap, cap)
        H[:, :u, :u] = self.H[:, :u, :u]
        self.H = H
        self.S = torch.cat([self.S[..., :u], self.S.new_zeros(*self.S.shape[:2], cap - u)], -1)
        for key in ("b", "beta", "vec", "slot"):
            old = getattr(self, key)[:, :u]
            setattr(self, key, torch.cat([old, old.new_zeros(old.shape[0], cap - u)], 1))

    def _cache(self, cols: torch.Tensor) -> None:
        """Copy the columns of ``cols`` (distinct) that are not cached yet out of X."""
        fresh = cols[self.row_of[cols] < 0]
        n, k = self.n_cached, fresh.numel()
        if not k:
            return
        if n + k > len(self.columns):  # grow geometrically: appends stay amortized O(1)
            cap = max(n + k, int(1.25 * len(self.columns)) + 64)
            self.columns = torch.cat([self.columns[:n], self.columns.new_zeros(cap - n)])
            self.cache = torch.cat(
                [self.cache[:n], self.cache.new_zeros(cap - n, self.cache.shape[1])]
            )
        self.columns[n : n + k] = fresh
        self.cache[n : n + k] = self.X[:, fresh].T.double() / self.scale[fresh, None]
        self.row_of[fresh] = torch.arange(n, n + k, device=fresh.device)
        self.n_cached = n + k

    def add(self, new: dict[int, torch.Tensor], limit: int | None = None) -> None:
        """Append columns to the active sets of some fits.

        Parameters
        ----------
        new : dict of int to Tensor
            For each fit, the columns to append (none of them active in that fit yet).
        limit : int, optional
            The most active columns a fit will get: no capacity is reserved past it.
        """
        self._reserve(max(self.size[f] + cols.numel() for f, cols in new.items()), limit)
        self._cache(torch.unique(torch.cat(list(new.values()))))
        for f, cols in new.items():
            u, a = self.size[f], cols.numel()
            self.slot[f, u : u + a] = self.row_of[cols]
            x_all = self.cache[self.slot[f, : u + a]]
            weighted = x_all[u:] * self.w[:, f]
            S = self.S[f]
            S[:, u : u + a] = (weighted @ self.onehot).T
            cross = weighted @ x_all.T
            cross -= S[:, u : u + a].T @ (self.inv_group_w[:, f, None] * S[:, : u + a])
            cross /= self.total[f]
            self.H[f, u : u + a, : u + a] = cross
            self.H[f, : u + a, u : u + a] = cross.T
            self.b[f, u : u + a] = (x_all[u:] @ self.wyc[:, f]) / self.total[f]
            # let the power iteration see the new directions from a random start: a constant one
            # can be an eigenvector of a small eigenvalue (all-ones is one of every 2 × 2 Gram
            # with equal diagonal), which the iteration never leaves, and L comes out far short
            self.vec[f, u : u + a] = torch.randn(
                a, generator=self.rng, dtype=torch.float64, device=self.X.device
            )
            self.size[f] = u + a
        self.lipschitz = None

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Active columns and coefficients in the units of X, each of shape (n_fits, width).

        Padding slots (past a fit's own size) carry coefficient 0 and an arbitrary column.
        """
        u = self.width
        cols = self.columns[self.slot[:, :u]]
        return cols, self.beta[:, :u] / self.scale[cols]

    def fitted(self) -> torch.Tensor:
        """``X β_f`` of every fit, of shape (n_subsets, n_fits), float64."""
        F, u = self.beta.shape[0], self.width
        dense = self.beta.new_zeros(F, self.cache.shape[0])
        dense.scatter_add_(1, self.slot[:, :u], self.beta[:, :u])
        return (dense @ self.cache).T


class ActiveSets:
    """The restricted problems of all queries and fits, screened and solved together.

    Parameters
    ----------
    X, weights, onehot, scale
        As in :class:`QueryProblems`.
    wyc : Tensor of shape (n_subsets, n_fits, n_queries)
        ``w_f * (y_q − weighted bucket mean of y_q)``, float64.
    """

    def __init__(self, X, weights, onehot, wyc, scale):
        Q = wyc.shape[2]
        self.queries = [QueryProblems(X, weights, onehot, wyc[:, :, q], scale) for q in range(Q)]
        self.member = torch.zeros(
            X.shape[1], weights.shape[1], Q, dtype=torch.bool, device=X.device
        )

    @property
    def width(self) -> int:
        """Largest active-set size over all fits and queries."""
        return max(problems.width for problems in self.queries)

    def add(self, candidates: torch.Tensor, limit: int | None = None) -> tuple[int, list[int]]:
        """Activate the columns flagged in ``candidates`` (n_features, n_fits, n_queries).

        Returns the number of columns added that were not active yet, and the queries left
        untouched because their columns would take one of their fits past ``limit``.
        """
        new = candidates & ~self.member
        over = []
        if limit is not None:
            sizes = torch.tensor([p.size for p in self.queries], device=new.device).T  # (F, Q)
            over = torch.nonzero((sizes + new.sum(0) > limit).any(0)).flatten().tolist()
            new[:, :, over] = False
        hits = torch.nonzero(new)
        if hits.numel() == 0:
            return 0, over
        F = new.shape[1]
        key = hits[:, 2] * F + hits[:, 1]
        order = torch.argsort(key, stable=True)
        hits, key = hits[order], key[order]
        groups, counts = torch.unique_consecutive(key, return_counts=True)
        per_query: dict[int, dict[int, torch.Tensor]] = {}
        for group, cols in zip(
            groups.tolist(), torch.split(hits[:, 0], counts.tolist()), strict=True
        ):
            per_query.setdefault(group // F, {})[group % F] = cols
        for q, fits in per_query.items():
            self.queries[q].add(fits, limit)
        self.member |= new
        return hits.shape[0], over

    def solve(
        self, lam: torch.Tensor, tol: torch.Tensor, max_iter: int, queries: list[int]
    ) -> None:
        """Solve the problems of ``queries`` at penalties ``lam`` (n_queries,) to tolerance ``tol``.

        Queries are solved in batches padded to a common width, as many per batch as fit in
        ``_BATCH_BYTES`` of stacked Grams (a query whose Grams alone exceed it is solved in place):
        small problems then cost one batched iteration for all queries instead of one per query.
        """
        order = sorted(queries, key=lambda q: self.queries[q].width)
        F = len(self.queries[0].size)
        failed, batch = [], []
        for q in [*order, None]:
            if q is not None:
                size = (len(batch) + 1) * F * self.queries[q].width ** 2 * 8
                if not batch or size <= _BATCH_BYTES:
                    batch.append(q)
                    continue
            if not solve_batch([self.queries[i] for i in batch], lam[batch], tol[batch], max_iter):
                failed.extend(batch)
            batch = [q]
        if failed:
            warnings.warn(
                f"LASSO: the problems of queries {sorted(failed)} did not reach the KKT tolerance "
                f"in max_iter={max_iter} iterations; increase max_iter or tol",
                ConvergenceWarning,
                stacklevel=3,
            )

    def fitted(self, queries: list[int]) -> torch.Tensor:
        """``X β`` of every fit of ``queries``, of shape (n_subsets, n_fits, len(queries))."""
        return torch.stack([self.queries[q].fitted() for q in queries], 2)

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Active columns and coefficients of all fits, padded to a common width.

        Returns
        -------
        index : Tensor of shape (n_fits, n_queries, width)
            Padding slots carry coefficient 0 and an arbitrary column.
        coef : Tensor of shape (n_fits, n_queries, width), float64, in the units of X
        """
        width, Q, F = self.width, len(self.queries), self.member.shape[1]
        index = torch.zeros(F, Q, width, dtype=torch.long, device=self.member.device)
        coef = torch.zeros(F, Q, width, dtype=torch.float64, device=self.member.device)
        for q, problems in enumerate(self.queries):
            idx, c = problems.coefficients()
            index[:, q, : idx.shape[1]] = idx
            coef[:, q, : idx.shape[1]] = c
        return index, coef
