"""The prepare step: every scenario behind one door.

A scenario is a module with ``describe(dataset_params) -> dict`` (``n_points``,
``n_query_points``, ``n_sources``: what the workflow needs at start-up, without building the
data), ``build(dataset_params) -> Dataset`` and, optionally, ``trainer(dataset, config, device)``
(default: the built-in models of ``ame.training.builtin``). The user's own code enters through
the same door (``plugin``, ``ame.data.plugin``). ``dataset.name`` is dispatched here and only
here.
"""

from __future__ import annotations

from importlib import import_module

from ame.data.dataset import Dataset
from ame.data.sources import synthetic_sources
from ame.errors import UserError

__all__ = ["SCENARIOS", "Dataset", "build", "describe"]

#: Scenario name -> module implementing ``describe`` and ``build``.
SCENARIOS = {
    "digits": "ame.data.digits",
    "npz": "ame.data.npz",
    "cifar10": "ame.data.cifar10",
    "plugin": "ame.data.plugin",
}


def _scenario(config: dict):
    name = config["dataset"]["name"]
    if name not in SCENARIOS:
        raise UserError(f"dataset.name: unknown scenario {name!r}; choose one of {list(SCENARIOS)}")
    return import_module(SCENARIOS[name])


def describe(config: dict) -> dict:
    """``n_points``, ``n_query_points`` and ``n_sources`` (0: no source labels) of the dataset."""
    return _scenario(config).describe(config["dataset"])


def trainer(config: dict, dataset: Dataset, device):
    """What trains a submodel of this scenario: the plug-in's code, or the built-in models."""
    scenario = _scenario(config)
    if hasattr(scenario, "trainer"):
        return scenario.trainer(dataset, config, device)
    from ame.training.builtin import BuiltinTrainer

    return BuiltinTrainer(dataset, config["training"], device)


def build(config: dict) -> Dataset:
    """The dataset named by the ``dataset`` section of the params, with synthetic contributors
    when ``dataset.n_sources`` asks for them."""
    d = config["dataset"]
    dataset = _scenario(config).build(d)
    if d["n_sources"] is not None:
        dataset.source = synthetic_sources(
            dataset.n_points,
            dataset.ground_truth,
            d["n_sources"],
            d["n_poisoned_sources"],
            d["seed"],
        )
        dataset.meta["sources"] = "synthetic contributors (dataset.n_sources)"
    return dataset
