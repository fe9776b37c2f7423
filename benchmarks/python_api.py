"""The one-call Python API against pyDVL 0.10 on a poisoned-digits game, and its parallel speed-up.

The game: scikit-learn's digits with a planted backdoor (``ame.data.digits``: poisoned images
carry a trigger and the target label), the poisons and the first clean points up to
``--n-points`` training points; the utility trains a logistic regression on a subset and returns
the mean probability of the target class on the triggered test images of the other classes.
Each method gets the same number of utility evaluations (trainings):

- ``ame``: ``ame.AMEExperiment(budget)`` with the package's default design and estimator
  settings, ranked by AME (direction positive: points that raise the attack), the workflow's
  top-k ranking; ``ame_debiased``: the same call's points ranked by debiased AME (the LASSO at
  λ_1se ranks only its support, so a top-k of every point needs the debiased estimate);
- ``ame_two_stage``: the same budget as a two-stage design with the shipped ``stages`` settings
  (half the budget screens every point, half varies the 10% it keeps as candidates;
  docs/how-to/stages.md): the candidates ranked by the second stage's debiased AME, then the
  other points by the screen's;
- ``msr_banzhaf``: pyDVL's ``MSRBanzhafValuation`` with that utility, ``MaxSamples(budget)``,
  ranked by value, highest first;
- ``data_oob``: pyDVL's ``DataOOBValuation`` of a ``BaggingClassifier`` of ``budget`` logistic
  regressions, ranked by value, lowest first (Data-OOB's own reading: a point its out-of-bag
  models disagree with is suspect; it has no utility, so it cannot be pointed at the attack).

Reported: top-k precision (k = number of poisons: the share of the k highest-ranked points that
are poisons) and seconds, per seed (the seed draws the poisons and the subsets; nothing was tuned
on any seed). pyDVL 0.10 pins numpy < 2, so it runs in its own virtual environment, built here
(``benchmarks/.venvs/pydvl``) and fed the same arrays. First the speed-up: the same call with
``n_jobs=1`` and ``n_jobs=2``, for a utility of about 0.07 s on one thread (:func:`speedup`).

    .venv/bin/python benchmarks/python_api.py [--seeds 0 1 2] [--budgets 300 600] [--n-points 1350]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np
from record import add, recorded
from sklearn.linear_model import LogisticRegression

import ame
from ame.data.digits import digits_backdoor

PEER_VENV = Path(__file__).resolve().parent / ".venvs" / "pydvl"
PEER_PACKAGES = ("pyDVL==0.10.0", "scikit-learn==1.9.1")
MAX_ITER = 200
TWO_STAGES = {"stages": {"enabled": True}}  # the shipped stage settings, chosen before any run

PEER = r"""
import json, sys, time
import numpy as np
from sklearn.ensemble import BaggingClassifier
from sklearn.linear_model import LogisticRegression
from pydvl.valuation import (DataOOBValuation, Dataset, MaxSamples, ModelUtility,
                             MSRBanzhafValuation, SupervisedScorer)

arrays = np.load(sys.argv[1])
X, y, Xq, yq = arrays["X"], arrays["y"], arrays["Xq"], arrays["yq"]
budget, seed, target, max_iter = (int(v) for v in sys.argv[2:6])

def attack(model, X_test, y_test):
    classes = list(model.classes_)
    if target not in classes:
        return 0.0
    return float(model.predict_proba(X_test)[:, classes.index(target)].mean())

out = {}
t0 = time.perf_counter()
utility = ModelUtility(LogisticRegression(max_iter=max_iter),
                       SupervisedScorer(attack, Dataset(Xq, yq), default=0.0))
msr = MSRBanzhafValuation(utility, is_done=None, seed=seed)
msr.is_done = MaxSamples(msr.sampler, budget)  # the sampler is the method's own: count its sets
msr.fit(Dataset(X, y))
result = msr.values()
values = np.full(len(y), np.nan)
values[result.indices] = result.values
out["msr_banzhaf"] = {"values": values.tolist(), "seconds": time.perf_counter() - t0}
t0 = time.perf_counter()
bagging = BaggingClassifier(LogisticRegression(max_iter=max_iter), n_estimators=budget,
                            random_state=seed).fit(X, y)
oob = DataOOBValuation(bagging).fit(Dataset(X, y)).values()
values = np.full(len(y), np.nan)
values[oob.indices] = oob.values
out["data_oob"] = {"values": values.tolist(), "seconds": time.perf_counter() - t0}
print(json.dumps(out))
"""


def peer_python() -> Path:
    """The peer's interpreter, in a virtual environment of its own (built on first use)."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        venv.create(PEER_VENV, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def game(seed: int, n_points: int, n_poisons: int):
    """(X, y, triggered queries, target class, poison indices) of the poisoned-digits game."""
    full = digits_backdoor(seed=seed, n_poisons=n_poisons)
    clean = np.setdiff1d(np.arange(full.n_points), full.ground_truth)
    kept = np.sort(np.concatenate([full.ground_truth, clean[: n_points - n_poisons]]))
    X = full.X_train[kept].reshape(len(kept), -1)
    Xq = full.X_query.reshape(len(full.X_query), -1)
    target = int(full.meta["target_class"])
    return X, full.y_train[kept], Xq, target, np.searchsorted(kept, full.ground_truth)


def utility(X, y, Xq, target):
    """The attack's strength after training on a subset: mean P(target) on triggered images."""

    def attack(indices):
        model = LogisticRegression(max_iter=MAX_ITER).fit(X[indices], y[indices])
        classes = list(model.classes_)
        if target not in classes:
            return 0.0
        return float(model.predict_proba(Xq)[:, classes.index(target)].mean())

    return attack


def top_k_precision(order: np.ndarray, poisons: np.ndarray) -> float:
    k = len(poisons)
    return float(np.isin(order[:k], poisons).mean())


def ame_order(run: ame.AMEExperiment) -> np.ndarray:
    """Points by AME, strongest first (the workflow's top-k ranking); a zero AME ranks nothing,
    so those points come last, in index order."""
    ranked = run.estimates_.ranking("positive")[0]
    rest = np.setdiff1d(np.arange(run.ame_.shape[1]), ranked)
    return np.concatenate([ranked, rest])


def debiased_order(run: ame.AMEExperiment) -> np.ndarray:
    """Points by debiased AME, highest first: a ranking of every point, where the LASSO at
    λ_1se ranks only its support (fixed before any run: top-k needs k ranked points)."""
    debiased = np.nan_to_num(run.estimates_.inference["ame_debiased"][0], nan=-np.inf)
    return np.argsort(-debiased, kind="stable")


def two_stage_order(run: ame.AMEExperiment) -> np.ndarray:
    """The candidates by the second stage's debiased AME, then the others by the screen's."""
    second = np.nan_to_num(run.estimates_.inference["ame_debiased"][0], nan=-np.inf)
    screen = np.nan_to_num(run.screen_.inference["ame_debiased"][0], nan=-np.inf)
    others = np.setdiff1d(run.screen_.ids, run.candidates_)
    return np.concatenate(
        [
            run.candidates_[np.argsort(-second, kind="stable")],
            others[np.argsort(-screen[others], kind="stable")],
        ]
    )


def compare(seeds, budgets, n_points, n_poisons) -> list[dict]:
    rows = []
    python = peer_python()
    for seed in seeds:
        X, y, Xq, target, poisons = game(seed, n_points, n_poisons)
        attack = utility(X, y, Xq, target)
        with tempfile.TemporaryDirectory() as tmp:
            arrays = Path(tmp) / "game.npz"
            np.savez(arrays, X=X, y=y, Xq=Xq, yq=np.full(len(Xq), target))
            for budget in budgets:
                t0 = time.perf_counter()
                run = ame.AMEExperiment(budget, random_state=seed, progress=False).fit(
                    attack, len(y)
                )
                seconds = time.perf_counter() - t0
                t0 = time.perf_counter()
                staged = ame.AMEExperiment(
                    budget, random_state=seed, params=TWO_STAGES, progress=False
                ).fit(attack, len(y))
                orders = (
                    ("ame", ame_order(run), seconds),
                    ("ame_debiased", debiased_order(run), seconds),
                    ("ame_two_stage", two_stage_order(staged), time.perf_counter() - t0),
                )
                for method, order, took in orders:
                    rows.append(
                        {
                            "method": method,
                            "seed": seed,
                            "budget": budget,
                            "top_k_precision": top_k_precision(order, poisons),
                            "seconds": took,
                        }
                    )
                settings = [str(v) for v in (budget, seed, target, MAX_ITER)]
                done = subprocess.run(
                    [python, "-c", PEER, arrays, *settings], capture_output=True, text=True,
                    check=True,
                )  # fmt: skip
                for method, result in json.loads(done.stdout.splitlines()[-1]).items():
                    values = np.nan_to_num(np.asarray(result["values"]), nan=np.inf)
                    order = np.argsort(values if method == "data_oob" else -values, kind="stable")
                    rows.append(
                        {
                            "method": method,
                            "seed": seed,
                            "budget": budget,
                            "top_k_precision": top_k_precision(order, poisons),
                            "seconds": result["seconds"],
                        }
                    )
                for row in rows[-5:]:
                    print(
                        f"seed {seed}, {budget} evaluations, {row['method']:12s} top-k "
                        f"{row['top_k_precision']:.3f} in {row['seconds']:.1f} s",
                        flush=True,
                    )
    return rows


def speedup(budget: int) -> dict:
    """Seconds of the same call on one and on two workers, for a utility of about 0.07 s: a
    small neural net (one hidden layer of 64, 60 epochs) trained on one thread (threadpoolctl),
    as a workflow training job trains on its own cores."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    X, y, Xq, target, _ = game(0, 1437, 24)

    def attack(indices, seed):
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = MLPClassifier((64,), max_iter=60, random_state=seed).fit(X[indices], y[indices])
        classes = list(model.classes_)
        return float(model.predict_proba(Xq)[:, classes.index(target)].mean())

    halves = [np.flatnonzero(np.random.default_rng(i).random(len(y)) < 0.5) for i in range(10)]
    t0 = time.perf_counter()
    for i, indices in enumerate(halves):
        attack(indices, i)
    per_call = (time.perf_counter() - t0) / len(halves)  # on half the points, as at p = 0.5
    seconds = {}
    for n_jobs in (1, 2):
        t0 = time.perf_counter()
        ame.AMEExperiment(budget, n_jobs=n_jobs, progress=False).fit(attack, len(y))
        seconds[n_jobs] = time.perf_counter() - t0
    result = {
        "budget": budget,
        "utility_seconds": per_call,
        "seconds_n_jobs_1": seconds[1],
        "seconds_n_jobs_2": seconds[2],
        "speedup": seconds[1] / seconds[2],
    }
    print(
        f"speed-up: {budget} evaluations (about {per_call * 1000:.0f} ms each): n_jobs=1 "
        f"{seconds[1]:.1f} s, n_jobs=2 {seconds[2]:.1f} s, x{result['speedup']:.2f}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 600])
    parser.add_argument("--n-points", type=int, default=1350)
    parser.add_argument("--n-poisons", type=int, default=24)
    parser.add_argument("--speedup-budget", type=int, default=300)
    parser.add_argument("--skip-comparison", action="store_true", help="the speed-up only")
    args = parser.parse_args()
    add("speedup", speedup(args.speedup_budget))
    if args.skip_comparison:
        return
    rows = compare(args.seeds, args.budgets, args.n_points, args.n_poisons)
    add("rows", rows)
    print("\nmean over seeds: top-k precision (seconds)")
    summary = {}
    for budget in args.budgets:
        cells = []
        for method in ("ame", "ame_debiased", "ame_two_stage", "msr_banzhaf", "data_oob"):
            mine = [r for r in rows if r["method"] == method and r["budget"] == budget]
            precision = float(np.mean([r["top_k_precision"] for r in mine]))
            summary[f"{method}@{budget}"] = precision
            cells.append(f"{method} {precision:.3f} ({np.mean([r['seconds'] for r in mine]):.1f})")
        best_peer = max(summary[f"{m}@{budget}"] for m in ("msr_banzhaf", "data_oob"))
        for ours in ("ame", "ame_debiased", "ame_two_stage"):
            summary[f"{ours}_margin@{budget}"] = summary[f"{ours}@{budget}"] - best_peer
        print(f"{budget} evaluations: " + ", ".join(cells) + "; minus the best peer: ame "
              f"{summary[f'ame_margin@{budget}']:+.3f}, ame_debiased "
              f"{summary[f'ame_debiased_margin@{budget}']:+.3f}, ame_two_stage "
              f"{summary[f'ame_two_stage_margin@{budget}']:+.3f}")  # fmt: skip
    add("summary", summary)


if __name__ == "__main__":
    # what the call runs: the run plan, the estimator, the held-out LDS, the game's data
    measured = (
        "src/ame/experiment.py",
        "src/ame/estimation",
        "src/ame/sampling",
        "src/ame/pipeline",
        "src/ame/evaluation/lds.py",
        "src/ame/data/digits.py",
        "src/ame/artifacts.py",
    )
    with recorded(__file__, measures=measured):
        main()
    sys.exit(0)
