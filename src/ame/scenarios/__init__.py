"""The scenario door: what a study's experiments run on, one interface and one registry.

A scenario is data plus a trainer: :class:`Scenario` describes the data cheaply (sizes, at
workflow start-up), builds the prepared dataset and trains a pack of subsets. The built-in ones
(``digits``, ``npz``, ``cifar10``, and ``plugin``, the user's own code: ``ame.scenarios.builtin``)
and any other package's are registered the same way, by name; ``dataset.name`` in the params
picks one, and only this package compares that name with anything. Data flows down: the
scenarios import ``ame.data`` (formats) and ``ame.training`` (models), never the reverse.

Another package adds a scenario with an entry point in the ``ame.scenarios`` group, e.g. in its
``pyproject.toml``::

    [project.entry-points."ame.scenarios"]
    tabular = "mypackage.scenario:Tabular"

after which ``dataset.name: tabular`` selects it in any study (the schema's list of names is read
from this registry).
"""

from __future__ import annotations

from importlib import metadata

from ame.data.dataset import Dataset
from ame.data.sources import synthetic_sources
from ame.devices import resolve_device
from ame.errors import UserError
from ame.scenarios.builtin import BUILTIN
from ame.scenarios.scenario import Scenario

__all__ = ["ENTRY_POINTS", "Scenario", "build", "describe", "get", "names", "register"]

#: The entry-point group other packages register their scenarios in.
ENTRY_POINTS = "ame.scenarios"


_REGISTRY: dict[str, Scenario] = {}


def register(scenario: type[Scenario]) -> type[Scenario]:
    """Add a scenario class to the registry under its ``name`` (usable as a decorator)."""
    if not scenario.name:
        raise UserError(f"scenario {scenario.__qualname__}: has no name")
    known = _REGISTRY.get(scenario.name)
    if known is not None and type(known) is not scenario:
        raise UserError(
            f"scenario {scenario.name!r}: registered twice ({type(known).__qualname__} and "
            f"{scenario.__qualname__})"
        )
    _REGISTRY[scenario.name] = scenario()
    return scenario


def _load() -> dict[str, Scenario]:
    """The registry, with the built-in scenarios and the installed packages' entry points."""
    if not _REGISTRY:
        for scenario in BUILTIN:
            register(scenario)
        for entry in metadata.entry_points(group=ENTRY_POINTS):
            try:
                scenario = entry.load()
            except Exception as err:  # another package's code: name it in one line
                raise UserError(
                    f"scenario {entry.name} ({entry.value}): cannot be loaded "
                    f"({type(err).__name__}: {err})"
                ) from err
            if not (isinstance(scenario, type) and issubclass(scenario, Scenario)):
                raise UserError(f"scenario {entry.name} ({entry.value}): not a Scenario class")
            if scenario.name != entry.name:
                raise UserError(
                    f"scenario {entry.name} ({entry.value}): its class is named {scenario.name!r}"
                )
            register(scenario)
    return _REGISTRY


def names() -> list[str]:
    """The names ``dataset.name`` may take."""
    return sorted(_load())


def get(config: dict) -> Scenario:
    """The scenario ``dataset.name`` selects."""
    name = config["dataset"]["name"]
    scenarios = _load()
    if name not in scenarios:
        raise UserError(f"dataset.name: unknown scenario {name!r}; choose one of {names()}")
    return scenarios[name]


def describe(config: dict) -> dict:
    """``n_points``, ``n_query_points``, ``n_sources`` and ``has_classes`` of the dataset."""
    return get(config).describe(config["dataset"])


def build(config: dict) -> Dataset:
    """The dataset named by the ``dataset`` section of the params, with synthetic contributors
    when ``dataset.n_sources`` asks for them."""
    d = config["dataset"]
    dataset = get(config).build(d)
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


def trainer(config: dict, dataset: Dataset):
    """What trains the submodels of the selected scenario, on ``training.device``."""
    import torch

    device = resolve_device(config["training"]["device"], "training.device")
    return get(config).trainer(dataset, config, torch.device(device))
