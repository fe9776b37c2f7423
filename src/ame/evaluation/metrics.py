"""Evaluation against ground truth (known poisons): precision, recall and top-k precision.

Ground truth enters here and only here, after estimation. The budget curve refits the estimator
on prefixes of the same sample (m/8, m/4, m/2, m): one experiment gives the whole curve.
Source-level experiments are scored against the sources holding a true point; a point-level
experiment restricted to some sources is scored against every true point (a poison in a source
that was not selected counts as missed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ame import provenance
from ame.behaviours import Behaviours
from ame.data import Dataset
from ame.results import Estimates, estimator_from_params
from ame.sampling import MaskSet
from ame.artifacts import atomic_path, atomic_write_json


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
    """Share of true points among the k highest-ranked points, k = number of true points."""
    k = len(truth)
    scores = ame if direction == "positive" else -ame
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.isin(top, truth).mean(axis=1)


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


def truth_and_size(dataset: Dataset, unit: str) -> tuple[np.ndarray | None, int]:
    """Ground truth in the id space of ``unit`` and the number of ids (points or sources)."""
    if unit == "source":
        return dataset.source_truth(), dataset.n_sources
    return dataset.ground_truth, dataset.n_points


def budget_curve(
    config: dict,
    masks: MaskSet,
    behaviours: Behaviours,
    estimates: Estimates,
    truth: np.ndarray,
    n_ids: int,
) -> pd.DataFrame:
    """Metrics averaged over queries at each budget prefix (the full budget reuses the estimate)."""
    direction = config["estimation"]["direction"]
    n_subsets = masks.budget
    rows = []
    for fraction in sorted(config["evaluation"]["budget_fractions"]):
        budget = max(2, round(fraction * n_subsets))
        if budget >= n_subsets:
            prefix_estimates = estimates.expanded(n_ids)
        else:
            keep = behaviours.subsets < budget
            # standard errors play no part in the curve: skip the bootstrap refits
            estimator = estimator_from_params(config, n_bootstrap=0).fit(
                masks.masks[behaviours.subsets[keep]],
                behaviours.p[keep],
                behaviours.Y[keep],
                design=masks.design,
            )
            prefix_estimates = Estimates.from_estimator(
                estimator, config, behaviours.names, masks
            ).expanded(n_ids)
        means = query_metrics(prefix_estimates, truth, direction).mean(numeric_only=True)
        rows.append({"fraction": fraction, "n_submodels": budget, **means.to_dict()})
    return pd.DataFrame(rows)


def evaluate(
    config: dict,
    dataset: Dataset,
    masks: MaskSet,
    behaviours: Behaviours,
    estimates: Estimates,
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
        "knockoff_plus": config["estimation"]["knockoff_plus"],
        "lambda_rule": config["estimation"]["lambda_rule"],
        "semivalue": estimates.semivalue,
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
        curve = budget_curve(config, masks, behaviours, estimates, truth, n_ids)
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
        curve = pd.DataFrame(
            columns=[
                "fraction",
                "n_submodels",
                "precision",
                "recall",
                "topk_precision",
                "n_selected",
            ]
        )
    for frame, path in ((per_query, per_query_path), (curve, curve_path)):
        with atomic_path(path, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    atomic_write_json(metrics_path, metrics)
    return metrics
