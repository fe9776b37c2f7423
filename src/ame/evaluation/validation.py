"""Evidence without ground truth: held-out submodels (LDS) and counterfactual retraining.

Two checks a user can believe without planted poisons, both computed from the run's own models:

- **Linear datamodeling score** (LDS; datamodels, TRAK, dattri). The validation experiment
  (``ame.pipeline.plan``, ``validation=True``) trains submodels on fresh subsets that the estimator
  never reads. The estimated effects predict each one's behaviour and the LDS of a query is the
  Spearman correlation of prediction and measurement. The p-dependent mean (bigger subsets, better
  models) would inflate a pooled correlation, so it is computed **within each p value** (within
  quantile bins of p for continuous designs) and averaged with weights by rows. Within one p the
  estimator's prediction intercept(p) + Σ_n β_n x_n(S, p) is, for both featurizations, a positive
  multiple of Σ_n AME_n (1[n ∈ S] − p) plus a constant: the rank correlation needs neither the
  intercepts (which ``estimates.npz`` does not keep) nor the featurization, and
  Σ_n AME_n (1[n ∈ S] − p), the first-order prediction of the deviation from the p mean, is what is
  plotted.
- **Counterfactual retraining**. For each query (the first ``validation.removal_queries``
  individual ones and the aggregate), R seeds of the model on (a) the full training set, (b) the
  full set less the query's selection (its top k by AME when nothing is selected), (c) the full set
  less as many random units (drawn from all training points, or all sources). Replicate r trains
  its three arms with the same seed ``training.seed + r``: the differences are paired. The arm
  rows are a mask artifact trained by the same train rule and store as every other submodel.

A check that cannot be computed (too few validation submodels for a correlation, a behaviour or a
prediction constant on them, a removal that would leave an empty or single-class training set) is
recorded as NaN (``null`` in JSON) with its reason; the report goes on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ame.artifacts import ArtifactError, atomic_path, atomic_write_json
from ame.pipeline.plan import design
from ame.pipeline.submodels import check_pack_size
from ame.sampling import STREAMS, MaskSet, pack_masks, subset_rng

MIN_GROUP = 3  # rows of one p value needed for a rank correlation
MAX_DISCRETE_P = 50  # more distinct p values: compare within quantile bins of p instead
N_P_BINS = 10
CI_LEVEL = 0.95
ARMS = ("full", "removed", "random")
REMOVAL_COLUMNS = (
    ["query", "removal_rule", "n_removed"]
    + [f"{arm}_{stat}" for arm in ARMS for stat in ("mean", "sd")]
    + ["removal_effect", "random_effect", "removal_note"]
)


# -- LDS ------------------------------------------------------------------------------------------
def p_groups(p: np.ndarray) -> tuple[np.ndarray, str]:
    """Group of each row, and what a group is: one per p value, or per quantile bin of p."""
    values, groups = np.unique(p, return_inverse=True)
    if values.size <= MAX_DISCRETE_P:
        return groups, "p value"
    edges = np.quantile(p, np.linspace(0, 1, N_P_BINS + 1)[1:-1])
    return np.unique(np.searchsorted(edges, p, side="right"), return_inverse=True)[1], "p bin"


def predict(ame: np.ndarray, unit_masks: np.ndarray, p: np.ndarray) -> np.ndarray:
    """First-order prediction of each behaviour's deviation from its p mean.

    Parameters
    ----------
    ame : ndarray of shape (n_queries, n_units)
    unit_masks : ndarray of bool, shape (n_subsets, n_units)
    p : ndarray of shape (n_subsets,)

    Returns
    -------
    ndarray of shape (n_subsets, n_queries): Σ_n AME_n (1[n ∈ S] − p).
    """
    return (unit_masks.astype(float) - p[:, None]) @ np.asarray(ame, dtype=float).T


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of matching columns of ``a`` and ``b`` (rows, columns); NaN where
    either column is constant."""
    ra, rb = rankdata(a, axis=0), rankdata(b, axis=0)
    ra -= ra.mean(0)
    rb -= rb.mean(0)
    denom = np.sqrt((ra**2).sum(0) * (rb**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(0) / np.where(denom > 0, denom, 1), np.nan)


def _within_groups(predicted, Y, groups) -> np.ndarray:
    """Row-weighted mean over groups of the within-group Spearman correlation, per query."""
    total = np.zeros(Y.shape[1])
    weight = np.zeros(Y.shape[1])
    for g in np.unique(groups):
        rows = groups == g
        if rows.sum() < MIN_GROUP:
            continue
        r = _spearman(predicted[rows], Y[rows])
        ok = np.isfinite(r)
        total[ok] += rows.sum() * r[ok]
        weight[ok] += rows.sum()
    with np.errstate(invalid="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1), np.nan)


def lds(
    ame: np.ndarray, unit_masks: np.ndarray, p: np.ndarray, Y: np.ndarray
) -> tuple[np.ndarray, list[str | None]]:
    """Linear datamodeling score of every query, compared within each p value.

    Parameters
    ----------
    ame : ndarray of shape (n_queries, n_units)
        Estimated effects.
    unit_masks : ndarray of bool, shape (n_subsets, n_units)
        Held-out subsets (never seen by the estimator).
    p : ndarray of shape (n_subsets,)
    Y : ndarray of shape (n_subsets, n_queries)
        Measured behaviours of the held-out submodels.

    Returns
    -------
    scores : ndarray of shape (n_queries,)
        NaN where no p group allows a correlation.
    notes : list of str or None
        Why a score is NaN.
    """
    groups, _ = p_groups(p)
    predicted = predict(ame, unit_masks, p)
    scores = _within_groups(predicted, Y, groups)
    notes = []
    big = [g for g in np.unique(groups) if (groups == g).sum() >= MIN_GROUP]
    for q, score in enumerate(scores):
        if np.isfinite(score):
            notes.append(None)
        elif not big:
            notes.append(
                f"too few validation submodels: fewer than {MIN_GROUP} at every p (raise "
                "validation.n_subsets)"
            )
        elif all(np.ptp(Y[groups == g, q]) == 0 for g in big):
            notes.append("constant behaviour on the validation submodels")
        else:
            notes.append("constant prediction: no effect estimated")
    return scores, notes


def lds_interval(
    ame: np.ndarray,
    unit_masks: np.ndarray,
    p: np.ndarray,
    Y: np.ndarray,
    n_bootstrap: int,
    seed: int,
) -> tuple[float, float]:
    """Bootstrap interval (level ``CI_LEVEL``) of the mean LDS over queries: validation submodels
    resampled within their p group, so every replicate keeps the design's group sizes."""
    if n_bootstrap == 0:
        return math.nan, math.nan
    groups, _ = p_groups(p)
    predicted = predict(ame, unit_masks, p)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    means = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        rows = np.concatenate([rng.choice(m, size=m.size) for m in members])
        scores = _within_groups(predicted[rows], Y[rows], groups[rows])
        means[b] = np.nanmean(scores) if np.isfinite(scores).any() else np.nan
    if not np.isfinite(means).any():
        return math.nan, math.nan
    tail = (1 - CI_LEVEL) / 2
    low, high = np.nanquantile(means, [tail, 1 - tail])
    return float(low), float(high)


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


def plan_removal(config: dict, dataset, estimates) -> tuple[MaskSet, dict]:
    """The training sets of the removal arms, as a mask artifact, and the plan that reads it.

    Rows 0..R-1 are the full-data arm (one per seed, shared by every query); each query then adds
    R rows without its selection and R rows without as many random units. The artifact is padded
    to whole training jobs with more full-data rows, which nothing reads.

    Returns
    -------
    masks : MaskSet
        Point masks (``seeds``: the training seed of each row).
    plan : dict
        JSON-ready: per query its rule (``selected`` or ``top_k``), removed units, rows, and the
        reason when the removal was not run.
    """
    v, t, s = config["validation"], config["training"], config["sampling"]
    R = v["replicates"]
    n = dataset.n_points
    full = np.ones(n, dtype=bool)
    unit_points = _unit_points(dataset, estimates)
    # random removals draw from every source, or every training point (not only those a
    # restricted point level studies: a random baseline, not a draw inside suspect sources)
    pool = unit_points if estimates.unit == "source" else [np.array([i]) for i in range(n)]
    k = config["hierarchy"]["k_sources"] if estimates.unit == "source" else s["k"]
    sign = 1.0 if config["estimation"]["direction"] == "positive" else -1.0
    rows = [full] * R
    seeds = [t["seed"] + r for r in range(R)]
    queries = []
    for q in removal_queries(estimates, v["removal_queries"]):
        chosen = np.flatnonzero(estimates.selected[q])
        rule = "selected"
        if chosen.size == 0:
            rule = "top_k"
            chosen = np.argsort(-sign * estimates.ame[q], kind="stable")[:k]
        entry = {
            "query": estimates.names[q],
            "column": int(q),
            "rule": rule,
            "removed_units": [int(estimates.ids[c]) for c in chosen],
            "n_removed": int(chosen.size),
            "rows_removed": [],
            "rows_random": [],
            "note": None,
        }
        arms = [_without(full, unit_points, chosen)]
        for r in range(R):
            rng = subset_rng(s["seed"], q * R + r, STREAMS["removal"])
            arms.append(_without(full, pool, rng.choice(len(pool), chosen.size, False)))
        entry["note"] = next(filter(None, (_training_set_problem(dataset, a) for a in arms)), None)
        if entry["note"] is None:
            for r in range(R):
                entry["rows_removed"].append(len(rows))
                rows.append(arms[0])
                seeds.append(t["seed"] + r)
                entry["rows_random"].append(len(rows))
                rows.append(arms[1 + r])
                seeds.append(t["seed"] + r)
        queries.append(entry)
    budget = len(rows)
    per_job = check_pack_size(t["subsets_per_job"])
    for j in range(math.ceil(budget / per_job) * per_job - budget):
        rows.append(full)
        seeds.append(t["seed"] + R + j)
    bits = np.stack(rows)
    masks = MaskSet(
        pack_masks(bits),
        bits.mean(axis=1),
        n,
        design(config),
        s["seed"],
        budget=budget,
        stream=STREAMS["removal"],
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


def _without(full: np.ndarray, unit_points: list[np.ndarray], units) -> np.ndarray:
    mask = full.copy()
    for u in units:
        mask[unit_points[u]] = False
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
    """Behaviour of each arm (mean and spread over seeds) and the two effects, per query."""
    row_of = {int(s): i for i, s in enumerate(behaviours.subsets)}
    records = []
    for entry in plan["queries"]:
        q = entry["column"]
        record = {
            "query": entry["query"],
            "removal_rule": entry["rule"],
            "n_removed": entry["n_removed"],
        }
        values = {}
        for arm, arm_rows in zip(
            ARMS, (plan["rows_full"], entry["rows_removed"], entry["rows_random"]), strict=True
        ):
            ys = np.array([behaviours.Y[row_of[r], q] for r in arm_rows if r in row_of])
            values[arm] = ys
            record[f"{arm}_mean"] = float(ys.mean()) if ys.size else math.nan
            record[f"{arm}_sd"] = float(ys.std(ddof=1)) if ys.size > 1 else math.nan
        record["removal_effect"] = record["full_mean"] - record["removed_mean"]
        record["random_effect"] = record["full_mean"] - record["random_mean"]
        note = entry["note"]
        if note is None and not all(values[a].size for a in ARMS):
            note = "every submodel of an arm diverged"
        record["removal_note"] = note
        records.append(record)
    return pd.DataFrame(records, columns=REMOVAL_COLUMNS)


# -- the validate step ----------------------------------------------------------------------------
def _number(x) -> float | None:
    """JSON has no NaN: a missing figure is null."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _lds_summary(ame, unit_masks, p, Y, config) -> tuple[np.ndarray, list, float, float, float]:
    scores, notes = lds(ame, unit_masks, p, Y)
    mean = float(np.nanmean(scores)) if np.isfinite(scores).any() else math.nan
    low, high = lds_interval(
        ame, unit_masks, p, Y, config["validation"]["n_bootstrap"], config["sampling"]["seed"]
    )
    return scores, notes, mean, low, high


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
    scores, notes, mean, low, high = _lds_summary(estimates.ame, unit_masks, p, Y, config)
    curve = []
    for j, n_submodels in enumerate(prefixes.n_submodels):
        _, _, m, lo, hi = _lds_summary(prefixes.ame[j], unit_masks, p, Y, config)
        curve.append((int(n_submodels), m, lo, hi))
    curve.append((int(main_masks.budget), mean, low, high))
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
        "lds_within": p_groups(p)[1],
        "lds_mean": _number(mean),
        "lds_ci_low": _number(low),
        "lds_ci_high": _number(high),
        "lds_n_queries": int(np.isfinite(scores).sum()),
        "lds_note": None if math.isfinite(mean) else next(filter(None, notes), None),
        "removal_replicates": plan["replicates"],
    }
    done = arms[arms["removal_note"].isna()] if len(arms) else arms
    summary["n_removal_queries"] = int(len(done))
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
        (
            pd.DataFrame(curve, columns=["n_submodels", "lds_mean", "lds_ci_low", "lds_ci_high"]),
            curve_path,
        ),
        (predictions, predictions_path),
    ):
        with atomic_path(path, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(summary_path, summary)
    return summary


def load_plan(path) -> dict:
    """The removal plan written beside the arm masks (``plan_removal``)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise ArtifactError(f"{path}: file not found") from err
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: not a removal plan ({err})") from err
