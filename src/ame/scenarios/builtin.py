"""The scenarios that ship with ame, registered like anyone else's (``ame.scenarios``).

Their data formats live in ``ame.data`` (one module each); what trains them in
``ame.training``: the built-in models, or the plug-in's own ``train``.
"""

from __future__ import annotations

from ame.data import cifar10, digits, npz, plugin
from ame.data.dataset import Dataset
from ame.scenarios.scenario import Scenario

#: the built-in models never read the plug-in's settings
NOT_PLUGIN = ("plugin", "options")


class Digits(Scenario):
    """The bundled default: a backdoor planted in scikit-learn's digits."""

    name = "digits"
    ignored = NOT_PLUGIN

    describe = staticmethod(digits.describe)
    build = staticmethod(digits.build)


class Npz(Scenario):
    """A user's dataset as one ``.npz`` file (``dataset.path``)."""

    name = "npz"
    ignored = NOT_PLUGIN
    required = ("path",)
    gives_sources = True

    describe = staticmethod(npz.describe)
    build = staticmethod(npz.build)


class Cifar10(Scenario):
    """The paper's CIFAR-10 backdoor (``dataset.path``: the python-version batches)."""

    name = "cifar10"
    ignored = NOT_PLUGIN
    required = ("path",)

    describe = staticmethod(cifar10.describe)
    build = staticmethod(cifar10.build)


class Plugin(Scenario):
    """The user's own module (``dataset.plugin``): it describes its data and trains a subset."""

    name = "plugin"
    required = ("plugin",)
    gives_sources = True
    ignored = ()

    describe = staticmethod(plugin.describe)
    build = staticmethod(plugin.build)

    def trainer(self, dataset: Dataset, config: dict, device):
        from ame.training.plugin import PluginTrainer

        options, points = config["dataset"]["options"], config["training"]["training_points"]
        return PluginTrainer(dataset, options, str(device), points)

    def submodel_settings(self, d: dict) -> dict:
        """All of the plug-in's settings and the content hash of its source file: editing the
        user's code retrains."""
        return {**d, "plugin_source": plugin.source_digest(d["plugin"])}

    def submodel_line(self, config: dict) -> str:
        return f"Submodels: trained by the plug-in {config['dataset']['plugin']}."


#: registered by ``ame.scenarios`` like any other package's
BUILTIN = (Digits, Npz, Cifar10, Plugin)
