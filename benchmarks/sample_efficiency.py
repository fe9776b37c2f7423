"""How few submodels does a deep model need? Levers against training noise, measured.

On the default digits backdoor (params.yaml as shipped, only the keys of each lever changed), for
each model (linear, mlp, cnn), lever and dataset seed: train the budget's submodels and 200
held-out validation submodels with the library's own trainer, fit the estimator on the budget
prefixes m/8, m/4, m/2, m, and print top-k precision, Knockoff+ precision and recall at FDR 0.1
(against the planted poisons) and the held-out LDS (within p; ground-truth free).

Multi-fidelity and adaptive levers: a linear proxy on the same data, 4 x m cheap submodels on
subsets of its own, used as a control variate of the deep behaviour or to screen candidates (mlp);
and the library's two-stage design (``stages``, docs/how-to/stages.md: the run plan's screen,
candidates and second stage, all trainings of both stages counted) with the other points sampled
(``stages``) or in (``stages_in``), its held-out LDS on held-out subsets of the second stage's
design (every model).

Honesty: the poisons enter only the scoring. The recipe shipped for deep models was chosen by
held-out LDS alone among the training recipes (levers that set params only), on dataset seed 0
(``--tuning-seed``); seeds 1 and 2 chose nothing. The cnn chooses its own the same way among
recipes around the mlp's (width, steps, learning rate), printed beside the mlp's choice.

    python benchmarks/sample_efficiency.py     # everything (the cnn: 20-30 min per run here)
    python benchmarks/sample_efficiency.py --models mlp --levers baseline smooth --seeds 0
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from record import add, recorded

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 1259  # the default demo's m = round(4 * 30 * log2 1437)
FRACTIONS = (0.125, 0.25, 0.5, 1.0)
N_VALIDATION = 200

#: Each lever: params changed from the shipped ones (a hypothesis until this script says more).
#: ``antithetic`` and ``seed_average`` change how subsets are drawn or trained, not params.
LEVERS = {
    "baseline": {},
    "per_subset_seed": {"training": {"seed_policy": "per_subset"}},  # fresh init per subset
    "weight_decay_0.03": {"training": {"weight_decay": 0.03}},  # a smoother data -> model map
    "lr_0.01": {"training": {"lr": 0.01}},  # smaller steps: less chaotic optimisation
    "smooth": {"training": {"weight_decay": 0.03, "lr": 0.01}},  # both
    "smooth_wd_0.1": {"training": {"weight_decay": 0.1, "lr": 0.01}},
    "smooth+antithetic": {"training": {"weight_decay": 0.03, "lr": 0.01}, "antithetic": True},
    "smooth+2_seeds": {"training": {"weight_decay": 0.03, "lr": 0.01}, "seed_average": 2},
    # multi-fidelity: the linear proxy's residual as a control variate of the behaviour
    "smooth+linear_control": {"training": {"weight_decay": 0.03, "lr": 0.01}, "proxy": "control"},
    # multi-fidelity: regress only on the proxy's top SCREEN_SHARE of points
    "smooth+linear_screen": {"training": {"weight_decay": 0.03, "lr": 0.01}, "proxy": "screen"},
    # adaptive: the shipped two-stage design, the other points sampled or in
    "stages": {"stages": {"enabled": True}},
    "stages_in": {"stages": {"enabled": True, "others": "in"}},
    "smooth+stages": {"training": {"weight_decay": 0.03, "lr": 0.01}, "stages": {"enabled": True}},
    "smooth+stages_in": {
        "training": {"weight_decay": 0.03, "lr": 0.01},
        "stages": {"enabled": True, "others": "in"},
    },
    # the cnn's own recipe: its width, steps and learning rate around the smooth recipe
    "smooth_width_8": {"training": {"weight_decay": 0.03, "lr": 0.01, "hidden": 8}},
    "smooth_300_steps": {"training": {"weight_decay": 0.03, "lr": 0.01, "steps": 300}},
    "smooth_lr_0.003_300_steps": {"training": {"weight_decay": 0.03, "lr": 0.003, "steps": 300}},
    "smooth_lr_0.03": {"training": {"weight_decay": 0.03, "lr": 0.03}},
}
PROXY_TRAININGS = 4 * BUDGET  # linear submodels of the proxy: cheap next to a deep one
SCREEN_SHARE = 0.1  # candidates kept by a screen, fixed in advance (no ground truth)
#: Per model: settings every lever of that model shares (the cnn's width: cheap on 2 CPU cores).
MODEL_SETTINGS = {
    "linear": {"training": {"model": "linear"}},
    "mlp": {"training": {"model": "mlp"}},
    "cnn": {"training": {"model": "cnn", "hidden": 4, "vectorize": False}},
}


def antithetic(masks):
    """Pairs (S at p, complement of S at 1 - p): odd subsets replaced by their partner's
    complement (the grid {0.2, 0.4, 0.6, 0.8} maps onto itself)."""
    import dataclasses

    from ame.sampling.masks import pack_masks

    bits, p = masks.masks.copy(), masks.p.copy()
    n_pairs = len(p) // 2
    bits[1 : 2 * n_pairs : 2] = ~bits[0 : 2 * n_pairs : 2]
    p[1 : 2 * n_pairs : 2] = 1.0 - p[0 : 2 * n_pairs : 2]
    return dataclasses.replace(masks, packed=pack_masks(bits), p=p)


def point_masks(masks, n_subsets: int) -> np.ndarray:
    """The training points of the first ``n_subsets`` subsets, as boolean rows."""
    return np.stack([masks.point_mask(i) for i in range(n_subsets)])


def behaviours(config: dict, dataset, subsets: np.ndarray, n_seeds: int = 1) -> np.ndarray:
    """Behaviour matrix of the subsets (boolean point masks), each the mean over ``n_seeds``
    submodels trained with different seeds (seed policy as configured)."""
    import torch

    from ame.behaviour.kinds import behaviour_matrix
    from ame.training.builtin import BuiltinTrainer

    t = config["training"]
    trainer = BuiltinTrainer(dataset, t, torch.device("cpu"))
    n_subsets = len(subsets)
    Y = np.zeros((n_subsets, config["behaviour"]["n_queries"] + 1))
    for start in range(0, n_subsets, 100):
        index = list(range(start, min(start + 100, n_subsets)))
        rows = [np.flatnonzero(subsets[i]) for i in index]
        for r in range(n_seeds):
            base = t["seed"] + r * 1_000_003
            seeds = [base + (i if t["seed_policy"] == "per_subset" else 0) for i in index]
            logits = np.stack([out for out, *_ in trainer.fit(rows, seeds, index)])
            Y[index] += behaviour_matrix(logits, dataset.y_query, config["behaviour"]) / n_seeds
    return Y


def fit_units(config: dict, unit_masks, p, Y, n_points: int, columns=None, fold_groups=None):
    """AMEs, selection, debiased AMEs and their standard errors of every point from a fit on
    ``columns`` only (all when None); the others get 0 and are never selected."""
    from ame.estimation.results import estimator_from_params, selection

    columns = np.arange(n_points) if columns is None else columns
    estimator = estimator_from_params(config, n_bootstrap=0).fit(
        unit_masks[:, columns], p, Y, fold_groups=fold_groups
    )
    ame = np.zeros((Y.shape[1], n_points))
    selected = np.zeros((Y.shape[1], n_points), dtype=bool)
    ame[:, columns], selected[:, columns] = estimator.ame_, selection(estimator, config)
    debiased, se = np.zeros_like(ame), np.zeros_like(ame)
    debiased[:, columns] = np.nan_to_num(estimator.ame_debiased_)
    se[:, columns] = estimator.ame_se_
    return ame, selected, debiased, se


def proxy_fit(config: dict, dataset, subsets, p):
    """The linear proxy (shipped recipe) on PROXY_TRAININGS subsets of its own sampling seed:
    its debiased AMEs, and its behaviours on the deep model's ``subsets``."""
    from ame.pipeline import params, plan

    proxy = params.merge(config, {"training": params.load(ROOT / "params.yaml")["training"]})
    proxy = params.merge(proxy, MODEL_SETTINGS["linear"])
    proxy["sampling"]["seed"] += 1  # independent of the deep model's subsets
    proxy["sampling"]["n_subsets"] = PROXY_TRAININGS
    proxy = params.validate(proxy)
    own = plan.draw_masks(proxy, dataset, "points")
    own_subsets = point_masks(own, PROXY_TRAININGS)
    _, _, debiased, se = fit_units(
        proxy,
        own_subsets,
        own.p[:PROXY_TRAININGS],
        behaviours(proxy, dataset, own_subsets),
        dataset.n_points,
    )
    return (debiased, se), behaviours(proxy, dataset, subsets)


def control_variate(Y, Y_proxy, proxy_ame, subsets, p, design) -> np.ndarray:
    """Y minus c times the proxy's residual from its own first-order fit (what the proxy's
    AMEs do not explain), c per query by least squares within p: the part of the deep model's
    noise the proxy shares is taken out, but c times the error of the proxy's AMEs enters the
    first-order signal, where no knockoff column carries it (the FDR guarantee is lost)."""
    from ame.evaluation.lds import p_groups, predict

    residual, deviation = Y_proxy - predict(proxy_ame, subsets, p), Y.copy()
    groups, _ = p_groups(p, design)
    for g in np.unique(groups):
        rows = groups == g
        residual[rows] -= residual[rows].mean(axis=0)
        deviation[rows] -= deviation[rows].mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.nan_to_num((residual * deviation).sum(0) / (residual**2).sum(0))
    return Y - c * residual


def second_stage(config: dict, dataset, screen: tuple, n: int, kind: str = "main"):
    """The run plan's second stage of a two-stage design of ``n`` trainings in all, after a
    screen that gave (debiased AMEs, standard errors): its candidates, and the point masks and
    p of its main (or held-out validation) subsets."""
    from ame.pipeline import params, plan

    staged = params.validate(params.merge(config, {"sampling": {"n_subsets": n}}))
    debiased, se = screen
    estimates = SimpleNamespace(  # what the plan reads of a screen's estimates
        inference={"ame_debiased": debiased, "ame_se": se}, ids=np.arange(dataset.n_points)
    )
    columns = plan.candidates(staged, estimates)
    drawn = plan.second_stage(staged, dataset.n_points, columns, kind)
    return columns, point_masks(drawn, drawn.budget), drawn.p[: drawn.budget]


def run(model: str, lever: str, seed: int) -> list[dict]:
    """One (model, lever, dataset seed): figures at every budget prefix."""
    import torch

    torch.set_num_threads(1)
    from ame import scenarios
    from ame.evaluation.lds import lds
    from ame.evaluation.metrics import selection_scores, topk_precision
    from ame.pipeline import params, plan
    from ame.sampling.stages import screen_candidates

    overlay = copy.deepcopy(LEVERS[lever])
    anti, n_seeds = overlay.pop("antithetic", False), overlay.pop("seed_average", 1)
    proxy = overlay.pop("proxy", None)
    config = params.merge(params.load(ROOT / "params.yaml"), MODEL_SETTINGS[model])
    config = params.merge(params.merge(config, overlay), {"dataset": {"seed": seed}})
    config["sampling"]["n_subsets"], config["validation"]["n_subsets"] = BUDGET, N_VALIDATION
    config = params.validate(config)
    staged = config["stages"]["enabled"]
    plain = params.merge(config, {"stages": {"enabled": False}})  # the screen's subsets
    direction = config["estimation"]["direction"]
    dataset = scenarios.build(config)
    N = dataset.n_points
    started = time.perf_counter()
    masks = plan.draw_masks(plain, dataset, "points")
    masks = antithetic(masks) if anti else masks
    n_subsets = BUDGET // n_seeds  # the same number of trainings for every lever
    subsets = point_masks(masks, n_subsets)
    Y = behaviours(config, dataset, subsets, n_seeds)
    if proxy:
        proxy_ame, Y_proxy = proxy_fit(config, dataset, subsets, masks.p[:n_subsets])
    held_out = plan.draw_masks(plain, dataset, "points", kind="validation")
    val_masks, val_p = held_out.masks[:N_VALIDATION], held_out.p[:N_VALIDATION]
    # a two-stage lever validates on its second stage's design instead (below)
    Y_val = None if staged else behaviours(config, dataset, point_masks(held_out, N_VALIDATION))
    train_s = time.perf_counter() - started
    rows, stage_validation = [], {}
    for fraction in FRACTIONS:
        n = round(fraction * n_subsets)
        X, p, Yn = subsets[:n], masks.p[:n], Y[:n]
        if proxy == "control":
            Y_control = control_variate(Yn, Y_proxy[:n], proxy_ame[0], X, p, masks.design)
            ame, selected, *_ = fit_units(config, X, p, Y_control, N)
        elif proxy == "screen":
            columns = screen_candidates(*proxy_ame, np.arange(N), direction, SCREEN_SHARE)
            ame, selected, *_ = fit_units(config, X, p, Yn, N, columns)
        elif staged:  # the screen is the plain run's first subsets, the rest a second stage
            first = plan.stage_budgets(params.merge(config, {"sampling": {"n_subsets": n}}))
            first = first["screen"]
            screen = fit_units(config, X[:first], p[:first], Yn[:first], N)[2:]
            columns, X2, p2 = second_stage(config, dataset, screen, n)
            started = time.perf_counter()
            Y2 = behaviours(config, dataset, X2)
            train_s += time.perf_counter() - started  # the second stage's trainings
            ame, selected, *_ = fit_units(config, X2, p2, Y2, N, columns)
            # held out from the second stage's design (not counted as trainings); with the
            # other points sampled its rows do not depend on the candidates: trained once
            key = columns.tobytes() if config["stages"]["others"] == "in" else None
            if key not in stage_validation:
                _, val_masks, val_p = second_stage(config, dataset, screen, n, "validation")
                stage_validation[key] = val_masks, val_p, behaviours(config, dataset, val_masks)
            val_masks, val_p, Y_val = stage_validation[key]
        else:
            pairs = np.arange(n) // 2 if anti else None  # a pair never straddles two CV folds
            ame, selected, *_ = fit_units(config, X, p, Yn, N, fold_groups=pairs)
        precision, recall = selection_scores(selected, dataset.ground_truth)
        scores, _ = lds(ame, val_masks, val_p, Y_val, held_out.design)
        rows.append(
            {
                "model": model,
                "lever": lever,
                "seed": seed,
                "trainings": round(fraction * BUDGET),
                "topk": float(topk_precision(ame, dataset.ground_truth).mean()),
                "precision": float(precision.mean()),
                "recall": float(recall.mean()),
                "lds": float(np.nanmean(scores)),
            }
        )
    return [{**row, "train_s": train_s} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_SETTINGS))
    parser.add_argument("--levers", nargs="+", default=None, help="default: see MODEL_LEVERS")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tuning-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, 1 thread each")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "benchmarks/results/sample_efficiency.jsonl",
        help="finished runs (committed: the raw results), reused on a rerun",
    )
    args = parser.parse_args()
    done = {}
    if args.cache.exists():
        for line in args.cache.read_text().splitlines():
            rows = json.loads(line)
            done[(rows[0]["model"], rows[0]["lever"], rows[0]["seed"])] = rows
    todo = [
        (model, lever, seed)
        for model in args.models
        for lever in (args.levers or MODEL_LEVERS[model])
        for seed in args.seeds
        if (model, lever, seed) not in done
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        for key, rows in zip(todo, pool.map(run, *zip(*todo, strict=True)), strict=True):
            done[key] = rows
            with args.cache.open("a") as f:
                f.write(json.dumps(rows) + "\n")
            last = rows[-1]
            print(f"done {key}: top-k {last['topk']:.3f} recall {last['recall']:.3f} "
                  f"LDS {last['lds']:.3f} ({last['train_s']:.0f} s)", flush=True)  # fmt: skip
    keys = [(m, lv, s) for m in args.models for lv in (args.levers or MODEL_LEVERS[m])
            for s in args.seeds]  # fmt: skip
    rows = [row for key in keys for row in done[key]]
    add("rows", rows)
    report(pd.DataFrame(rows), args.tuning_seed)


def report(df: pd.DataFrame, tuning_seed: int) -> None:
    full = df[df["trainings"] == BUDGET]
    seeds = sorted(int(s) for s in df.seed.unique())
    print(f"\n## At m = {BUDGET} trainings: mean over dataset seeds {seeds} "
          f"(seed {tuning_seed} chose the recipe by LDS; the others chose nothing)\n")  # fmt: skip
    table = full.groupby(["model", "lever"], sort=False)[
        ["topk", "precision", "recall", "lds", "train_s"]
    ].mean()
    held = full[full.seed != tuning_seed].groupby(["model", "lever"], sort=False)
    table["topk_held_out"] = held["topk"].mean()
    table["recall_held_out"] = held["recall"].mean()
    table["lds_tuning_seed"] = full[full.seed == tuning_seed].set_index(["model", "lever"])["lds"]
    print(table.round(3).reset_index().to_markdown(index=False, floatfmt=".3f"))
    print("\n## Budget prefixes: mean over seeds, top-k precision / recall / held-out LDS\n")
    curve = df.groupby(["model", "lever", "trainings"], sort=False)[["topk", "recall", "lds"]]
    cells = curve.mean().apply(lambda r: f"{r.topk:.2f} / {r.recall:.2f} / {r.lds:.2f}", axis=1)
    print(cells.unstack("trainings").reset_index().to_markdown(index=False))
    for model in ("mlp", "cnn"):  # the models that choose a recipe of their own
        tuning = full[(full.model == model) & (full.seed == tuning_seed)]
        recipes = tuning[tuning.lever.map(lambda lever: set(LEVERS[lever]) <= {"training"})]
        for name, rows in (("training recipes (params only)", recipes), ("all levers", tuning)):
            if len(rows) > 1:
                chosen = rows.loc[rows["lds"].idxmax(), "lever"]
                print(f"\nHighest held-out LDS of the {model} on seed {tuning_seed}, {name}: "
                      f"{chosen}")  # fmt: skip


#: The levers each model runs by default: the mlp's (where the shipped recipe was chosen), the
#: cnn's recipes around the mlp's choice (where its own is chosen, with the proxy beside them),
#: the baseline and the chosen recipe for the linear model.
LINEAR_ONLY = ["stages", "stages_in"]  # the deep models' two-stage levers use the smooth recipe
CNN_RECIPES = ["smooth_width_8", "smooth_300_steps", "smooth_lr_0.003_300_steps", "smooth_lr_0.03"]
MODEL_LEVERS = {
    "linear": ["baseline", "smooth", "stages", "stages_in"],
    "mlp": [lever for lever in LEVERS if lever not in CNN_RECIPES and lever not in LINEAR_ONLY],
    "cnn": ["baseline", "smooth", "smooth+linear_control", "smooth+stages", *CNN_RECIPES],
}

if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame", "workflow", "Snakefile", "params.yaml")):
        main()
