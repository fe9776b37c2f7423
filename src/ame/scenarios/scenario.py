"""The interface every scenario implements (the built-in ones included): data plus a trainer."""

from __future__ import annotations

from ame.data.dataset import Dataset


class Scenario:
    """Data plus a trainer. Subclasses set ``name`` and implement :meth:`describe` and
    :meth:`build`; the defaults train the built-in models (``training.model``).

    ``d`` below is the ``dataset`` section of the params, ``config`` the whole validated params.
    """

    #: what ``dataset.name`` says to select this scenario
    name: str = ""
    #: ``dataset`` keys that must be set (not null) for this scenario
    required: tuple[str, ...] = ()
    #: the data carry each point's source (contributor) themselves; otherwise
    #: ``dataset.n_sources`` groups the points into synthetic contributors
    gives_sources = False
    #: ``dataset`` keys the scenario never reads: they stay out of its submodels' run key (every
    #: other key is in it, so a new one retrains unless argued out here)
    ignored: tuple[str, ...] = ("plugin",)

    def describe(self, d: dict) -> dict:
        """``n_points``, ``n_query_points``, ``n_sources`` (0: no source labels) and
        ``has_classes`` (one class per query), without building the data: the workflow asks at
        start-up."""
        raise NotImplementedError

    def build(self, d: dict) -> Dataset:
        """The prepared dataset (the arrays the train, gather and evaluate steps read)."""
        raise NotImplementedError

    def trainer(self, dataset: Dataset, config: dict, device):
        """What trains a pack of subsets (``ame.training.jobs``'s interface: ``chunk``,
        ``output_shape`` and ``fit(rows, seeds, subsets)``); by default the built-in models."""
        from ame.training.builtin import BuiltinTrainer

        return BuiltinTrainer(dataset, config["training"], device)

    def submodel_settings(self, d: dict) -> dict:
        """The ``dataset`` settings a submodel depends on (part of its run key)."""
        return {key: value for key, value in d.items() if key not in self.ignored}

    def submodel_line(self, config: dict) -> str:
        """What one submodel is, for the report (the recipe decides how noisy behaviours are)."""
        t = config["training"]
        return (
            f"Submodels: **{t['model']}** (hidden {t['hidden']}), {t['steps']} {t['optimizer']} "
            f"steps at lr {t['lr']}, weight decay {t['weight_decay']}, seed policy "
            f"{t['seed_policy']}."
        )

    def problem(self, config: dict) -> str | None:
        """What is wrong with the ``dataset`` settings for this scenario (``key: why``), if
        anything: the cross-key rules the schema cannot say."""
        d, name = config["dataset"], self.name
        for key in self.required:
            if not d[key]:
                return f"dataset.{key}: required when dataset.name is {name}"
        if d["plugin"] and "plugin" not in self.required:
            return f"dataset.plugin: only used with dataset.name: plugin (name is {name})"
        if self.gives_sources:
            if d["n_sources"] is not None:
                return (
                    f"dataset.n_sources: {name} datasets give their own per-point sources; "
                    "set it to null"
                )
            return None
        if d["n_sources"] is None:
            if config["hierarchy"]["enabled"]:
                return "hierarchy.enabled: needs source labels; set dataset.n_sources"
            return None
        most = min(d["n_sources"], d["n_poisons"])
        if d["n_poisoned_sources"] > most:
            return (
                f"dataset.n_poisoned_sources: {d['n_poisoned_sources']} exceeds "
                f"min(n_sources, n_poisons) = {most}"
            )
        return None
