"""The built-in models (linear, mlp, resnet9) behind the trainer interface of ``ame.training.jobs``.

The data are the prepared dataset's arrays, kept on the training device for the whole job.
"""

from __future__ import annotations

import numpy as np
import torch

from ame.data import Dataset
from ame.training import vectorized
from ame.training.fit import configure_backends, fit_submodel, predict


class BuiltinTrainer:
    """Trains ``training.model`` on subsets of a prepared dataset; outputs are query logits."""

    def __init__(self, dataset: Dataset, settings: dict, device: torch.device):
        configure_backends(settings, device)
        self.settings = settings
        self.n_classes = dataset.n_classes
        self.X = torch.as_tensor(dataset.X_train, device=device)
        self.y = torch.as_tensor(dataset.y_train, device=device)
        self.X_query = torch.as_tensor(dataset.X_query, device=device)
        self.chunk = vectorized.CHUNK if settings["vectorize"] else 1
        self.output_shape = (len(dataset.y_query), dataset.n_classes)

    def fit(
        self, rows: list[np.ndarray], seeds: list[int], subsets: list[int]
    ) -> list[tuple[np.ndarray, dict | None, None]]:
        """(query logits, weights to keep or None, no training-point outputs: only a plug-in
        whose queries are held-out labelled points gives those) of one submodel per subset."""
        row_sets = [torch.as_tensor(r, device=self.X.device) for r in rows]
        if self.settings["vectorize"]:
            models = vectorized.fit_submodels(
                self.X, self.y, row_sets, self.n_classes, self.settings, seeds
            )
        else:
            models = [
                fit_submodel(self.X, self.y, r, self.n_classes, self.settings, seed)
                for r, seed in zip(row_sets, seeds, strict=True)
            ]
        results = []
        for model in models:
            weights = None
            if self.settings["save_weights"]:
                weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            results.append((predict(model, self.X_query, self.settings), weights, None))
        return results
