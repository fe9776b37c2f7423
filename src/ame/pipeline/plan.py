"""The run plan: which experiments a study runs and, for each, its budget, rows, stream, seeds,
store and files (:class:`Experiment`).

This is the one home of that bookkeeping: the paper's budget rule (``ame.sampling``), the
per-level settings, the rounding up to whole training jobs (:func:`whole_jobs`), the seed rule
(:func:`training_seed`), the submodel store's name and the files an experiment writes. The
Snakefile, the ``ame`` verbs, the removal planner and the report ask :func:`experiment`; nothing
else pads a budget, names a store or picks a seed. It needs a validated params dict only, no
workflow.

A study runs one experiment (``points``) or, with ``hierarchy.enabled``, up to three on the same
dataset (docs/how-to/hierarchies.md):

- ``sources``: each source (contributor) enters a subset whole, with probability p: one column per
  source, so sparsity is counted in sources and m = O(k_sources log S) submodels suffice.
- ``points``: one column per training point. In a hierarchical study it is restricted to the
  points of the sources selected at the source level (for any query: a false source only costs
  budget here, a missed one is lost for good), and every other source is in every subset. *In*,
  not out: the question is what each point does to the model trained on the data; a model trained
  on a few selected sources alone would be another model (for a backdoor: with no clean data to
  compete, the attack saturates and individual poisons stop mattering).
- ``flat``: the flat point-level experiment on the whole data, run beside the hierarchy so that its
  budget curve gives, in the same run, the submodels a flat study needs for the same recall.

With ``stages.enabled`` it runs two, on the same points (the workflow, and ``ame.AMEExperiment``):

- ``screen``: the first ``stages.screen_share`` of the budget, the plain run's first subsets;
- ``points``: the rest of the budget, fresh subsets on a stream of its own that vary the
  candidates the screen picked (:func:`candidates`, :func:`second_stage`); the other points are
  sampled as in the screen (``stages.others: sampled``: the AME keeps its meaning, the rows do not
  depend on the screen, and only the regression's columns do: ``MaskSet.columns``) or in every
  subset (``in``: the AME given all of them, as inside a hierarchy's sources).

Each experiment draws from its own random stream (``ame.sampling.STREAMS``); the flat comparison
uses the stream of a plain run, so it *is* the plain run of the same settings.

Each level also has a *validation* experiment: fresh subsets of the same units and design from a
stream of their own, ``validation.n_subsets`` of them (or ``validation.fraction`` of the level's
budget), which only ``ame validate`` reads: held out from the estimate, they measure how well the
estimated effects predict new submodels. And a *removal* experiment, whose rows (retraining
without each query's selection) follow the level's estimates: an experiment that depends on an
earlier artifact says so (:attr:`Experiment.reads`), and a later stage of a multi-stage design
is one more experiment of this kind, as is the second stage whose other points are in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ame.errors import UserError
from ame.pipeline.submodels import check_pack_size
from ame.sampling import STREAMS, Design, MaskSet, budget_from_sparsity, subset_rng
from ame.sampling.hierarchy import restriction, selected_sources
from ame.sampling.stages import screen_candidates

LEVELS = ("sources", "points", "flat", "screen")
#: What an experiment is for: the estimate (``main``), the held-out LDS (``validation``: fresh
#: subsets of the same units and design), or the counterfactual removal arms (``removal``: rows
#: that follow the estimates, ``ame.evaluation.removal``).
KINDS = ("main", "validation", "removal")
#: The prefix of each kind's file names (its masks, behaviours and submodel store).
PREFIXES = {kind: "" if kind == "main" else f"{kind}_" for kind in KINDS}
#: The stream of each experiment's validation subsets.
VALIDATION_STREAM = {
    STREAMS["points"]: "validation",
    STREAMS["sources"]: "validation_sources",
    STREAMS["restricted"]: "validation_restricted",
    STREAMS["candidates"]: "validation_candidates",
}
#: What the validate step writes for one level, by the report's option that reads each file.
VALIDATION_FILES = {
    "validation": "validation.json",
    "validation-per-query": "validation_per_query.csv",
    "lds-curve": "lds_curve.csv",
    "validation-predictions": "validation_predictions.csv",
}


@dataclass(frozen=True)
class Experiment:
    """One experiment of the study: a set of subsets, the submodels trained on them and the
    behaviours gathered from those.

    ``budget`` subsets enter what reads it; ``n_train`` (the budget rounded up to whole training
    jobs) are drawn and trained, the extra ones kept for a later, larger budget. Both are None
    when the rows follow an earlier artifact (``reads``): the removal arms follow the estimates,
    and their count is that of their mask artifact.
    """

    level: str
    kind: str
    unit: str  # "point" or "source": what a column of the regression is
    after: str | None  # the level whose estimates its units follow: a hierarchy's point level
    # studies the points of the selected sources, a second stage whose others are in the candidates
    stream: int
    budget: int | None
    n_train: int | None

    @property
    def restricted(self) -> bool:
        """Its columns are some of the points, picked by an earlier level; the others are in."""
        return self.after is not None

    @property
    def prefix(self) -> str:
        """Of its file names: ``""``, ``validation_`` or ``removal_``."""
        return PREFIXES[self.kind]

    def file(self, name: str) -> str:
        """Its artifact ``name`` (``masks.npz``, ``behaviours.npz``), within its level's results."""
        return self.prefix + name

    @property
    def reads(self) -> tuple[tuple[str, str], ...]:
        """The (level, artifact) its rows are drawn from: the removal arms, from the estimates
        of their level; a restricted level, from the estimates of the level it follows."""
        if self.kind == "removal":
            return ((self.level, "estimates.npz"),)
        return ((self.after, "estimates.npz"),) if self.restricted else ()

    def store(self, run_key: str, masks: MaskSet | None = None) -> str:
        """The directory of its submodels, within its level's results: keyed by the settings
        (``run_key``), and, where the rows follow an artifact, by the masks drawn from it (a
        new source selection or new estimates mean new submodels, never stale files).
        Validation submodels are named like the main ones of their level, in their own store."""
        name = run_key
        if self.kind == "removal":
            name = f"{run_key}-{masks.rows_digest()[:8]}"
        elif self.restricted:
            name = f"{run_key}-{masks.units_digest()[:8]}"
        return f"{self.prefix}submodels/{name}"

    def draw(self, config: dict, n_points: int, units=None, ids=None) -> MaskSet:
        """Its ``n_train`` subsets of ``n_points`` points (over ``units`` when given: one column
        per id), from its own stream: the first rows are the same whatever the budget."""
        return MaskSet.draw(
            n_points,
            self.n_train,
            design(config),
            config["sampling"]["seed"],
            budget=self.budget,
            units=units,
            ids=ids,
            unit=self.unit,
            stream=self.stream,
        )

    def rng(self, config: dict, index: int) -> np.random.Generator:
        """The generator of its draw ``index`` (a subset; a removal arm's random points)."""
        return subset_rng(config["sampling"]["seed"], index, self.stream)


def design(config: dict) -> Design:
    s = config["sampling"]
    return Design(
        name=s["design"],
        p_values=tuple(s["p_values"]),
        p=s["p"],
        eps=s["eps"],
        beta_a=s["beta_a"],
        beta_b=s["beta_b"],
    )


def levels(config: dict) -> list[str]:
    """The experiments of the study, in the order they run."""
    h = config["hierarchy"]
    if config["stages"]["enabled"]:
        return ["screen", "points"]
    if not h["enabled"]:
        return ["points"]
    return ["sources", "points"] + (["flat"] if h["compare_flat"] else [])


def experiment(config: dict, level: str, kind: str = "main", n_units: int = 0) -> Experiment:
    """The ``kind`` experiment of ``level`` over ``n_units`` columns (points or sources; for a
    restricted level, the points it studies; unused by the removal arms)."""
    if level not in levels(config):
        raise UserError(f"level: {level!r} is no experiment of this study ({levels(config)})")
    if kind not in KINDS:
        raise UserError(f"experiment: unknown kind {kind!r}; choose one of {KINDS}")
    s, h, st = config["sampling"], config["hierarchy"], config["stages"]
    after = None
    if level == "sources":
        fixed, k, stream = h["source_subsets"], h["k_sources"], STREAMS["sources"]
    elif level == "flat":
        fixed, k, stream = h["flat_subsets"], s["k"], STREAMS["points"]
    elif level == "screen":
        fixed, k, stream = stage_budgets(config)["screen"], s["k"], STREAMS["points"]
    elif st["enabled"]:
        fixed, k, stream = stage_budgets(config)["points"], s["k"], STREAMS["candidates"]
        after = "screen" if st["others"] == "in" else None
    else:
        fixed, k = s["n_subsets"], s["k"]
        after = "sources" if h["enabled"] else None
        stream = STREAMS["restricted" if after else "points"]
    budget = int(fixed) if fixed is not None else budget_from_sparsity(n_units, s["c"], k)
    if kind == "validation":
        v = config["validation"]
        budget = v["n_subsets"] or max(1, round(v["fraction"] * budget))
        stream = STREAMS[VALIDATION_STREAM[stream]]
    elif kind == "removal":
        budget, stream = None, STREAMS["removal"]
    return Experiment(
        level=level,
        kind=kind,
        unit="source" if level == "sources" else "point",
        after=after,
        stream=stream,
        budget=budget,
        n_train=None if budget is None else whole_jobs(config, budget),
    )


def kinds(config: dict, level: str) -> list[str]:
    """The experiments the study runs at ``level``: its main one and, where the validate step
    runs (every level but the flat comparison of a hierarchy and the screen of a two-stage
    design, whose estimate only picks candidates), its validation and removal ones."""
    checked = level not in ("flat", "screen")
    return list(KINDS) if config["validation"]["enabled"] and checked else ["main"]


def stage_budgets(config: dict) -> dict[str, int]:
    """The subsets of each stage of a two-stage design: ``stages.screen_share`` of
    ``sampling.n_subsets`` for the screen (at least one), the rest for the candidates."""
    total, share = config["sampling"]["n_subsets"], config["stages"]["screen_share"]
    screen = min(total - 1, max(1, round(share * total)))
    return {"screen": screen, "points": total - screen}


def whole_jobs(config: dict, budget: int) -> int:
    """Subsets to train for ``budget``: rounded up to whole training jobs, since a job trains a
    pack of ``training.subsets_per_job`` subsets. The one place a budget is padded."""
    per_job = check_pack_size(config["training"]["subsets_per_job"])
    return math.ceil(budget / per_job) * per_job


def training_seed(config: dict, masks: MaskSet, index: int) -> int:
    """Training seed of subset ``index``: the row's own seed where its experiment set one (the
    removal arms: :func:`replicate_seed`), else under ``training.seed_policy``."""
    if masks.seeds is not None:
        return int(masks.seeds[index])
    t = config["training"]
    return t["seed"] if t["seed_policy"] == "common" else t["seed"] + index


def replicate_seed(config: dict, replicate: int) -> int:
    """Training seed of replicate ``replicate`` of the removal arms: its three arms share it,
    so their differences are paired."""
    return config["training"]["seed"] + replicate


def candidates(config: dict, screen) -> np.ndarray:
    """The points the second stage of a two-stage design varies: the rule fixed in advance
    (``ame.sampling.stages``) applied to the screen's estimates. Too few to leave the
    cross-validation its distinct subsets is an error that names the setting."""
    e, share = config["estimation"], config["stages"]["candidates"]
    chosen = screen_candidates(
        screen.inference["ame_debiased"],
        screen.inference["ame_se"],
        screen.ids,
        e["direction"],
        share,
    )
    needed = max(2, math.ceil(math.log2(e["n_folds"])))  # 2**needed distinct subsets at most
    if len(chosen) < needed:
        raise UserError(
            f"stages.candidates: {share} of {len(screen.ids)} points keeps {len(chosen)} "
            f"candidates; the second stage's {e['n_folds']} folds need at least {needed}"
        )
    return chosen


def second_stage(config: dict, n_points: int, chosen: np.ndarray, kind: str = "main") -> MaskSet:
    """The second stage's main or validation subsets: fresh ones, on streams of their own, that
    vary the candidates ``chosen``; the other points sampled as in the screen (the regression's
    columns are the candidates alone) or in every subset (``stages.others``)."""
    plan = experiment(config, "points", kind, len(chosen))
    if config["stages"]["others"] == "in":
        units, ids = restriction(np.arange(n_points), chosen)
        return plan.draw(config, n_points, units, ids)
    return replace(plan.draw(config, n_points), columns=np.asarray(chosen, dtype=np.int64))


def draw_masks(config: dict, dataset, level: str, selection=None, kind: str = "main") -> MaskSet:
    """The subsets of ``level``'s main or validation experiment (``selection``: the estimates
    of the level it follows, the source level's for a hierarchy's point level, the screen's
    for a two-stage design's second stage)."""
    if kind == "removal":
        raise UserError("sample: the removal arms follow the estimates; ame removal plans them")
    if level == "points" and config["stages"]["enabled"]:
        if selection is None:
            raise UserError("sample: the second stage needs --selection (the screen's estimates)")
        return second_stage(config, dataset.n_points, candidates(config, selection), kind)
    hierarchical = config["hierarchy"]["enabled"]
    units = ids = None
    if level == "sources" or (level == "points" and hierarchical):
        if dataset.source is None:
            raise UserError("hierarchy.enabled: the dataset has no source labels")
    if level == "sources":
        units, ids = dataset.source, np.arange(dataset.n_sources)
    elif level == "points" and hierarchical:
        if selection is None:
            raise UserError("sample: the point level of a hierarchical study needs --selection")
        chosen = selected_sources(selection.selected, selection.ids)
        if len(chosen) == 0:
            raise UserError(
                f"hierarchy: no source selected at FDR {config['estimation']['fdr']}; raise "
                "hierarchy.source_subsets (or estimation.fdr) before refining inside sources"
            )
        units, ids = restriction(dataset.source, chosen)
    plan = experiment(config, level, kind, dataset.n_points if ids is None else len(ids))
    return plan.draw(config, dataset.n_points, units, ids)
