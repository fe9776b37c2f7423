"""The user's training function, as the one-call API sees it: how a cache knows it, whether it
takes a seed, and one call of it in a worker, whose failure names the subset."""

from __future__ import annotations

import hashlib
import inspect

import numpy as np

from ame.errors import UserError


class TrainFunctionError(UserError):
    """``train_fn`` raised, or returned something that is not one behaviour per query."""


def function_identity(train_fn, function_id: str | None) -> str:
    """How a cache knows the function: the name and version the caller gives, else a hash of
    its source code (where Python can read it)."""
    if function_id is not None:
        return f"id:{function_id}"
    try:
        source = inspect.getsource(train_fn)
    except (OSError, TypeError) as err:
        raise UserError(
            f"function_id: the source of train_fn cannot be read ({err}); name it, e.g. "
            "function_id='my_model-v1', to use a cache"
        ) from err
    return "source:" + hashlib.sha256(source.encode()).hexdigest()[:16]


def takes_seed(train_fn) -> bool:
    """``train_fn(indices, seed)`` gets the run plan's training seed; ``train_fn(indices)`` not."""
    try:
        parameters = list(inspect.signature(train_fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


def call(train_fn, with_seed: bool, pairs: bool, index: int, indices: np.ndarray, seed: int):
    """One evaluation, in a worker: (index, behaviours or None, own-label scores or None, the
    error's text or None); ``pairs``: ``train_fn`` returns (behaviours, own-label scores)."""
    try:
        value = train_fn(indices, seed) if with_seed else train_fn(indices)
        own = None
        if pairs:
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise TypeError(
                    "with mislabels=True train_fn returns a pair (behaviours, own-label "
                    "scores of the training points then the calibration points), got "
                    f"{type(value).__name__}"
                )
            value, own = value
            own = np.asarray(own, dtype=np.float64).reshape(-1)
        return index, np.asarray(value, dtype=np.float64).reshape(-1), own, None
    except Exception as err:  # the user's code: report it with the subset, keep the others
        return index, None, None, f"{type(err).__name__}: {err}"
