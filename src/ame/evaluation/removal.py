"""Counterfactual retraining: the removal arms, planned from the estimates, and their effects.

For each query (the first ``validation.removal_queries`` individual ones and the aggregate), R
seeds of the model on (a) the full training set, (b) the full set less the query's selection (its
``validation.removal_top_k`` highest-ranked units when nothing is selected; nothing when no unit
has an effect in the estimated direction), (c) the full set less as many random training points.
Replicate r trains its three arms with the same seed (the run plan's ``replicate_seed``): the
differences are paired, and a replicate with a diverged submodel is left out whole. The arm rows
are a mask artifact (the run plan's removal experiment) trained by the same train rule and store
as every other submodel.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd

from ame.artifacts import load_json
from ame.pipeline.plan import Experiment, design, replicate_seed, whole_jobs
from ame.sampling import MaskSet, pack_masks

ARMS = ("full", "removed", "random")
REMOVAL_COLUMNS = (
    ["query", "removal_rule", "n_removed", "n_removed_points", "n_random_points"]
    + [f"{arm}_{stat}" for arm in ARMS for stat in ("mean", "sd")]
    + ["n_replicates", "removal_effect", "random_effect", "removal_note"]
)


def _unit_points(dataset, estimates) -> list[np.ndarray]:
    """The training points of each estimated unit (a point, or every point of a source)."""
    if estimates.unit == "source":
        return [np.flatnonzero(dataset.source == s) for s in estimates.ids]
    return [np.array([i]) for i in estimates.ids]


def removal_queries(estimates, n_individual: int) -> list[int]:
    """Columns retrained without their selection: the first individual queries, then the
    aggregate (when there is one)."""
    points = estimates.points or [0] * len(estimates.names)
    individual = [q for q, point in enumerate(points) if point >= 0][:n_individual]
    return individual + [q for q, point in enumerate(points) if point < 0]


def plan_removal(config: dict, dataset, estimates, experiment: Experiment) -> tuple[MaskSet, dict]:
    """The training sets of the removal arms (``experiment``, of the run plan: its stream draws
    the random arms, its seed rule seeds the replicates), as a mask artifact, and the plan that
    reads it.

    Rows 0..R-1 are the full-data arm (one per seed, shared by every query); each query then adds
    R rows without its selection and R rows without as many random training points. A query with
    no selection removes its ``validation.removal_top_k`` highest-ranked units instead (rule
    ``top_k``; fewer when fewer have an effect in the estimated direction) and, when no unit has
    one, nothing (rule ``none``): a zero effect ranks nothing. The artifact is padded to whole
    training jobs with more full-data rows, which nothing reads.

    Returns
    -------
    masks : MaskSet
        Point masks (``seeds``: the training seed of each row).
    plan : dict
        JSON-ready: per query its rule (``selected``, ``top_k`` or ``none``), removed units, the
        points each arm removes, rows, and the reason when the removal was not run.
    """
    v, s = config["validation"], config["sampling"]
    R = v["replicates"]
    n = dataset.n_points
    full = np.ones(n, dtype=bool)
    unit_points = _unit_points(dataset, estimates)
    rankings = estimates.ranking(config["estimation"]["direction"])
    rows = [full] * R
    seeds = [replicate_seed(config, r) for r in range(R)]
    queries = []
    for q in removal_queries(estimates, v["removal_queries"]):
        chosen, rule = np.flatnonzero(estimates.selected[q]), "selected"
        if chosen.size == 0:
            chosen = rankings[q][: v["removal_top_k"]]
            rule = "top_k" if chosen.size else "none"
        removed = _without(full, [unit_points[c] for c in chosen])
        n_points = int(n - removed.sum())
        entry = {
            "query": estimates.names[q],
            "column": int(q),
            "rule": rule,
            "removed_units": [int(estimates.ids[c]) for c in chosen],
            "n_removed": int(chosen.size),
            "n_removed_points": n_points,
            "rows_removed": [],
            "rows_random": [],
            "note": None,
        }
        # the random arm removes as many training points, drawn from all of them (not only
        # those a restricted point level studies): a baseline, not a draw inside suspect sources
        arms = [removed] + [
            _without(
                full,
                [experiment.rng(config, q * R + r).choice(n, n_points, replace=False)],
            )
            for r in range(R)
        ]
        if rule == "none":
            entry["note"] = (
                "nothing selected and no unit has an effect in the estimated direction: "
                "nothing to remove"
            )
        else:
            entry["note"] = next(
                filter(None, map(partial(_training_set_problem, dataset), arms)), None
            )
        if entry["note"] is None:
            for r in range(R):
                entry["rows_removed"].append(len(rows))
                rows.append(arms[0])
                seeds.append(replicate_seed(config, r))
                entry["rows_random"].append(len(rows))
                rows.append(arms[1 + r])
                seeds.append(replicate_seed(config, r))
        queries.append(entry)
    budget = len(rows)
    for j in range(whole_jobs(config, budget) - budget):
        rows.append(full)
        seeds.append(replicate_seed(config, R + j))
    bits = np.stack(rows)
    masks = MaskSet(
        pack_masks(bits),
        bits.mean(axis=1),
        n,
        design(config),
        s["seed"],
        budget=budget,
        stream=experiment.stream,
        seeds=np.asarray(seeds, dtype=np.int64),
    )
    plan = {
        "replicates": R,
        "rows_full": list(range(R)),
        "seeds": seeds[:budget],
        "unit": estimates.unit,
        "queries": queries,
    }
    return masks, plan


def _without(full: np.ndarray, point_sets) -> np.ndarray:
    mask = full.copy()
    for points in point_sets:
        mask[points] = False
    return mask


def _training_set_problem(dataset, mask: np.ndarray) -> str | None:
    """Why a removal arm cannot be trained, or None."""
    kept = int(mask.sum())
    if kept == 0:
        return "the removal would leave an empty training set"
    if np.unique(dataset.y_train[mask]).size < 2:
        return f"the removal would leave {kept} training points of a single class"
    return None


def removal_table(plan: dict, behaviours) -> pd.DataFrame:
    """Behaviour of each arm (mean and spread over seeds) and the two effects, per query.

    Replicate r pairs the three arms trained with seed r; a replicate with a diverged submodel
    in any arm is left out of all three (dropping one arm's row alone would unpair the
    differences), and the note says how many were."""
    row_of = {int(s): i for i, s in enumerate(behaviours.subsets)}
    records = []
    for entry in plan["queries"]:
        q = entry["column"]
        record = {
            "query": entry["query"],
            "removal_rule": entry["rule"],
            "n_removed": entry["n_removed"],
            "n_removed_points": entry["n_removed_points"],
            "n_random_points": entry["n_removed_points"] if entry["rows_random"] else 0,
        }
        triples = list(
            zip(plan["rows_full"], entry["rows_removed"], entry["rows_random"], strict=False)
        )
        complete = [t for t in triples if all(r in row_of for r in t)]
        for a, arm in enumerate(ARMS):
            ys = np.array([behaviours.Y[row_of[t[a]], q] for t in complete])
            record[f"{arm}_mean"] = float(ys.mean()) if ys.size else math.nan
            record[f"{arm}_sd"] = float(ys.std(ddof=1)) if ys.size > 1 else math.nan
        record["n_replicates"] = len(complete)
        record["removal_effect"] = record["full_mean"] - record["removed_mean"]
        record["random_effect"] = record["full_mean"] - record["random_mean"]
        note = entry["note"]
        if note is None and len(complete) < len(triples):
            dropped = len(triples) - len(complete)
            note = (
                f"{dropped} of {len(triples)} replicates left out: a submodel diverged"
                if complete
                else "every replicate had a diverged submodel"
            )
        record["removal_note"] = note
        records.append(record)
    return pd.DataFrame(records, columns=REMOVAL_COLUMNS)


def load_plan(path) -> dict:
    """The removal plan written beside the arm masks (``plan_removal``)."""
    return load_json(path)
