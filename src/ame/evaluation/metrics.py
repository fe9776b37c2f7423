"""Evaluation against ground truth (known poisons): precision, recall and top-k precision.

Ground truth enters here and only here, after estimation. The budget curve scores the estimates
that the estimate step refitted on prefixes of the same sample (m/8, m/4, m/2, m): one experiment
gives the whole curve. Nothing here fits anything.
Source-level experiments are scored against the sources holding a true point; a point-level
experiment restricted to some sources is scored against every true point (a poison in a source
that was not selected counts as missed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ame.artifacts import atomic_path, atomic_write_json
from ame.behaviour.gather import Behaviours
from ame.data import Dataset
from ame.estimation.results import Estimates, PrefixEstimates
from ame.pipeline import provenance
from ame.sampling import MaskSet

CURVE_COLUMNS = ["n_submodels", "precision", "recall", "topk_precision", "n_selected", "note"]


def selection_scores(selected: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-query precision and recall of boolean selections (Q, N) against true indices.

    An empty selection has precision 1 (no false discovery, the FDR convention) and recall 0.
    """
    is_true = np.zeros(selected.shape[1], dtype=bool)
    is_true[truth] = True
    hits = (selected & is_true).sum(axis=1)
    n_selected = selected.sum(axis=1)
    precision = np.where(n_selected > 0, hits / np.maximum(n_selected, 1), 1.0)
    recall = hits / max(len(truth), 1)
    return precision, recall


def topk_precision(ame: np.ndarray, truth: np.ndarray, direction: str = "positive") -> np.ndarray:
    """Share of true points among the k highest-ranked points, k = number of true points.

    Only AMEs pointing in ``direction`` rank a point: a slot filled by a zero (or NaN) AME is a
    miss, so that ties at zero, broken by index order, cannot score.
    """
    k = len(truth)
    signed = np.nan_to_num(ame if direction == "positive" else -ame, nan=0.0)
    top = np.argsort(-signed, axis=1, kind="stable")[:, :k]
    ranked = np.take_along_axis(signed, top, axis=1) > 0
    return (np.isin(top, truth) & ranked).sum(axis=1) / k


def query_metrics(estimates: Estimates, truth: np.ndarray, direction: str) -> pd.DataFrame:
    precision, recall = selection_scores(estimates.selected, truth)
    return pd.DataFrame(
        {
            "query": estimates.names,
            "precision": precision,
            "recall": recall,
            "topk_precision": topk_precision(estimates.ame, truth, direction),
            "n_selected": estimates.selected.sum(axis=1),
        }
    )


def flag_counts(estimates: Estimates) -> dict:
    """How many queries (or points) the fit flagged: estimates not to be trusted as they stand."""
    f, inference = estimates.flags, estimates.inference
    counts = {
        "n_degenerate_queries": f.get("degenerate"),
        "n_truncated_queries": f.get("path_truncated"),
        "n_queries_lambda_at_path_end": f.get("lambda_at_path_end"),
        "n_queries_knockoffs_cannot_select": None
        if "knockoff_can_select" not in f
        else ~f["knockoff_can_select"],
        "n_outlier_behaviours": f.get("n_outliers"),
        "n_unidentifiable_points": inference.get("unidentifiable"),
    }
    return {k: None if v is None else int(np.sum(v)) for k, v in counts.items()}


def truth_and_size(dataset: Dataset, unit: str) -> tuple[np.ndarray | None, int]:
    """Ground truth in the id space of ``unit`` and the number of ids (points or sources)."""
    if unit == "source":
        return dataset.source_truth(), dataset.n_sources
    return dataset.ground_truth, dataset.n_points


def budget_curve(
    estimates: Estimates,
    prefixes: PrefixEstimates,
    n_submodels: int,
    truth: np.ndarray,
    n_ids: int,
    direction: str,
) -> pd.DataFrame:
    """Metrics averaged over queries at each budget prefix, then at the full budget; a prefix the
    estimator refused is a row of NaN with its reason."""
    stages = [
        (int(n), prefixes.at(j, estimates.semivalue), prefixes.notes[j])
        for j, n in enumerate(prefixes.n_submodels)
    ]
    rows = []
    for budget, prefix, note in [*stages, (n_submodels, estimates, None)]:
        if note is not None:
            rows.append({"n_submodels": budget, "note": note})
            continue
        means = query_metrics(prefix.expanded(n_ids), truth, direction).mean(numeric_only=True)
        rows.append({"n_submodels": budget, **means.to_dict(), "note": None})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def evaluate(
    config: dict,
    dataset: Dataset,
    masks: MaskSet,
    behaviours: Behaviours,
    estimates: Estimates,
    prefixes: PrefixEstimates,
    metrics_path,
    curve_path,
    per_query_path,
) -> dict:
    """Write metrics.json (flat), the budget curve and per-query metrics; return the metrics."""
    direction = config["estimation"]["direction"]
    truth, n_ids = truth_and_size(dataset, estimates.unit)
    metrics = {
        "n_submodels": int(len(behaviours.subsets)),
        "n_excluded": len(behaviours.excluded),
        "n_points": dataset.n_points,
        "unit": estimates.unit,
        "n_units": n_ids,
        "n_units_studied": len(estimates.ids),
        "n_queries": len(estimates.names),
        "fdr_target": config["estimation"]["fdr"],
        "knockoffs": config["estimation"]["knockoffs"],
        "knockoff_plus": config["estimation"]["knockoff_plus"],
        "lambda_rule": config["estimation"]["lambda_rule"],
        "semivalue": estimates.semivalue,
        "estimand": estimates.estimand,  # ame.estimation.results.ESTIMANDS
        "n_selected": float(estimates.selected.sum(axis=1).mean()),
        "run_fingerprint": provenance.run_fingerprint(
            config, dataset.fingerprint(), masks, masks.budget
        ),
        "precision": None,
        "recall": None,
        "topk_precision": None,
    }
    if truth is not None and len(truth):
        per_query = query_metrics(estimates.expanded(n_ids), truth, direction)
        curve = budget_curve(estimates, prefixes, masks.budget, truth, n_ids, direction)
        metrics.update(
            {
                key: round(float(per_query[key].mean()), 6)
                for key in ("precision", "recall", "topk_precision")
            }
        )
        metrics["n_true"] = int(len(truth))
    else:
        per_query = pd.DataFrame(
            {"query": estimates.names, "n_selected": estimates.selected.sum(axis=1)}
        )
        curve = pd.DataFrame(columns=CURVE_COLUMNS)
    for name, values in estimates.flags.items():  # the fit's own warnings, per query
        per_query[name] = values
    metrics.update(flag_counts(estimates))
    for frame, path in ((per_query, per_query_path), (curve, curve_path)):
        with atomic_path(path, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(metrics_path, metrics)
    return metrics
