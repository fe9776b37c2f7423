"""Our batched CV-LASSO solver against a per-query scikit-learn ``LassoCV`` loop, same problem.

m = 1,000 subsets, N = 5,000 points with knockoffs (10,000 columns), Q = 20 behaviours. Both
solve the identical problem: the float32 design the estimator builds, standardized once (so one
bucket and per-fold intercepts match ``fit_intercept=True``), the same K folds (passed to LassoCV
as a list of splits) and the same per-query penalties. Our path stops each query ``patience``
steps after its CV minimum; scikit-learn gets exactly the penalties we solved for that query, so
it solves the same problems. scikit-learn is timed on a few queries spread over the Q and
extrapolated to all Q in proportion to the penalties solved (stated in the output).

Run: .venv/bin/python benchmarks/estimator_vs_sklearn.py [--sklearn-queries 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from record import add, recorded
from sklearn.linear_model import LassoCV

from ame.estimation.cv import kfold_weights, sparse_to_dense
from ame.estimation.design import featurize
from ame.estimation.solver import lambda_max, lasso_path
from ame.sampling import sample_subsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsets", type=int, default=1000)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument(
        "--tol", type=float, default=1e-4, help="our KKT tolerance (relative to λ_max)"
    )
    parser.add_argument("--sklearn-tol", type=float, default=1e-6)
    parser.add_argument("--sklearn-queries", type=int, default=3)
    parser.add_argument("--no-knockoffs", action="store_true", help="N columns instead of 2N")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (sklearn's CD: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    m, N, Q, K = args.subsets, args.points, args.queries, args.folds

    masks, p = sample_subsets(N, m, design="grid", seed=0)
    planted = rng.choice(N, size=10, replace=False)
    true = np.zeros((Q, N))
    true[:, planted] = rng.uniform(0.05, 0.2, size=(Q, 10))
    Y = masks @ true.T + args.noise * rng.standard_normal((m, Q))
    X = featurize(masks, p, N, "inverse", knockoff_seed=None if args.no_knockoffs else 0)
    X = (X - X.mean(0)) / X.std(0, unbiased=False)  # standardized once: one bucket, no rescaling
    Yt = torch.as_tensor(Y)
    lambdas = lambda_max(X, Yt)[None, :] * torch.as_tensor(np.geomspace(1.0, 0.01, 100))[:, None]
    weights, held_out = kfold_weights(m, K, np.random.default_rng(0))
    splits = [(np.flatnonzero(~held_out[:, k]), np.flatnonzero(held_out[:, k])) for k in range(K)]

    t0 = time.perf_counter()
    path = lasso_path(
        X,
        Yt,
        torch.as_tensor(weights),
        lambdas,
        held_out=torch.as_tensor(held_out),
        keep_path=K,
        tol=args.tol,
        patience=10,
    )
    ours = time.perf_counter() - t0
    cv = path.cv_mse.mean(1)  # (n_steps, Q); NaN after a query stopped (patience)
    solved = (~np.isnan(cv)).sum(0)
    our_index = np.nanargmin(cv, axis=0)

    X64 = X.double().numpy()
    timed = np.unique(np.linspace(0, Q - 1, min(args.sklearn_queries, Q)).round().astype(int))
    t0 = time.perf_counter()
    fits = {
        q: LassoCV(
            alphas=path.lambdas[: solved[q], q], cv=splits, tol=args.sklearn_tol, max_iter=100_000
        ).fit(X64, Y[:, q])
        for q in timed
    }
    sk_timed = time.perf_counter() - t0
    sk_total = sk_timed * solved.sum() / solved[timed].sum()  # extrapolated by penalties solved

    index_diff, coef_err, cv_err = [], [], []
    for q, fit in fits.items():
        sk_index = int(np.argmin(np.abs(path.lambdas[:, q] - fit.alpha_)))
        index_diff.append(abs(sk_index - int(our_index[q])))
        coef = sparse_to_dense(
            path.path_index[sk_index][q], path.path_coef[sk_index][q], X.shape[1]
        )
        coef_err.append(np.abs(coef - fit.coef_).max() / np.abs(fit.coef_).max())
        ours_cv = path.cv_mse[: solved[q], :, q]
        cv_err.append(np.abs(ours_cv - fit.mse_path_).max() / fit.mse_path_.max())

    fakes = "" if args.no_knockoffs else " + knockoffs"
    print(
        f"problem: m={m}, columns={X.shape[1]} (N={N}{fakes}), Q={Q}, {K} folds; penalties "
        f"solved per query {solved.min()}-{solved.max()} of 100 (each stops 10 after its CV min)"
    )
    print(
        f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"ours: {ours:.1f} s for all {Q} queries, tol={args.tol:g}")
    print(
        f"scikit-learn LassoCV (tol={args.sklearn_tol:g}, the same penalties per query): "
        f"{sk_timed:.1f} s for queries {timed.tolist()}, extrapolated by penalties solved to all "
        f"{Q}: {sk_total:.0f} s"
    )
    print(f"speed ratio: {sk_total / ours:.1f}x")
    print(f"chosen λ_min index difference per compared query: {index_diff} (max {max(index_diff)})")
    print(f"max |coef difference| / max |coef| at scikit-learn's λ: {max(coef_err):.2e}")
    print(f"max relative difference of the CV error curves: {max(cv_err):.2e}")
    add(
        "comparison",
        {
            "m": m,
            "columns": int(X.shape[1]),
            "n_queries": Q,
            "folds": K,
            "ours_s": round(ours, 1),
            "sklearn_s": round(sk_total, 1),
            "speed_ratio": float(sk_total / ours),
            "max_index_difference": int(max(index_diff)),
            "coef_error": float(max(coef_err)),
            "cv_error": float(max(cv_err)),
        },
    )


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame/estimation",)):
        main()
