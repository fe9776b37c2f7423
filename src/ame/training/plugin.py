"""A plug-in's ``train`` (``ame.data.plugin``) behind the trainer interface of
``ame.training.jobs``.

The plug-in's outputs are checked against its description before anything is written: an output
of the wrong shape or type stops the job with one line naming the plug-in and the subset. A
plug-in that describes ``training_outputs`` returns a pair, query outputs and training-point
outputs; the second is kept when ``training.training_points`` asks for it.
"""

from __future__ import annotations

import numpy as np

from ame.data import Dataset
from ame.data.plugin import PluginError, load


class TrainingRaised(Exception):
    """The plug-in's own code raised while training ``subset`` (retried once, then reported)."""

    def __init__(self, subset: int, error: BaseException):
        super().__init__(f"subset {subset}: {type(error).__name__}: {error}")
        self.subset = subset
        self.error = error


CHUNK = 100  # subsets handed to train_batch at once (their files are written after each call)


class PluginTrainer:
    """Calls the plug-in's ``train_batch`` (when it has one) or ``train`` for each subset."""

    def __init__(self, dataset: Dataset, options, device: str, training_points: bool = False):
        self.spec = dataset.meta["plugin"]
        self.module = load(self.spec)
        self.options = options
        self.device = device
        self.output_shape = (len(dataset.y_query), int(dataset.meta["n_outputs"]))
        self.pairs = bool(dataset.meta.get("training_outputs", False))
        self.training_shape = (dataset.n_points, int(dataset.meta["n_outputs"]))
        self.training_points = training_points
        self.batched = callable(getattr(self.module, "train_batch", None))
        self.chunk = CHUNK if self.batched else 1

    def fit(self, rows: list[np.ndarray], seeds: list[int], subsets: list[int]) -> list:
        if self.batched:
            try:
                outputs = list(self.module.train_batch(rows, seeds, self.device, self.options))
            except Exception as err:
                raise TrainingRaised(subsets[0], err) from err
            if len(outputs) != len(rows):
                raise PluginError(
                    f"plugin {self.spec}: train_batch returned {len(outputs)} outputs for "
                    f"{len(rows)} subsets (subsets {subsets[0]}..{subsets[-1]})"
                )
        else:
            outputs = []
            for r, s, subset in zip(rows, seeds, subsets, strict=True):
                try:
                    outputs.append(self.module.train(r, s, self.device, self.options))
                except Exception as err:
                    raise TrainingRaised(subset, err) from err
        return [self.split(out, i) for out, i in zip(outputs, subsets, strict=True)]

    def split(self, returned, subset: int) -> tuple:
        """(query outputs, no weights, training-point outputs or None), checked."""
        if not self.pairs:
            return self.check(returned, subset, self.output_shape, "queries"), None, None
        if not isinstance(returned, tuple | list) or len(returned) != 2:
            raise PluginError(
                f"plugin {self.spec}: train returned {type(returned).__name__} for subset "
                f"{subset}; describe() says training_outputs, so it returns a pair (query "
                "outputs, training-point outputs)"
            )
        queries = self.check(returned[0], subset, self.output_shape, "queries")
        if not self.training_points:
            return queries, None, None
        return queries, None, self.check(returned[1], subset, self.training_shape, "points")

    def check(self, outputs, subset: int, shape: tuple, rows: str) -> np.ndarray:
        """The outputs as float32 of the described ``shape``, or a one-line error."""
        array = np.asarray(outputs)
        if array.dtype.kind not in "fiub":
            raise PluginError(
                f"plugin {self.spec}: train returned {array.dtype} outputs for subset {subset}; "
                f"expected numbers of shape {shape}"
            )
        if array.shape != shape:
            raise PluginError(
                f"plugin {self.spec}: train returned outputs of shape {array.shape} for subset "
                f"{subset}; expected {shape} ({rows} x n_outputs)"
            )
        return array.astype(np.float32)
