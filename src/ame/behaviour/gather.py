"""The gather step: stored submodel outputs to the behaviour matrix Y (subsets x queries).

Gathering checks every file's fingerprint against the current masks and params (through the
submodel store) and reads exactly the subsets of the current budget, nothing else. With
``training.training_points`` it also reduces each submodel's outputs on the training points to
the probability of each point's own label (:class:`TrainingPoints`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ame.artifacts import ArtifactError, atomic_savez, load_npz
from ame.behaviour.kinds import behaviour_matrix, query_names, query_points, reduce_logits
from ame.data import Dataset
from ame.pipeline import provenance
from ame.pipeline.submodels import SubmodelStore
from ame.sampling import MaskSet

log = logging.getLogger(__name__)


@dataclass
class Behaviours:
    """The regression data of one run: which subsets, their p, and the behaviour matrix."""

    subsets: np.ndarray  # int64 (n_rows,): subset index of each row
    p: np.ndarray  # (n_rows,)
    Y: np.ndarray  # (n_rows, n_queries)
    names: list[str]
    excluded: list[int]
    points: list[int]  # query point of each column, -1 for the aggregate

    def save(self, path: str | Path) -> None:
        atomic_savez(
            path,
            subsets=self.subsets,
            p=self.p,
            Y=self.Y,
            meta=np.array(
                json.dumps({"names": self.names, "excluded": self.excluded, "points": self.points})
            ),
        )

    @classmethod
    def load(cls, path: str | Path) -> Behaviours:
        a = load_npz(path, required=("subsets", "p", "Y", "meta"))
        meta = json.loads(str(a["meta"]))
        return cls(a["subsets"], a["p"], a["Y"], meta["names"], meta["excluded"], meta["points"])


def gather(config: dict, dataset: Dataset, masks: MaskSet, store: SubmodelStore) -> Behaviours:
    """Read the submodels of the masks' budget, verify their fingerprints, and build Y.

    Diverged submodels (non-finite outputs after a retry) are excluded and listed.
    """
    if masks.n_points != dataset.n_points:
        raise ArtifactError(
            f"mask artifact covers {masks.n_points} points but the dataset has {dataset.n_points}"
        )
    n_subsets = masks.budget
    if masks.n_subsets < n_subsets:
        raise ArtifactError(
            f"mask artifact holds {masks.n_subsets} subsets, the budget needs {n_subsets}"
        )
    dataset_fp = dataset.fingerprint()
    expected_shape = (len(dataset.y_query), dataset.n_classes)
    logits, kept, excluded = [], [], []
    for index in range(n_subsets):
        expected = provenance.submodel_fingerprint(config, dataset_fp, masks, index)
        outputs, recorded = store.read(index, expected, expected_shape)
        if recorded.get("status") != "ok":
            log.warning("subset %d excluded: %s", index, recorded.get("status"))
            excluded.append(index)
            continue
        logits.append(outputs)
        kept.append(index)
    if not kept:
        raise ArtifactError("every submodel diverged: nothing to estimate")
    kept = np.asarray(kept, dtype=np.int64)
    b = config["behaviour"]
    Y = behaviour_matrix(np.stack(logits), dataset.y_query, b)
    return Behaviours(
        kept,
        masks.p[kept],
        Y,
        query_names(b["n_queries"], b["aggregate"], dataset.meta.get("query_names")),
        excluded,
        query_points(b["n_queries"], b["aggregate"]),
    )


@dataclass
class TrainingPoints:
    """Per kept submodel (row): the probability it gives each training point's own label, and
    each query point's class: the out-of-subset values of the training points, and of the
    calibration points when the queries are held-out labelled points
    (``ame.estimation.mislabel``)."""

    subsets: np.ndarray  # int64 (n_rows,): subset index of each row
    own: np.ndarray  # (n_rows, n_points)
    queries: np.ndarray  # (n_rows, n_query_points)

    def save(self, path: str | Path) -> None:
        atomic_savez(path, subsets=self.subsets, own=self.own, queries=self.queries)

    @classmethod
    def load(cls, path: str | Path) -> TrainingPoints:
        a = load_npz(path, required=("subsets", "own", "queries"))
        return cls(a["subsets"], a["own"], a["queries"])


def gather_training_points(
    dataset: Dataset, store: SubmodelStore, subsets: np.ndarray
) -> TrainingPoints:
    """The own-label probabilities of the ``subsets`` gather kept (their fingerprints checked
    there), from their files' outputs on the training and the query points."""
    if (dataset.y_train < 0).any():
        raise ArtifactError(
            "training.training_points: the dataset gives no label for some training points"
        )
    on_training, on_queries = zip(
        *(store.read_training_points(int(i), dataset.n_points) for i in subsets), strict=True
    )
    own = reduce_logits(np.stack(on_training), dataset.y_train, "probability")
    queries = reduce_logits(np.stack(on_queries), dataset.y_query, "probability")
    return TrainingPoints(subsets, own.astype(np.float32), queries.astype(np.float32))
