"""Observed FDR and power of the knockoff filter and of Benjamini–Hochberg, the tests' settings.

The settings of ``tests/estimation/test_knockoffs.py::test_selection_controls_fdr``: 60 points,
500 grid subsets, 30 queries per design with k planted effects each (0.6 · U(0.5, 1), fresh
points per query), unit noise, 5 folds, 40 λ steps, ``--designs`` independent designs (the test:
12, i.e. 360 replicates). Cases: ``planted-1se`` and ``planted-min`` (k = 12, q = 0.1),
``null-fixed`` (k = 0 at λ = 0.3 λ_max, q = 0.2), ``null-min`` (k = 0 at λ_min, q = 0.2: can
Knockoff+ select at all?) and ``null-1se-bh`` (k = 0, BH only, no
knockoffs, q = 0.2, twice the designs). Reported: mean FDP ± its standard error over the designs,
power, and the fraction of queries where Knockoff+ could select at all (≥ 1/q positive W).

Run: PYTHONPATH=src python benchmarks/selection_fdr.py [--designs 12]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from record import add, recorded

from ame.estimation import AMEEstimator
from ame.estimation.knockoffs import KnockoffPowerWarning
from ame.sampling import sample_subsets

CASES = {
    "planted-1se": (12, 0.6, "1se", 0.1, True),
    "planted-min": (12, 0.6, "min", 0.1, True),
    "null-fixed": (0, 0.0, 0.3, 0.2, True),
    "null-min": (0, 0.0, "min", 0.2, True),
    "null-1se-bh": (0, 0.0, "1se", 0.2, False),
}


def fit(seed, k, scale, rule, knockoffs):
    rng = np.random.default_rng(100 + seed)
    masks, p = sample_subsets(60, 500, design="grid", seed=seed)
    true = np.zeros((30, 60))
    for q in range(30):
        true[q, rng.choice(60, size=k, replace=False)] = scale * rng.uniform(0.5, 1.0, k)
    Y = masks @ true.T + rng.standard_normal((500, 30))
    est = AMEEstimator(
        n_folds=5, n_lambdas=40, lambda_rule=rule, knockoffs=knockoffs, random_state=seed
    )
    return est.fit(masks, p, Y), true


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=12)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", KnockoffPowerWarning)
    print("case          rule      q    replicates  FDR (± se)       power   Knockoff+ could")
    rows = []
    for name in args.cases:
        k, scale, rule, fdr, knockoffs = CASES[name]
        designs = args.designs * (2 if not knockoffs else 1)
        rules = ("knockoff", "bh") if knockoffs else ("bh",)
        stats = {r: ([], []) for r in rules}
        could = []
        for seed in range(designs):
            est, true = fit(seed, k, scale, rule, knockoffs)
            for r in rules:
                selected = est.select(fdr=fdr, rule=r)
                false = (selected & (true == 0)).sum(1) / np.maximum(selected.sum(1), 1)
                stats[r][0].append(false)
                stats[r][1].append((selected & (true > 0)).sum(1) / max(k, 1))
            if knockoffs:
                could.append(est.knockoff_can_select(fdr).mean())
        for r in rules:
            fdp = np.array(stats[r][0])
            se = fdp.mean(1).std(ddof=1) / np.sqrt(designs)
            power = np.mean(stats[r][1]) if k else float("nan")
            can = f"{np.mean(could):.2f}" if knockoffs else "-"
            print(
                f"{name:13s} {r:8s} {fdr:4.2f} {fdp.size:11d}  {fdp.mean():.3f} ± {se:.3f}   "
                f"{power:5.2f}   {can}"
            )
            rows.append(
                {
                    "case": name,
                    "rule": r,
                    "q": fdr,
                    "replicates": int(fdp.size),
                    "fdr": float(fdp.mean()),
                    "se": float(se),
                    "power": None if not k else float(power),
                    "knockoff_can_select": float(np.mean(could)) if knockoffs else None,
                }
            )
    add("rows", rows)


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame/estimation", "src/ame/sampling")):
        main()
