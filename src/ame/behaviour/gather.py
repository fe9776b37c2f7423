"""From stored submodel logits to the behaviour matrix Y (subsets x queries).

Submodels store raw logits on every query point, so a new behaviour is a new reduction of the
same files, never a retraining. Gathering checks every file's fingerprint against the current
masks and params and reads exactly the subsets of the current budget, nothing else.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ame import provenance
from ame.data import Dataset
from ame.sampling import MaskSet
from ame.artifacts import ArtifactError, atomic_savez, load_npz

log = logging.getLogger(__name__)
KINDS = ("probability", "logit_margin", "log_probability")


def reduce_logits(logits: np.ndarray, classes: np.ndarray, kind: str) -> np.ndarray:
    """Behaviour of each query from logits of shape (..., n_query_points, n_classes)."""
    import torch  # here, not at the top: the workflow imports this module at start-up

    z = torch.as_tensor(logits, dtype=torch.float64)
    idx = torch.as_tensor(classes).expand(z.shape[:-1]).unsqueeze(-1)
    if kind == "probability":
        return torch.softmax(z, -1).gather(-1, idx).squeeze(-1).numpy()
    if kind == "log_probability":
        return torch.log_softmax(z, -1).gather(-1, idx).squeeze(-1).numpy()
    if kind == "logit_margin":
        own = z.gather(-1, idx).squeeze(-1)
        rest = z.scatter(-1, idx, float("-inf")).amax(-1)
        return (own - rest).numpy()
    raise ValueError(f"behaviour.kind: unknown kind {kind!r}; choose one of {KINDS}")


def query_names(n_queries: int, aggregate: bool) -> list[str]:
    return [f"query_{q}" for q in range(n_queries)] + (["aggregate"] if aggregate else [])


def check_n_queries(n_queries: int, n_query_points: int) -> None:
    if n_queries > n_query_points:
        raise ValueError(
            f"behaviour.n_queries: {n_queries} exceeds the {n_query_points} "
            "query points of the dataset"
        )


def n_query_points(config: dict) -> int:
    """Query points of the configured dataset, known before it is prepared (start-up check)."""
    from ame import data

    d = config["dataset"]
    if d["name"] == "npz":
        return data._npz_header_shape(Path(d["path"]), "X_query")[0]
    if d["name"] == "cifar10":
        from ame import cifar

        return cifar.N_QUERIES
    return len(data.build(config).y_query)


def behaviour_matrix(logits: np.ndarray, y_query: np.ndarray, settings: dict) -> np.ndarray:
    """Y of shape (n_subsets, n_queries [+ 1 aggregate]) from logits (n_subsets, Qp, C)."""
    per_point = reduce_logits(logits, y_query, settings["kind"])
    n_queries = settings["n_queries"]
    check_n_queries(n_queries, per_point.shape[1])
    columns = [per_point[:, :n_queries]]
    if settings["aggregate"]:
        columns.append(per_point.mean(axis=1, keepdims=True))
    Y = np.concatenate(columns, axis=1)
    if Y.shape[1] == 0:
        raise ValueError("behaviour: no query selected (n_queries is 0 and aggregate is false)")
    return Y


@dataclass
class Behaviours:
    """The regression data of one run: which subsets, their p, and the behaviour matrix."""

    subsets: np.ndarray  # int64 (n_rows,): subset index of each row
    p: np.ndarray  # (n_rows,)
    Y: np.ndarray  # (n_rows, n_queries)
    names: list[str]
    excluded: list[int]

    def save(self, path: str | Path) -> None:
        atomic_savez(
            path,
            subsets=self.subsets,
            p=self.p,
            Y=self.Y,
            meta=np.array(json.dumps({"names": self.names, "excluded": self.excluded})),
        )

    @classmethod
    def load(cls, path: str | Path) -> Behaviours:
        a = load_npz(path, required=("subsets", "p", "Y", "meta"))
        meta = json.loads(str(a["meta"]))
        return cls(a["subsets"], a["p"], a["Y"], meta["names"], meta["excluded"])


def gather(config: dict, dataset: Dataset, masks: MaskSet, submodel_dir: str | Path) -> Behaviours:
    """Read the submodels of the masks' budget, verify their fingerprints, and build Y.

    Diverged submodels (non-finite outputs after a retry) are excluded and listed.
    """
    from ame.train import submodel_path  # imports torch

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
        path = submodel_path(submodel_dir, index)
        try:
            arrays = load_npz(path, required=("logits", "fingerprint"))
        except ArtifactError as err:
            raise ArtifactError(f"subset {index}: {err}") from err
        try:
            recorded = json.loads(str(arrays["fingerprint"]))
        except json.JSONDecodeError:
            recorded = None
        if not isinstance(recorded, dict):
            raise ArtifactError(f"subset {index} ({path}): unreadable fingerprint")
        expected = provenance.submodel_fingerprint(config, dataset_fp, masks, index)
        problem = provenance.mismatch(recorded, expected)
        if problem:
            raise ArtifactError(f"subset {index} ({path}): fingerprint mismatch: {problem}")
        if arrays["logits"].shape != expected_shape:
            raise ArtifactError(
                f"subset {index} ({path}): logits of shape "
                f"{arrays['logits'].shape}, expected {expected_shape}"
            )
        if recorded.get("status") != "ok":
            log.warning("subset %d excluded: %s", index, recorded.get("status"))
            excluded.append(index)
            continue
        logits.append(arrays["logits"])
        kept.append(index)
    if not kept:
        raise ArtifactError("every submodel diverged: nothing to estimate")
    kept = np.asarray(kept, dtype=np.int64)
    Y = behaviour_matrix(np.stack(logits), dataset.y_query, config["behaviour"])
    return Behaviours(
        kept,
        masks.p[kept],
        Y,
        query_names(config["behaviour"]["n_queries"], config["behaviour"]["aggregate"]),
        excluded,
    )
