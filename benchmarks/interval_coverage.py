"""Coverage of the estimator's intervals on linear games with known AMEs.

Linear game: U(S) = Σ_{n ∈ S} β_n + σ ε, so AME_n = β_n at every p. Five points per query carry
effects 0.2, 0.275, 0.35, 0.425, 0.5 (random points), the rest 0. Every data set is a fresh grid
design (its own seed) with ``--queries`` behaviours (fresh effects and noise each); the estimator
runs at its defaults (λ_1se, 10 folds, knockoffs). Reported: the fraction of 95% intervals that
contain the true AME, for the non-zero and for the zero effects, and for comparison the old
error bar ``ame_ ± 1.96 · stderr_`` (bootstrap at the chosen λ) when ``--bootstrap`` is given.

Games (``--game``): ``issue`` N = 50, m = 600 (the game of issue 13); ``wide`` N = 1,000,
m = 400 (fewer subsets than points).

Run: PYTHONPATH=src python benchmarks/interval_coverage.py --game issue --datasets 40
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from record import add, recorded

from ame.estimation import AMEEstimator
from ame.sampling import sample_subsets

GAMES = {"issue": (50, 600), "wide": (1000, 400)}
EFFECTS = np.linspace(0.2, 0.5, 5)


def simulate(n_points, n_subsets, n_queries, sigma, seed):
    rng = np.random.default_rng(10_000 + seed)
    masks, p = sample_subsets(n_points, n_subsets, design="grid", seed=seed)
    true = np.zeros((n_queries, n_points))
    for q in range(n_queries):
        true[q, rng.choice(n_points, EFFECTS.size, replace=False)] = EFFECTS
    Y = masks @ true.T + sigma * rng.standard_normal((n_subsets, n_queries))
    return masks, p, Y, true


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", choices=sorted(GAMES), default="issue")
    parser.add_argument("--datasets", type=int, default=40)
    parser.add_argument("--queries", type=int, default=25)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--bootstrap", type=int, default=0, help="n_bootstrap for stderr_")
    parser.add_argument("--lambda-rule", default="1se")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_points, n_subsets = GAMES[args.game]
    rule = args.lambda_rule if args.lambda_rule in ("1se", "min") else float(args.lambda_rule)
    hits = {"nonzero": [], "zero": []}
    boot = {"nonzero": [], "zero": []}
    widths, start = [], time.perf_counter()
    for seed in range(args.datasets):
        masks, p, Y, true = simulate(n_points, n_subsets, args.queries, args.sigma, seed)
        est = AMEEstimator(lambda_rule=rule, n_bootstrap=args.bootstrap, random_state=seed)
        est.fit(masks, p, Y)
        inside = (est.ci_low_ <= true) & (true <= est.ci_high_)
        hits["nonzero"].append(inside[true != 0])
        hits["zero"].append(inside[true == 0])
        widths.append(np.median(est.ci_high_ - est.ci_low_))
        if args.bootstrap:
            ok = np.abs(est.ame_ - true) <= 1.96 * est.stderr_
            boot["nonzero"].append(ok[true != 0])
            boot["zero"].append(ok[true == 0])
    print(
        f"game={args.game} N={n_points} m={n_subsets} sigma={args.sigma} rule={args.lambda_rule} "
        f"datasets={args.datasets} queries={args.queries} ({time.perf_counter() - start:.0f} s)"
    )
    add(
        "game",
        {
            "game": args.game,
            "n_points": n_points,
            "m": n_subsets,
            "sigma": args.sigma,
            "lambda_rule": args.lambda_rule,
            "datasets": args.datasets,
            "queries": args.queries,
        },
    )
    for kind in ("nonzero", "zero"):
        covered = np.concatenate(hits[kind])
        se = np.sqrt(covered.mean() * (1 - covered.mean()) / covered.size)
        add(kind, {"coverage": float(covered.mean()), "se": float(se), "n": int(covered.size)})
        line = f"  {kind:8s} effects: coverage {covered.mean():.3f} ± {se:.3f} (n={covered.size})"
        if args.bootstrap:
            line += f"; ame_ ± 1.96 stderr_: {np.concatenate(boot[kind]).mean():.3f}"
        print(line)
    add("median_width", float(np.median(widths)))
    print(f"  median interval width {np.median(widths):.3f}")


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame/estimation", "src/ame/sampling")):
        main()
