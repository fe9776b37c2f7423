"""The estimate artifact: AMEs, standard errors and selections, as arrays and as a CSV table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ame.estimation.estimator import AMEEstimator
from ame.sampling import MaskSet
from ame.artifacts import atomic_path, atomic_savez, load_npz


def estimator_from_params(config: dict, **overrides) -> AMEEstimator:
    """The estimator the ``estimation`` params describe; ``overrides`` replace settings."""
    e = config["estimation"]
    settings = dict(
        lambda_rule=e["lambda_rule"],
        n_folds=e["n_folds"],
        n_lambdas=e["n_lambdas"],
        lambda_min_ratio=e["lambda_min_ratio"],
        knockoffs=e["knockoffs"],
        fdr=e["fdr"],
        knockoff_plus=e["knockoff_plus"],
        n_bootstrap=e["n_bootstrap"],
        random_state=e["random_state"],
    )
    return AMEEstimator(**{**settings, **overrides})


def selection(estimator: AMEEstimator, config: dict) -> np.ndarray:
    """Selected points per query: knockoff selection at the target FDR, else the LASSO support."""
    e = config["estimation"]
    if e["knockoffs"]:
        return estimator.select(fdr=e["fdr"], direction=e["direction"])
    sign = 1.0 if e["direction"] == "positive" else -1.0
    return sign * estimator.ame_ > 0


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

    @classmethod
    def from_estimator(
        cls, estimator: AMEEstimator, config: dict, names: list[str], masks: MaskSet
    ) -> Estimates:
        return cls(
            np.asarray(estimator.ame_),
            estimator.stderr_,
            selection(estimator, config),
            np.asarray(estimator.lambda_),
            names,
            estimator.semivalue_,
            masks.unit_ids,
            masks.unit,
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
        )

    def table(self) -> pd.DataFrame:
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
        frame["selected"] = self.selected.ravel()
        return frame

    def save(self, path: str | Path, scores_path: str | Path) -> None:
        arrays = {
            "ame": self.ame,
            "selected": self.selected,
            "lambdas": self.lambdas,
            "ids": self.ids,
            "meta": np.array(
                json.dumps({"names": self.names, "semivalue": self.semivalue, "unit": self.unit})
            ),
        }
        if self.stderr is not None:
            arrays["stderr"] = self.stderr
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
        )
