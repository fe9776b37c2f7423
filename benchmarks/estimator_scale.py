"""Estimator at CIFAR10-20 scale: time, peak memory and recovery of planted effects.

m = 2,497 subsets of N = 49,970 points (grid design), Q = 20 behaviours, knockoffs on (99,940
columns). Every behaviour gets the same 20 planted points (like the CIFAR poisons) with its own AMEs
drawn from [0.05, 0.2], a p-dependent baseline (absorbed by the buckets) and Gaussian noise with a
part shared by all queries (one submodel answers them all). Y is built from the masks directly: the
behaviour is linear, so the planted AMEs are exact.

Run: .venv/bin/python benchmarks/estimator_scale.py [--subsets 2497] [--points 49970]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch
from record import add, recorded

from ame.estimation.estimator import AMEEstimator
from ame.sampling import pack_masks, sample_subsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsets", type=int, default=2497)
    parser.add_argument("--points", type=int, default=49970)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--planted", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(1)
    N, m, Q, k = args.points, args.subsets, args.queries, args.planted

    t0 = time.perf_counter()
    masks, p = sample_subsets(N, m, design="grid", seed=0)
    planted = rng.choice(N, size=k, replace=False)
    true = np.zeros((Q, N))
    true[:, planted] = rng.uniform(0.05, 0.2, size=(Q, k))
    shared = rng.standard_normal((m, 1))
    noise = args.noise * (0.5 * shared + np.sqrt(0.75) * rng.standard_normal((m, Q)))
    Y = masks[:, planted].astype(float) @ true[:, planted].T + 0.3 * p[:, None] + noise
    packed = pack_masks(masks)
    del masks
    t_sample = time.perf_counter() - t0
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    est = AMEEstimator(knockoffs=True, lambda_rule="1se", device=args.device, random_state=0)
    est.fit(packed, p, Y, n_points=N)
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    top = np.argsort(-est.ame_, axis=1)[:, :k]
    top_precision = np.isin(top, planted).mean()
    selected = est.select(fdr=0.1, direction="positive", knockoff_plus=True)
    n_sel = selected.sum(1)
    hits = selected[:, planted].sum(1)
    precision = np.where(n_sel > 0, hits / np.maximum(n_sel, 1), 1.0)
    corr_all = np.mean([np.corrcoef(est.ame_[q], true[q])[0, 1] for q in range(Q)])
    corr_planted = np.mean(
        [np.corrcoef(est.ame_[q, planted], true[q, planted])[0, 1] for q in range(Q)]
    )
    ratio = np.mean(est.ame_[:, planted] / true[:, planted])

    print(
        f"shape: m={m} N={N} Q={Q} columns={2 * N} (knockoffs) planted={k}/query noise={args.noise}"
    )
    print(f"sampling + behaviours: {t_sample:.1f} s (not part of the fit)")
    print(f"fit wall time: {wall:.1f} s   peak RSS: {peak_gb:.2f} GB")
    print(
        f"load average before / after fit: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
    )
    print(
        f"λ path steps solved: {est.lambdas_.shape[1]} of {est.n_lambdas}; "
        f"chosen λ index (1se) per query: min {est.lambda_index_.min()}, "
        f"max {est.lambda_index_.max()}"
    )
    print(f"top-{k} precision (mean over queries): {top_precision:.3f}")
    print(
        f"knockoff+ q=0.1: precision {precision.mean():.3f}  recall {(hits / k).mean():.3f}  "
        f"selected per query {n_sel.mean():.1f} (queries selecting nothing: {(n_sel == 0).sum()})"
    )
    add(
        "fit",
        {
            "m": m,
            "n_points": N,
            "n_queries": Q,
            "columns": 2 * N,
            "planted": k,
            "noise": args.noise,
            "device": args.device,
            "threads": torch.get_num_threads(),
            "wall_s": round(wall, 1),
            "peak_rss_gb": round(peak_gb, 2),
            "lambda_steps": int(est.lambdas_.shape[1]),
            "topk_precision": float(top_precision),
            "precision": float(precision.mean()),
            "recall": float((hits / k).mean()),
            "corr_all": float(corr_all),
            "corr_planted": float(corr_planted),
        },
    )
    print(
        f"correlation estimated vs planted AME: all points {corr_all:.3f}, planted points "
        f"{corr_planted:.3f}; mean estimate/true on planted {ratio:.3f} (λ_1se shrinkage)"
    )


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame/estimation", "src/ame/sampling")):
        main()
