"""Behaviours: from a submodel's raw outputs on the query points to one number per query.

Submodels store raw logits on every query point, so a new behaviour is a new reduction of the
same files, never a retraining.
"""

from __future__ import annotations

import numpy as np

from ame.errors import UserError

KINDS = ("probability", "logit_margin", "log_probability", "raw")


def reduce_logits(
    logits: np.ndarray, classes: np.ndarray, kind: str, output: int = 0
) -> np.ndarray:
    """Behaviour of each query from outputs of shape (..., n_query_points, n_outputs): a function
    of the logits and the query's class, or (``raw``) output column ``output`` as it is (a loss,
    a regression prediction, a reward)."""
    if kind == "raw":
        if not 0 <= output < logits.shape[-1]:
            raise UserError(
                f"behaviour.output: {output} is not a column of outputs with "
                f"{logits.shape[-1]} columns"
            )
        return np.asarray(logits[..., output], dtype=np.float64)
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
    raise UserError(f"behaviour.kind: unknown kind {kind!r}; choose one of {KINDS}")


def query_names(n_queries: int, aggregate: bool, names: list[str] | None = None) -> list[str]:
    """Column names: the scenario's query names (a plug-in's) or query_0, query_1, ..."""
    own = names[:n_queries] if names else [f"query_{q}" for q in range(n_queries)]
    return own + (["aggregate"] if aggregate else [])


def query_points(n_queries: int, aggregate: bool) -> list[int]:
    """The query point behind each behaviour column; -1 for the aggregate over all of them."""
    return list(range(n_queries)) + ([-1] if aggregate else [])


def check_n_queries(n_queries: int, n_query_points: int) -> None:
    if n_queries > n_query_points:
        raise UserError(
            f"behaviour.n_queries: {n_queries} exceeds the {n_query_points} "
            "query points of the dataset"
        )


def behaviour_matrix(logits: np.ndarray, y_query: np.ndarray, settings: dict) -> np.ndarray:
    """Y of shape (n_subsets, n_queries [+ 1 aggregate]) from logits (n_subsets, Qp, C)."""
    per_point = reduce_logits(logits, y_query, settings["kind"], settings["output"])
    n_queries = settings["n_queries"]
    check_n_queries(n_queries, per_point.shape[1])
    columns = [per_point[:, :n_queries]]
    if settings["aggregate"]:
        columns.append(per_point.mean(axis=1, keepdims=True))
    Y = np.concatenate(columns, axis=1)
    if Y.shape[1] == 0:
        raise UserError("behaviour: no query selected (n_queries is 0 and aggregate is false)")
    return Y
