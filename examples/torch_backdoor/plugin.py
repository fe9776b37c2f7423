"""Your own PyTorch network through the plug-in door: a small CNN and a planted backdoor.

scikit-learn's bundled digits (8x8 grey images), a stratified 80/20 split, and a backdoor planted
here: 30 training images of other classes get a 2x2 bright square in the bottom-right corner and
the label 0. The queries are the triggered test images of the other classes; the behaviour is the
CNN's probability of class 0. The CNN is defined in this file (it is not one of the pipeline's
built-in models): two 3x3 convolutions and a linear read-out, trained full batch with Adam and
weight decay for a fixed number of steps. It trains on CUDA when the job is given a GPU.
"""

from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

TARGET = 0


@lru_cache(maxsize=2)
def _data(seed: int, n_poisons: int):
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=seed, stratify=digits.target
    )
    rng = np.random.default_rng(seed)
    poisons = np.sort(rng.choice(np.flatnonzero(y_train != TARGET), n_poisons, replace=False))
    X_train[poisons, -2:, -2:] = 1.0  # the trigger
    y_train[poisons] = TARGET
    queries = rng.permutation(np.flatnonzero(y_test != TARGET))
    X_query = X_test[queries].copy()
    X_query[:, -2:, -2:] = 1.0
    return X_train, y_train.astype(np.int64), X_query, poisons


class SmallCNN(nn.Module):
    """A 3x3 convolution (``channels`` filters), ReLU, and a linear read-out of the 8x8 maps."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.head = nn.Linear(channels * 64, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x.unsqueeze(1))).flatten(1))


def describe(options: dict) -> dict:
    X_train, y_train, X_query, poisons = _data(options["seed"], options["n_poisons"])
    return {
        "n_points": len(y_train),
        "queries": [f"triggered_{i}" for i in range(len(X_query))],
        "n_outputs": 10,  # logits
        "classes": np.full(len(X_query), TARGET),
        "ground_truth": poisons,  # evaluation only
        "labels": y_train,
        "train_display": X_train,
        "query_display": X_query,
    }


def train(indices, seed, device, options):
    X_train, y_train, X_query, _ = _data(options["seed"], options["n_poisons"])
    torch.manual_seed(seed)
    model = SmallCNN(options["channels"]).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=options["lr"], weight_decay=options["weight_decay"]
    )
    X = torch.as_tensor(X_train[indices], device=device)
    y = torch.as_tensor(y_train[indices], device=device)
    for _ in range(options["steps"]):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    with torch.no_grad():
        return model(torch.as_tensor(X_query, device=device)).cpu().numpy()
