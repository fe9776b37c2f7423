"""Cross-key rules of the ``training`` section, shared by params validation and the trainers.

Torch-free on purpose: the workflow validates params at start-up without importing torch.
"""

from __future__ import annotations

VECTOR_MODELS = ("linear", "mlp")


def vectorize_problem(training: dict) -> str | None:
    """Why ``training`` cannot be trained vectorized (see ``ame.training.vectorized``), or None.

    The rule: vectorized training covers the linear and mlp models, full batch, fp32, without
    augmentation; every other recipe trains one submodel at a time (``vectorize: false``).
    """
    if training["model"] not in VECTOR_MODELS:
        models = " and ".join(VECTOR_MODELS)
        return f"only the {models} models train vectorized, not {training['model']}"
    if training["batch_size"] is not None:
        return "vectorized training is full-batch only (batch_size: null)"
    if training["augment"] != "none":
        return "vectorized training takes no augmentation (augment: none)"
    if training["precision"] != "fp32":
        return "vectorized training runs in fp32 (precision: fp32)"
    return None


def training_problem(training: dict) -> str | None:
    """The first conflict between keys of the ``training`` section, as ``key: reason``, or None."""
    if training["optimizer"] != "sgd" and (training["momentum"] or training["nesterov"]):
        return "momentum: momentum and nesterov apply to optimizer sgd only"
    if training["nesterov"] and not training["momentum"] > 0:
        return "nesterov: Nesterov momentum needs momentum > 0"
    knots = training["lr_schedule"]
    if knots is not None:
        fractions = [knot[0] for knot in knots]
        rising = all(b > a for a, b in zip(fractions, fractions[1:], strict=False))
        if fractions[0] != 0 or fractions[-1] != 1 or not rising:
            return (
                "lr_schedule: the fractions of steps must rise strictly from 0 to 1, e.g. "
                "[[0, 0.0625], [0.16, 1], [1, 0.0025]]"
            )
    if training["vectorize"]:
        problem = vectorize_problem(training)
        if problem:
            return f"vectorize: {problem}; set vectorize: false to train one submodel at a time"
    return None
