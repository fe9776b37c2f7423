"""Evidence without ground truth: held-out submodels (LDS) and counterfactual retraining.

Two checks a user can believe without planted poisons, both computed from the run's own models:

- **Linear datamodeling score** (LDS; datamodels, TRAK, dattri). The validation experiment
  (``ame.pipeline.plan``, ``validation=True``) trains submodels on fresh subsets that the estimator
  never reads. The estimated effects predict each one's behaviour and the LDS of a query is the
  Spearman correlation of prediction and measurement. The p-dependent mean (bigger subsets, better
  models) would inflate a pooled correlation, so it is computed **within each p value** (within
  quantile bins of p for continuous designs, after the behaviour's linear trend in p) and
  averaged with weights by rows. Within one p the
  estimator's prediction intercept(p) + Σ_n β_n x_n(S, p) is, for both featurizations, a positive
  multiple of Σ_n AME_n (1[n ∈ S] − p) plus a constant: the rank correlation needs neither the
  intercepts (which ``estimates.npz`` does not keep) nor the featurization, and
  Σ_n AME_n (1[n ∈ S] − p), the first-order prediction of the deviation from the p mean, is what is
  plotted.
  The interval is for the LDS these estimates reach on the design's whole population of subsets
  (:func:`lds_interval`). Units with no estimate (NaN: in every subset or in none) predict nothing.
- **Counterfactual retraining**. For each query (the first ``validation.removal_queries``
  individual ones and the aggregate), R seeds of the model on (a) the full training set, (b) the
  full set less the query's selection (its ``validation.removal_top_k`` highest-ranked units when
  nothing is selected; nothing when no unit has an effect in the estimated direction), (c) the
  full set less as many random training points. Replicate r trains its three arms with the same
  seed ``training.seed + r``: the differences are paired, and a replicate with a diverged
  submodel is left out whole. The arm rows are a mask artifact trained by the same train rule and
  store as every other submodel.

A check that cannot be computed (too few validation submodels for a correlation, a behaviour or a
prediction constant on them, a removal that would leave an empty or single-class training set) is
recorded as NaN (``null`` in JSON) with its reason; the report goes on.
"""

from __future__ import annotations

import math
from functools import partial
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ame.artifacts import ArtifactError, atomic_path, atomic_write_json, load_json
from ame.pipeline.plan import Experiment, design, replicate_seed, whole_jobs
from ame.sampling import Design, MaskSet, pack_masks

MIN_GROUP = 3  # rows of one p group needed for a rank correlation
ROWS_PER_BIN = (
    10  # continuous designs: quantile bins of p of about this many rows (at most N_P_BINS)
)
N_P_BINS = 10
CI_LEVEL = 0.95
Z_CLIP = 1 - 1e-9  # |LDS| = 1 has an infinite Fisher z
ARMS = ("full", "removed", "random")
REMOVAL_COLUMNS = (
    ["query", "removal_rule", "n_removed", "n_removed_points", "n_random_points"]
    + [f"{arm}_{stat}" for arm in ARMS for stat in ("mean", "sd")]
    + ["n_replicates", "removal_effect", "random_effect", "removal_note"]
)


# -- LDS ------------------------------------------------------------------------------------------
def p_groups(p: np.ndarray, design: Design) -> tuple[np.ndarray, str]:
    """Group of each row, and what a group is: one per p value of a discrete design, or quantile
    bins of p (about ``ROWS_PER_BIN`` rows each, at most ``N_P_BINS``) for a continuous one.

    The design decides, not the data: a continuous design with few validation submodels has few
    distinct p values, yet each row would be alone in its group."""
    if design.is_discrete:
        return np.unique(p, return_inverse=True)[1], "p value"
    n_bins = int(np.clip(len(p) // ROWS_PER_BIN, 1, N_P_BINS))
    edges = np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(np.searchsorted(edges, p, side="right"), return_inverse=True)[1], "p bin"


def predict(ame: np.ndarray, unit_masks: np.ndarray, p: np.ndarray) -> np.ndarray:
    """First-order prediction of each behaviour's deviation from its p mean.

    An unidentifiable unit (NaN AME: in every subset or in none) contributes nothing: the
    estimate says nothing about it, and one NaN must not void every prediction.

    Parameters
    ----------
    ame : ndarray of shape (n_queries, n_units)
    unit_masks : ndarray of bool, shape (n_subsets, n_units)
    p : ndarray of shape (n_subsets,)

    Returns
    -------
    ndarray of shape (n_subsets, n_queries): Σ_n AME_n (1[n ∈ S] − p).
    """
    ame = np.nan_to_num(np.asarray(ame, dtype=float), nan=0.0)
    return (unit_masks.astype(float) - p[:, None]) @ ame.T


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of matching columns of ``a`` and ``b`` along axis -2 (rows); NaN
    where either column is constant."""
    ra, rb = rankdata(a, axis=-2), rankdata(b, axis=-2)
    ra -= ra.mean(-2, keepdims=True)
    rb -= rb.mean(-2, keepdims=True)
    denom = np.sqrt((ra**2).sum(-2) * (rb**2).sum(-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(-2) / np.where(denom > 0, denom, 1), np.nan)


def _correlation(predicted: np.ndarray, Y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Spearman correlation of prediction and behaviour within one p group, per query, once the
    behaviour's linear trend in p is removed: nothing for a p value (p is constant), and inside
    a bin of a continuous design the p-dependent mean would otherwise swamp the effects.

    Arrays of shape (..., rows, n_queries) and p of shape (..., rows): leading axes are a batch
    (the leave-one-out samples of the jackknife)."""
    dp = p - p.mean(-1, keepdims=True)
    ss = (dp**2).sum(-1, keepdims=True)
    if np.any(ss > 0):
        slope = np.einsum("...r,...rq->...q", dp, Y) / np.where(ss > 0, ss, 1)
        Y = Y - dp[..., None] * slope[..., None, :]
    return _spearman(predicted, Y)


def _group_correlations(predicted, Y, p, groups) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Rows of each group, and per group its weight (rows; 0 when too small) and within-group
    correlation per query, of shapes (n_groups,) and (n_groups, n_queries)."""
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    weights = np.array([rows.size if rows.size >= MIN_GROUP else 0 for rows in members], float)
    r = np.full((len(members), Y.shape[1]), np.nan)
    for g, rows in enumerate(members):
        if weights[g]:
            r[g] = _correlation(predicted[rows], Y[rows], p[rows])
    return members, weights, r


def _pooled(weights: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Row-weighted mean over groups (axis -2) of the finite correlations, per query."""
    ok = np.isfinite(r) & (weights[..., None] > 0)
    total = np.where(ok, r * weights[..., None], 0).sum(-2)
    weight = np.where(ok, weights[..., None], 0).sum(-2)
    with np.errstate(invalid="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1), np.nan)


def lds(
    ame: np.ndarray, unit_masks: np.ndarray, p: np.ndarray, Y: np.ndarray, design: Design
) -> tuple[np.ndarray, list[str | None]]:
    """Linear datamodeling score of every query, compared within each p group.

    Parameters
    ----------
    ame : ndarray of shape (n_queries, n_units)
        Estimated effects (NaN for unidentifiable units, which then predict nothing).
    unit_masks : ndarray of bool, shape (n_subsets, n_units)
        Held-out subsets (never seen by the estimator).
    p : ndarray of shape (n_subsets,)
    Y : ndarray of shape (n_subsets, n_queries)
        Measured behaviours of the held-out submodels.
    design : Design
        The design the held-out subsets were drawn from (decides the p groups).

    Returns
    -------
    scores : ndarray of shape (n_queries,)
        NaN where no p group allows a correlation.
    notes : list of str or None
        Why a score is NaN.
    """
    groups, _ = p_groups(p, design)
    predicted = predict(ame, unit_masks, p)
    members, weights, r = _group_correlations(predicted, Y, p, groups)
    scores = _pooled(weights, r)
    big = [rows for rows, w in zip(members, weights, strict=True) if w]
    notes = []
    for q, score in enumerate(scores):
        if np.isfinite(score):
            notes.append(None)
        elif not big:
            notes.append(
                f"too few validation submodels: fewer than {MIN_GROUP} in every p group (raise "
                "validation.n_subsets)"
            )
        elif all(np.ptp(Y[rows, q]) == 0 for rows in big):
            notes.append("constant behaviour on the validation submodels")
        else:
            notes.append("constant prediction: no effect estimated")
    return scores, notes


def lds_interval(
    ame: np.ndarray, unit_masks: np.ndarray, p: np.ndarray, Y: np.ndarray, design: Design
) -> tuple[float, float]:
    """Interval (level ``CI_LEVEL``) for the mean LDS over queries that these estimates reach on
    the design's whole population of subsets.

    The estimand is conditional on the estimates: what the validation sample leaves uncertain.
    A percentile bootstrap undercovers it (resampled rows tie in rank, which pulls every replicate
    down: 0.78 coverage measured at LDS 0.89); this is the delete-one jackknife on the Fisher z
    scale, bias-corrected (z_bc = n z − (n − 1) mean z₍ᵢ₎). Deleting a row changes only its own
    group's correlation, so the n leave-one-out values cost one correlation of a group each.
    Coverage is measured in ``tests/evaluation/test_lds_and_removal.py``.
    """
    groups, _ = p_groups(p, design)
    predicted = predict(ame, unit_masks, p)
    members, weights, r = _group_correlations(predicted, Y, p, groups)
    theta = _mean_over_queries(_pooled(weights, r))
    if not math.isfinite(theta):
        return math.nan, math.nan
    leave_one_out = []
    for g, rows in enumerate(members):
        if not weights[g]:  # a group too small to correlate stays so without one more row
            leave_one_out += [theta] * rows.size
            continue
        w = weights.copy()
        w[g] = rows.size - 1 if rows.size - 1 >= MIN_GROUP else 0
        rg = np.repeat(r[None], rows.size, axis=0)  # one copy of every group's r per deletion
        if w[g]:
            kept = np.broadcast_to(rows, (rows.size, rows.size))[~np.eye(rows.size, dtype=bool)]
            kept = kept.reshape(rows.size, rows.size - 1)
            rg[:, g] = _correlation(predicted[kept], Y[kept], p[kept])
        else:
            rg[:, g] = np.nan
        scores = _pooled(w, rg)  # (deletions, n_queries)
        finite = np.isfinite(scores)
        with np.errstate(invalid="ignore"):
            leave_one_out += list(
                np.where(finite.any(1), np.where(finite, scores, 0).sum(1) / finite.sum(1), np.nan)
            )
    z_i = np.arctanh(np.clip(leave_one_out, -Z_CLIP, Z_CLIP))
    n = z_i.size
    z = n * np.arctanh(np.clip(theta, -Z_CLIP, Z_CLIP)) - (n - 1) * z_i.mean()
    se = math.sqrt((n - 1) / n * ((z_i - z_i.mean()) ** 2).sum())
    half = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2) * se
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def _mean_over_queries(scores: np.ndarray) -> float:
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else math.nan


# -- counterfactual removal arms --------------------------------------------------------------
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


# -- the validate step ----------------------------------------------------------------------------
def _number(x) -> float | None:
    """JSON has no NaN: a missing figure is null."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _lds_summary(ame, unit_masks, p, Y, design) -> tuple[np.ndarray, list, float, float, float]:
    scores, notes = lds(ame, unit_masks, p, Y, design)
    low, high = lds_interval(ame, unit_masks, p, Y, design)
    return scores, notes, _mean_over_queries(scores), low, high


CURVE_COLUMNS = ["n_submodels", "lds_mean", "lds_ci_low", "lds_ci_high", "note"]


def validate(
    config: dict,
    estimates,
    prefixes,
    main_masks: MaskSet,
    masks: MaskSet,
    behaviours,
    plan: dict,
    removal,
    *,
    summary_path,
    per_query_path,
    curve_path,
    predictions_path,
) -> dict:
    """Write validation.json (flat), the per-query table, the LDS budget curve and the
    predictions of the validation submodels; return the summary."""
    if not np.array_equal(masks.unit_ids, estimates.ids) or masks.unit != estimates.unit:
        raise ArtifactError(
            f"validation masks cover {masks.n_units} {masks.unit}s, the estimates "
            f"{len(estimates.ids)} {estimates.unit}s: they belong to different experiments"
        )
    unit_masks = masks.masks[behaviours.subsets]
    p, Y = behaviours.p, behaviours.Y
    scores, notes, mean, low, high = _lds_summary(estimates.ame, unit_masks, p, Y, masks.design)
    curve = []
    for j, n_submodels in enumerate(prefixes.n_submodels):
        note = prefixes.notes[j]
        _, _, m, lo, hi = (
            _lds_summary(prefixes.ame[j], unit_masks, p, Y, masks.design)
            if note is None
            else (None, None, math.nan, math.nan, math.nan)
        )
        curve.append((int(n_submodels), m, lo, hi, note))
    curve.append((int(main_masks.budget), mean, low, high, None))
    table = pd.DataFrame({"query": estimates.names, "lds": scores, "lds_note": notes})
    arms = removal_table(plan, removal)
    per_query = table.merge(arms, on="query", how="left")
    predicted = predict(estimates.ame, unit_masks, p)
    predictions = pd.DataFrame(
        {
            "subset": np.repeat(behaviours.subsets, len(estimates.names)),
            "p": np.repeat(p, len(estimates.names)),
            "query": np.tile(estimates.names, len(p)),
            "predicted": predicted.ravel(),
            "measured": Y.ravel(),
        }
    )
    summary = {
        "unit": estimates.unit,
        "n_validation_submodels": int(len(behaviours.subsets)),
        "n_validation_excluded": len(behaviours.excluded),
        "lds_within": p_groups(p, masks.design)[1],
        "lds_mean": _number(mean),
        "lds_ci_low": _number(low),
        "lds_ci_high": _number(high),
        "lds_ci_method": "jackknife, Fisher z, bias-corrected",
        "lds_n_queries": int(np.isfinite(scores).sum()),
        # units without an estimate (NaN AME) predict nothing: the LDS ignores them
        "lds_n_units_unpredicted": int(np.isnan(estimates.ame).all(axis=0).sum()),
        "lds_note": None if math.isfinite(mean) else next(filter(None, notes), None),
        "removal_replicates": plan["replicates"],
    }
    done = arms[arms["n_replicates"] > 0] if len(arms) else arms
    summary["n_removal_queries"] = int(len(done))
    summary["n_removal_replicates_left_out"] = int(
        (plan["replicates"] - done["n_replicates"]).sum() if len(done) else 0
    )
    summary["removal_effect_mean"] = _number(done["removal_effect"].mean() if len(done) else None)
    summary["random_removal_effect_mean"] = _number(
        done["random_effect"].mean() if len(done) else None
    )
    if len(arms):
        lead = arms.iloc[-1]  # the aggregate when there is one, else the last query retrained
        full = lead["full_mean"]
        summary.update(
            {
                "removal_query": lead["query"],
                "removal_rule": lead["removal_rule"],
                "removal_n_removed": int(lead["n_removed"]),
                "removal_n_removed_points": int(lead["n_removed_points"]),
                "removal_n_replicates": int(lead["n_replicates"]),
                "removal_full": _number(full),
                "removal_removed": _number(lead["removed_mean"]),
                "removal_random": _number(lead["random_mean"]),
                "removal_drop_fraction": _number(lead["removal_effect"] / full if full else None),
                "random_change_fraction": _number(
                    abs(lead["random_effect"]) / full if full else None
                ),
                "removal_note": lead["removal_note"],
            }
        )
    for frame, path in (
        (per_query, per_query_path),
        (pd.DataFrame(curve, columns=CURVE_COLUMNS), curve_path),
        (predictions, predictions_path),
    ):
        with atomic_path(path, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(summary_path, summary)
    return summary


def load_plan(path) -> dict:
    """The removal plan written beside the arm masks (``plan_removal``)."""
    return load_json(path)
