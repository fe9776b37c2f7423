"""The estimate artifacts: AMEs, standard errors and selections, as arrays and as a CSV table,
and the same estimates refitted on prefixes of the budget (the budget curve's raw material).

Reading the artifacts needs numpy only: the estimator (torch) and pandas are imported where they
are used, so the verbs that only read estimates (sample, removal, evaluate, validate, report) do
not pay for torch at start-up, once per job."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ame.artifacts import atomic_path, atomic_savez, load_npz
from ame.devices import resolve_device
from ame.errors import UserError
from ame.sampling import MaskSet

if TYPE_CHECKING:
    import pandas as pd

    from ame.estimation.estimator import AMEEstimator


def estimator_from_params(config: dict, **overrides) -> AMEEstimator:
    """The estimator the ``estimation`` params describe; ``overrides`` replace settings."""
    from ame.estimation.estimator import AMEEstimator

    e = config["estimation"]
    settings = dict(
        lambda_rule=e["lambda_rule"],
        n_folds=e["n_folds"],
        n_lambdas=e["n_lambdas"],
        lambda_min_ratio=e["lambda_min_ratio"],
        knockoffs=e["knockoffs"],
        fdr=e["fdr"],
        knockoff_plus=e["knockoff_plus"],
        selection_rule="bh" if e["selection"] == "bh" else "knockoff",
        ci_level=e["ci_level"],
        robust=None if e["robust"] == "none" else e["robust"],
        n_bootstrap=e["n_bootstrap"],
        random_state=e["random_state"],
        max_active=e["max_active"],
        patience=e["patience"],
        tol=e["tol"],
        device=resolve_device(e["device"], "estimation.device"),
    )
    return AMEEstimator(**{**settings, **overrides})


def selection(estimator: AMEEstimator, config: dict) -> np.ndarray:
    """Selected points per query: the knockoff filter or Benjamini-Hochberg at the target FDR,
    or (``support``) every point with a non-zero AME in the direction, without FDR control."""
    e = config["estimation"]
    if e["selection"] == "support":
        sign = 1.0 if e["direction"] == "positive" else -1.0
        return np.nan_to_num(sign * estimator.ame_) > 0
    return estimator.select(fdr=e["fdr"], direction=e["direction"])


#: Per-query diagnostics of the fit, carried into the estimates, metrics and report: a flagged
#: query's estimate is not to be trusted as it stands (docs/explanation/trust.md).
QUERY_FLAGS = ("degenerate", "path_truncated", "lambda_at_path_end", "n_outliers", "n_steps")
#: Per-point inference of the debiased estimate (intervals at ``estimation.ci_level``).
INFERENCE = ("ame_debiased", "ame_se", "ci_low", "ci_high", "pvalues")


#: What an AME averages over, by how the experiment treated the points it does not estimate.
ESTIMANDS = {
    "design": "the marginal effect averaged over subsets of every other point drawn by the "
    "design (sampled with the subset's p)",
    "others_in": "the marginal effect averaged over subsets of the studied units, every other "
    "point in (a hierarchy's selected sources, a second stage's non-candidates)",
}


def estimand_of(masks: MaskSet) -> str:
    """``others_in`` where some points are in every subset by construction, else ``design``."""
    return "others_in" if masks.units is not None and (masks.units < 0).any() else "design"


def fit_diagnostics(estimator: AMEEstimator, config: dict) -> tuple[dict, dict]:
    """(per-query flags, per-point inference and per-p arrays) of a fitted estimator."""
    e = config["estimation"]
    flags = {name: np.asarray(getattr(estimator, f"{name}_")) for name in QUERY_FLAGS}
    if e["selection"] == "knockoff":
        flags["knockoff_can_select"] = estimator.knockoff_can_select(e["fdr"], e["direction"])
    inference = {name: np.asarray(getattr(estimator, f"{name}_")) for name in INFERENCE}
    inference["unidentifiable"] = np.asarray(estimator.unidentifiable_)
    if estimator.p_grid_ is not None:
        inference["p_grid"] = np.asarray(estimator.p_grid_)
        for name in ("ame_per_p", "ame_per_p_se", "ame_per_p_ci_low", "ame_per_p_ci_high"):
            inference[name] = np.asarray(getattr(estimator, f"{name}_"))
    return flags, inference


@dataclass
class Estimates:
    """AMEs of shape (n_queries, n_units) in the behaviour's units, with their selections.

    A unit is a training point or a source (``unit``); ``ids`` names the point or source of each
    column (a restricted experiment studies only some of them).
    """

    ame: np.ndarray
    stderr: np.ndarray | None
    selected: np.ndarray
    lambdas: np.ndarray
    names: list[str]
    semivalue: str
    ids: np.ndarray
    unit: str = "point"
    points: list[int] | None = None  # query point of each query, -1 for the aggregate
    flags: dict = field(default_factory=dict)  # QUERY_FLAGS, shape (n_queries,)
    inference: dict = field(default_factory=dict)  # INFERENCE, (n_queries, n_units); per p
    estimand: str = "design"  # ESTIMANDS: what the AME averages over

    @classmethod
    def from_estimator(
        cls, estimator: AMEEstimator, config: dict, behaviours, masks: MaskSet
    ) -> Estimates:
        """The estimates of a fit on the regression columns of ``masks``."""
        flags, inference = fit_diagnostics(estimator, config)
        return cls(
            np.asarray(estimator.ame_),
            estimator.stderr_,
            selection(estimator, config),
            np.asarray(estimator.lambda_),
            behaviours.names,
            estimator.semivalue_,
            masks.column_ids,
            masks.unit,
            behaviours.points,
            flags,
            inference,
            estimand_of(masks),
        )

    def expanded(self, n_ids: int) -> Estimates:
        """The same estimates over every id 0..n_ids-1: AME 0 and unselected where unstudied."""
        ame = np.zeros((len(self.names), n_ids))
        selected = np.zeros((len(self.names), n_ids), dtype=bool)
        ame[:, self.ids], selected[:, self.ids] = self.ame, self.selected
        stderr = None
        if self.stderr is not None:
            stderr = np.zeros_like(ame)
            stderr[:, self.ids] = self.stderr
        return Estimates(
            ame,
            stderr,
            selected,
            self.lambdas,
            self.names,
            self.semivalue,
            np.arange(n_ids),
            self.unit,
            self.points,
            estimand=self.estimand,
        )

    def ranking(self, direction: str) -> list[np.ndarray]:
        """Per query, the columns whose AME points in ``direction`` (> 0 for "positive", < 0 for
        "negative"), strongest first. Zero and NaN AMEs are not ranked: a tie at zero says
        nothing about a point."""
        signed = np.nan_to_num(self.ame if direction == "positive" else -self.ame, nan=0.0)
        order = np.argsort(-signed, axis=1, kind="stable")
        return [row[signed[q, row] > 0] for q, row in enumerate(order)]

    def table(self) -> pd.DataFrame:
        import pandas as pd

        n_queries, n_units = self.ame.shape
        frame = pd.DataFrame(
            {
                "query": np.repeat(self.names, n_units),
                self.unit: np.tile(self.ids, n_queries),
                "ame": self.ame.ravel(),
            }
        )
        if self.stderr is not None:
            frame["stderr"] = self.stderr.ravel()
        for name in INFERENCE:
            if name in self.inference:
                frame[name] = self.inference[name].ravel()
        for p, values in zip(
            self.inference.get("p_grid", []), self.inference.get("ame_per_p", []), strict=True
        ):
            frame[f"ame_at_p{p:g}"] = values.ravel()
        frame["selected"] = self.selected.ravel()
        return frame

    def save(self, path: str | Path, scores_path: str | Path) -> None:
        arrays = {
            "ame": self.ame,
            "selected": self.selected,
            "lambdas": self.lambdas,
            "ids": self.ids,
            "meta": np.array(
                json.dumps(
                    {
                        "names": self.names,
                        "semivalue": self.semivalue,
                        "unit": self.unit,
                        "points": self.points,
                        "estimand": self.estimand,
                    }
                )
            ),
        }
        if self.stderr is not None:
            arrays["stderr"] = self.stderr
        arrays.update({f"flag_{k}": v for k, v in self.flags.items()})
        arrays.update({f"inference_{k}": v for k, v in self.inference.items()})
        with atomic_path(scores_path, suffix=".csv") as tmp:
            self.table().to_csv(tmp, index=False, float_format="%.8g")
        atomic_savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Estimates:
        a = load_npz(path, required=("ame", "selected", "lambdas", "ids", "meta"))
        meta = json.loads(str(a["meta"]))
        return cls(
            a["ame"],
            a.get("stderr"),
            a["selected"],
            a["lambdas"],
            meta["names"],
            meta["semivalue"],
            a["ids"],
            meta["unit"],
            meta.get("points"),
            {k[5:]: v for k, v in a.items() if k.startswith("flag_")},
            {k[10:]: v for k, v in a.items() if k.startswith("inference_")},
            meta.get("estimand", "design"),
        )


def prefix_sizes(fractions, budget: int) -> list[int]:
    """Budget prefixes (at least 2 subsets each) of ``estimation.budget_fractions``."""
    return sorted({max(2, round(f * budget)) for f in fractions if round(f * budget) < budget})


@dataclass
class PrefixEstimates:
    """Estimates refitted on the first ``n_submodels[j]`` subsets of the same experiment: one
    sample gives the whole precision/recall (or LDS) curve against the budget. The full budget
    is the main estimate itself and is not repeated here. A prefix the estimator refuses (too few
    rows for its folds or p buckets) stays in the curve as a row of NaN with its ``notes``."""

    n_submodels: np.ndarray  # int64 (n_prefixes,): the prefix budgets
    n_rows: np.ndarray  # int64 (n_prefixes,): rows used (prefix less excluded submodels)
    ame: np.ndarray  # float32 (n_prefixes, n_queries, n_units); NaN for a refused prefix
    selected: np.ndarray  # bool (n_prefixes, n_queries, n_units)
    ids: np.ndarray
    names: list[str]
    unit: str
    notes: list[str | None] = field(default_factory=list)  # why a prefix was not estimated

    def __post_init__(self):
        if not self.notes:
            self.notes = [None] * len(self.n_submodels)

    @classmethod
    def fit(cls, config: dict, masks: MaskSet, behaviours) -> PrefixEstimates:
        """Refit at every prefix; standard errors play no part in a curve: no bootstrap."""
        sizes = prefix_sizes(config["estimation"]["budget_fractions"], masks.budget)
        shape = (len(sizes), len(behaviours.names), len(masks.column_ids))
        ame = np.full(shape, np.nan, dtype=np.float32)
        selected = np.zeros(shape, dtype=bool)
        rows, notes = [], []
        for j, budget in enumerate(sizes):
            keep = behaviours.subsets < budget
            rows.append(int(keep.sum()))
            try:
                estimator = estimator_from_params(config, n_bootstrap=0).fit(
                    masks.column_masks(behaviours.subsets[keep]),
                    behaviours.p[keep],
                    behaviours.Y[keep],
                    design=masks.design,
                    subset_index=behaviours.subsets[keep],
                )
            except UserError as err:  # too few rows for this prefix: said in the curve
                notes.append(f"not estimated: {err}")
                continue
            ame[j] = estimator.ame_
            selected[j] = selection(estimator, config)
            notes.append(None)
        return cls(
            np.asarray(sizes, dtype=np.int64),
            np.asarray(rows, dtype=np.int64),
            ame,
            selected,
            masks.column_ids,
            behaviours.names,
            masks.unit,
            notes,
        )

    def at(self, j: int, semivalue: str) -> Estimates:
        """Prefix ``j`` as an :class:`Estimates` (without standard errors)."""
        return Estimates(
            self.ame[j].astype(float),
            None,
            self.selected[j],
            np.zeros(len(self.names)),
            self.names,
            semivalue,
            self.ids,
            self.unit,
        )

    def save(self, path: str | Path) -> None:
        atomic_savez(
            path,
            n_submodels=self.n_submodels,
            n_rows=self.n_rows,
            ame=self.ame,
            selected=self.selected,
            ids=self.ids,
            meta=np.array(
                json.dumps({"names": self.names, "unit": self.unit, "notes": self.notes})
            ),
        )

    @classmethod
    def load(cls, path: str | Path) -> PrefixEstimates:
        a = load_npz(path, required=("n_submodels", "n_rows", "ame", "selected", "ids", "meta"))
        meta = json.loads(str(a["meta"]))
        return cls(
            a["n_submodels"],
            a["n_rows"],
            a["ame"],
            a["selected"],
            a["ids"],
            meta["names"],
            meta["unit"],
            meta.get("notes", []),
        )
