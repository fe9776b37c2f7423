"""The validate step: evidence without ground truth, from the run's own models, in one summary.

Two checks: the held-out LDS (``ame.evaluation.lds``) and counterfactual retraining
(``ame.evaluation.removal``). A check that cannot be computed (too few validation submodels for
a correlation, a behaviour or a prediction constant on them, a removal that would leave an empty
or single-class training set) is recorded as NaN (``null`` in JSON) with its reason; the report
goes on.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ame.artifacts import ArtifactError, atomic_path, atomic_write_json
from ame.evaluation.lds import lds, lds_interval, mean_over_queries, p_groups, predict
from ame.evaluation.removal import removal_table
from ame.sampling import MaskSet


def _number(x) -> float | None:
    """JSON has no NaN: a missing figure is null."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _lds_summary(ame, unit_masks, p, Y, design) -> tuple[np.ndarray, list, float, float, float]:
    scores, notes = lds(ame, unit_masks, p, Y, design)
    low, high = lds_interval(ame, unit_masks, p, Y, design)
    return scores, notes, mean_over_queries(scores), low, high


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
    if not np.array_equal(masks.column_ids, estimates.ids) or masks.unit != estimates.unit:
        raise ArtifactError(
            f"validation masks cover {len(masks.column_ids)} {masks.unit}s, the estimates "
            f"{len(estimates.ids)} {estimates.unit}s: they belong to different experiments"
        )
    unit_masks = masks.column_masks(behaviours.subsets)
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
