"""Wall time of ``AMEEstimator.fit`` at a small shape, with a profile of where it goes.

Default shape (issue 13): m = 600 subsets, N = 2,000 points, Q = 8 behaviours with 10 planted
effects each, 5 folds, no knockoffs, the default λ rule; one torch thread. ``--profile`` prints
the top functions by cumulative time (cProfile).

Run: PYTHONPATH=src python benchmarks/estimator_small.py [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch
from record import recorded

from ame.estimation import AMEEstimator
from ame.sampling import sample_subsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsets", type=int, default=600)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--knockoffs", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    m, N, Q = args.subsets, args.points, args.queries
    masks, p = sample_subsets(N, m, design="grid", seed=0)
    true = np.zeros((Q, N))
    for q in range(Q):
        true[q, rng.choice(N, 10, replace=False)] = rng.uniform(0.05, 0.2, 10)
    Y = masks @ true.T + 0.2 * rng.standard_normal((m, Q))

    def fit():
        return AMEEstimator(n_folds=args.folds, knockoffs=args.knockoffs).fit(masks, p, Y)

    fit()  # warm-up (imports, allocator)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        est = fit()
        times.append(time.perf_counter() - start)
    top = np.argsort(-est.ame_, axis=1)[:, :10]
    hits = np.mean([np.isin(top[q], np.flatnonzero(true[q])).mean() for q in range(Q)])
    print(
        f"m={m} N={N} Q={Q} folds={args.folds} knockoffs={args.knockoffs}: "
        f"fit {np.median(times):.2f} s (median of {args.repeats}; min {min(times):.2f}), "
        f"top-10 precision {hits:.2f}"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(fit)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame/estimation", "src/ame/sampling")):
        main()
