"""Shapley values of the paper's threshold game: AME (shapley design + LASSO) vs permutation MC.

N = 1,000 players; U(S) = 1 when at least 2 of players {0, 1, 2} are in S. Exact Shapley: 1/3 for
players 0-2, 0 for the rest. Metric: L2 error of the whole value vector against the number of
utility evaluations. AME: one evaluation per subset (p drawn with density ∝ 1/(p(1-p)) on
[ε, 1-ε], centered features, λ_min). Permutation Monte Carlo: a permutation evaluates U on all
N + 1 prefixes, so it costs N + 1 evaluations; budgets below that yield no estimate (error of the
zero vector). Errors are averaged over seeds.

Run: .venv/bin/python benchmarks/shapley_threshold.py [--seeds 5] [--eps 0.01]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from record import add, recorded

from ame.estimation.estimator import AMEEstimator
from ame.sampling import Design, sample_subsets

N_PLAYERS = 1000
KEY = np.array([0, 1, 2])
EXACT = np.r_[np.full(3, 1 / 3), np.zeros(N_PLAYERS - 3)]


def utility(masks: np.ndarray) -> np.ndarray:
    return (masks[:, KEY].sum(1) >= 2).astype(float)


def ame_estimate(budget: int, eps: float, seed: int) -> np.ndarray:
    masks, p = sample_subsets(N_PLAYERS, budget, design=Design("shapley", eps=eps), seed=seed)
    est = AMEEstimator(lambda_rule="min", knockoffs=False, random_state=seed)
    return est.fit(masks, p, utility(masks)).ame_[0]


def permutation_estimate(budget: int, seed: int) -> np.ndarray:
    """Average marginal contributions over budget // (N + 1) random permutations."""
    rng = np.random.default_rng(seed)
    total, n_perm = np.zeros(N_PLAYERS), budget // (N_PLAYERS + 1)
    is_key = np.isin(np.arange(N_PLAYERS), KEY)
    for _ in range(n_perm):
        order = rng.permutation(N_PLAYERS)
        # U on the N + 1 prefixes of the permutation (depends on the prefix only through its keys)
        prefix_values = np.r_[0.0, (np.cumsum(is_key[order]) >= 2).astype(float)]
        total[order] += np.diff(prefix_values)
    return total / max(n_perm, 1)


def budget_at(errors: np.ndarray, budgets: np.ndarray, target: float) -> float:
    """Smallest budget with mean error <= target, log-linearly interpolated (nan if none)."""
    below = np.flatnonzero(errors <= target)
    if below.size == 0:
        return float("nan")
    i = below[0]
    if i == 0:
        return float(budgets[0])
    x0, x1, y0, y1 = np.log(budgets[i - 1]), np.log(budgets[i]), errors[i - 1], errors[i]
    return float(np.exp(x0 + (y0 - target) / (y0 - y1) * (x1 - x0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--target", type=float, default=0.05)
    args = parser.parse_args()
    ame_budgets = 2 ** np.arange(8, 15)
    perm_budgets = 2 ** np.arange(10, 20)

    t0 = time.perf_counter()
    ame_err = np.array(
        [
            [np.linalg.norm(ame_estimate(b, args.eps, s) - EXACT) for s in range(args.seeds)]
            for b in ame_budgets
        ]
    )
    t_ame = time.perf_counter() - t0
    t0 = time.perf_counter()
    perm_err = np.array(
        [
            [np.linalg.norm(permutation_estimate(b, s) - EXACT) for s in range(args.seeds)]
            for b in perm_budgets
        ]
    )
    t_perm = time.perf_counter() - t0

    eps = args.eps
    # AME_0(L_p) = P(exactly one of players 1, 2 present) = 2p(1-p); mean over p ~ U(eps, 1-eps)
    antiderivative = lambda x: x**2 - 2 * x**3 / 3  # noqa: E731
    restricted = (antiderivative(1 - eps) - antiderivative(eps)) / (1 - 2 * eps)
    print(f"threshold game, N={N_PLAYERS}; exact Shapley 1/3 for players 0-2; {args.seeds} seeds")
    print(
        f"AME estimand with eps={eps}: Shapley restricted to p in [{eps}, {1 - eps}] = "
        f"{restricted:.4f} "
        f"for players 0-2 (bias {restricted - 1 / 3:+.4f})"
    )
    print(f"{'evaluations':>12} {'AME L2 error':>14} {'permutation MC L2 error':>24}")
    for b in sorted(set(ame_budgets) | set(perm_budgets)):
        a = ame_err[ame_budgets == b].mean() if b in ame_budgets else np.nan
        pm = perm_err[perm_budgets == b].mean() if b in perm_budgets else np.nan
        print(f"{b:>12d} {a:>14.4f} {pm:>24.4f}")
    b_ame = budget_at(ame_err.mean(1), ame_budgets, args.target)
    b_perm = budget_at(perm_err.mean(1), perm_budgets, args.target)
    print(
        f"evaluations to reach mean L2 error {args.target}: AME {b_ame:,.0f}, "
        f"permutation MC {b_perm:,.0f} "
        f"(ratio {b_perm / b_ame:.1f}x)"
    )
    print(f"wall time: AME fits {t_ame:.1f} s, permutation MC {t_perm:.1f} s")
    add(
        "target",
        {
            "n_players": N_PLAYERS,
            "seeds": args.seeds,
            "eps": eps,
            "l2_error": args.target,
            "ame_evaluations": b_ame,
            "permutation_evaluations": b_perm,
            "ratio": b_perm / b_ame,
        },
    )


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame/estimation", "src/ame/sampling")):
        main()
