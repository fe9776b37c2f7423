"""One call from Python: a training function and a budget in, effects with intervals out.

:class:`AMEExperiment` runs the randomized experiment the workflow runs, without a workflow:
it draws the subsets through the same run plan and streams (``ame.pipeline.plan``), calls the
user's ``train_fn`` on each (in parallel with joblib, with a tqdm progress bar), fits the same
estimator with the same settings (``params``: the package's defaults and what differs), and,
with ``validation``, scores the effects on fresh held-out subsets (LDS, ``ame.evaluation.lds``).

With ``cache_dir`` every finished evaluation is written at once, atomically, with its
fingerprint (the submodel store of the workflow): an interrupted call resumes from what
finished, and a larger budget reuses the smaller one's evaluations. A cache is bound to one
function, design, seed and number of points (``experiment.json``); any other is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ame.artifacts import atomic_write_json, load_json
from ame.errors import UserError
from ame.pipeline import params as ame_params
from ame.pipeline.plan import candidates, experiment, second_stage, training_seed
from ame.pipeline.submodels import SubmodelStore
from ame.sampling import MaskSet
from ame.train_fn import TrainFunctionError, call, function_identity, takes_seed

__all__ = ["AMEExperiment", "TrainFunctionError"]


class AMEExperiment:
    """Average marginal effects of training points from a training function and a budget.

    ``train_fn(indices)`` or ``train_fn(indices, seed)`` trains on the training points
    ``indices`` (int64 array) and returns one behaviour per query (a number or a vector).

    Parameters
    ----------
    budget : int
        Number of subsets to train on (utility evaluations) for the estimate.
    design : str
        How each subset's inclusion probability p is drawn: ``grid`` (the paper's {0.2, 0.4, 0.6,
        0.8}), ``fixed`` (p = 0.5: Banzhaf), ``uniform`` or ``shapley`` (Shapley-like), ``beta``
        (``sampling`` settings of ``params``).
    validation : int
        Fresh held-out subsets on which to score the effects (LDS); 0: none.
    n_jobs : int
        Evaluations run at once (joblib; -1: one per core).
    random_state : int
        Seed of the subsets (``sampling.seed``); the training seeds follow ``training.seed``.
    params : dict, optional
        Settings that differ from the defaults, shaped like ``params.yaml`` (``estimation``:
        the estimator; ``training``: ``seed`` and ``seed_policy``; ``stages``: a two-stage
        design, whose screen fills ``screen_``, ``screen_masks_`` and ``candidates_`` while
        ``estimates_`` and ``ame_`` (NaN outside the candidates) are the second stage's;
        docs/how-to/stages.md).
    cache_dir : str or Path, optional
        Where each finished evaluation is kept: a rerun resumes, a larger budget reuses.
    function_id : str, optional
        A name and version for ``train_fn`` (for the cache); default: a hash of its source.
    progress : bool
        Show a progress bar.
    mislabels : bool
        ``train_fn`` returns a pair: the behaviours, and the probability the submodel gives each
        training point's own label followed by each calibration point's (trusted labelled
        points no subset contains). The same submodels then give every training point's
        out-of-subset value and a relabel list at ``estimation.fdr`` (``mislabels_``, a fitted
        :class:`ame.estimation.mislabel.MislabelDetector`; docs/how-to/mislabels.md).
    """

    def __init__(
        self,
        budget: int,
        *,
        design: str = "grid",
        validation: int = 0,
        n_jobs: int = 1,
        random_state: int = 0,
        params: dict | None = None,
        cache_dir: str | Path | None = None,
        function_id: str | None = None,
        progress: bool = True,
        mislabels: bool = False,
    ):
        self.budget = budget
        self.design = design
        self.validation = validation
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.params = params
        self.cache_dir = cache_dir
        self.function_id = function_id
        self.progress = progress
        self.mislabels = mislabels

    def config(self) -> dict:
        """The validated params of this call: defaults, ``params``, then the constructor's."""
        own = {
            "sampling": {
                "n_subsets": self.budget,
                "design": self.design,
                "seed": self.random_state,
            },
            "training": {"subsets_per_job": 1},  # one evaluation is one job: no padding
            "validation": {"enabled": self.validation > 0, "n_subsets": self.validation or None},
        }
        config = ame_params.complete(ame_params.merge(self.params or {}, own))
        if config["hierarchy"]["enabled"]:
            raise UserError(
                "params: hierarchy.enabled needs the workflow (ame.scenarios); set it false"
            )
        return config

    def fit(self, train_fn, n_points: int, query_names: list[str] | None = None) -> AMEExperiment:
        """Evaluate ``train_fn`` on the subsets, estimate the effects, validate them; with
        ``stages.enabled`` in ``params``, screen first, then estimate on the candidates."""
        if not callable(train_fn):
            raise UserError(f"train_fn: expected a function, got {type(train_fn).__name__}")
        if not isinstance(n_points, int | np.integer) or n_points < 2:
            raise UserError(f"n_points: expected an integer >= 2, got {n_points!r}")
        self.config_ = config = self.config()
        identity = function_identity(train_fn, self.function_id) if self.cache_dir else None
        staged = config["stages"]["enabled"]
        self.screen_ = self.screen_masks_ = self.candidates_ = None
        first = experiment(config, "screen" if staged else "points", "main", n_points)
        masks = first.draw(config, n_points)
        Y, own = self._evaluate(train_fn, config, masks, "main", identity)
        self.n_queries_ = Y.shape[1]
        self._names = list(query_names) if query_names is not None else [
            f"query {q}" for q in range(self.n_queries_)
        ]  # fmt: skip
        if len(self._names) != self.n_queries_:
            raise UserError(
                f"query_names: {len(self._names)} names for {self.n_queries_} behaviours per subset"
            )
        self.mislabels_ = self._relabel_list(masks, own, n_points) if self.mislabels else None
        self._estimate(config, masks, Y)
        if staged:
            self.screen_, self.screen_masks_ = self.estimates_, masks
            self.candidates_ = candidates(config, self.screen_)
            masks = second_stage(config, n_points, self.candidates_)
            Y, _ = self._evaluate(train_fn, config, masks, "candidates", identity)
            self._estimate(config, masks, Y)
        self.ame_ = np.full((self.n_queries_, n_points), np.nan)
        self.selected_ = np.zeros((self.n_queries_, n_points), dtype=bool)
        self.ame_[:, self.estimates_.ids] = self.estimates_.ame
        self.selected_[:, self.estimates_.ids] = self.estimates_.selected
        self.lds_ = self.lds_mean_ = self.lds_interval_ = None
        if self.validation:
            self._validate(train_fn, config, n_points, identity)
        return self

    def _estimate(self, config: dict, masks: MaskSet, Y: np.ndarray) -> None:
        """Fit the estimator on one experiment's subsets and behaviours."""
        from ame.behaviour.gather import Behaviours
        from ame.estimation.results import Estimates, estimator_from_params

        subsets = np.arange(masks.n_subsets)
        names = self._names
        self.masks_ = masks
        self.behaviours_ = Behaviours(subsets, masks.p, Y, names, [], list(range(len(names))))
        self.estimator_ = estimator_from_params(config).fit(
            masks.column_masks(), masks.p, Y, design=masks.design, subset_index=subsets
        )
        self.estimates_ = Estimates.from_estimator(self.estimator_, config, self.behaviours_, masks)

    def top(self, n: int = 5):
        """The ``n`` strongest effects of each query in ``estimation.direction``: the LASSO's
        AME (which ranks), the debiased AME with its interval (``estimation.ci_level``), and
        whether the selection at the FDR target kept the point (a DataFrame)."""
        import pandas as pd

        e = self.estimates_
        direction = self.config_["estimation"]["direction"]
        rows = []
        for q, order in enumerate(e.ranking(direction)):
            for c in order[:n]:
                rows.append(
                    {
                        "query": e.names[q],
                        "point": int(e.ids[c]),
                        "ame": e.ame[q, c],
                        "ame_debiased": e.inference["ame_debiased"][q, c],
                        "ci_low": e.inference["ci_low"][q, c],
                        "ci_high": e.inference["ci_high"][q, c],
                        "selected": bool(e.selected[q, c]),
                    }
                )
        return pd.DataFrame(rows)

    def _relabel_list(self, masks: MaskSet, own: np.ndarray, n_points: int):
        """The mislabel detector on the own-label scores: training points, then calibration.
        Of the first experiment only (a two-stage design's screen: every point varies there,
        under one design, as the calibration points' scores assume)."""
        from ame.estimation.mislabel import MislabelDetector

        if own.shape[1] <= n_points:
            raise TrainFunctionError(
                f"train_fn returned {own.shape[1]} own-label scores for {n_points} training "
                "points: the calibration points' scores must follow (at least one)"
            )
        e = self.config_["estimation"]
        detector = MislabelDetector(e["fdr"], e["ci_level"], random_state=e["random_state"])
        return detector.fit(masks.masks, own[:, :n_points], own[:, n_points:])

    def _validate(self, train_fn, config: dict, n_points: int, identity) -> None:
        from ame.evaluation.lds import lds, lds_interval, mean_over_queries

        if self.candidates_ is None:
            held_out = experiment(config, "points", "validation", n_points).draw(config, n_points)
            store = "validation"
        else:  # held-out subsets of the design whose estimand the estimate reports
            held_out = second_stage(config, n_points, self.candidates_, "validation")
            store = "validation_candidates"
        Y, _ = self._evaluate(train_fn, config, held_out, store, identity)
        args = (self.estimates_.ame, held_out.column_masks(), held_out.p, Y, held_out.design)
        self.validation_masks_ = held_out
        self.lds_, self.lds_notes_ = lds(*args)
        self.lds_mean_ = mean_over_queries(self.lds_)
        self.lds_interval_ = lds_interval(*args)

    # -- evaluations ------------------------------------------------------------------------
    def _evaluate(self, train_fn, config: dict, masks: MaskSet, kind: str, identity) -> tuple:
        """Behaviours (subsets x queries) of ``train_fn`` on every subset of ``masks``, and with
        ``mislabels`` its own-label scores (subsets x points, else None): from the cache where
        they are there, else computed (in parallel) and written as they finish. ``kind`` names
        the experiment (its cache store and progress bar)."""
        from joblib import Parallel, delayed
        from tqdm.auto import tqdm

        store = self._store(kind, masks, identity)
        seeds = [training_seed(config, masks, i) for i in range(masks.n_subsets)]
        rows: dict[int, np.ndarray] = {}
        owns: dict[int, np.ndarray] = {}
        if store is not None:
            rows, owns = self._cached(store, masks, seeds, identity)
        todo = [i for i in range(masks.n_subsets) if i not in rows]
        with_seed, pairs = takes_seed(train_fn), self.mislabels
        calls = (
            delayed(call)(
                train_fn, with_seed, pairs, i, np.flatnonzero(masks.point_mask(i)), seeds[i]
            )
            for i in todo
        )
        failed = []
        results = Parallel(n_jobs=self.n_jobs, return_as="generator_unordered")(calls)
        bar = tqdm(results, total=len(todo), desc=f"{kind} subsets", disable=not self.progress)
        for index, value, own, error in bar:
            if error is not None:
                failed.append((index, error))
                continue
            rows[index] = self._checked(value, index, rows, "behaviours")
            if pairs:
                owns[index] = self._checked(own, index, owns, "own-label scores")
            if store is not None:
                self._write(store, masks, seeds, identity, index, rows[index], owns.get(index))
        if failed:
            index, error = min(failed)
            kept = "kept in cache_dir" if store is not None else "lost (set cache_dir to keep them)"
            raise TrainFunctionError(
                f"train_fn raised on subset {index} (seed {seeds[index]}): {error}; "
                f"{len(failed)} subset(s) failed, the other {len(rows)} evaluations are {kept}"
            )
        order = range(masks.n_subsets)
        return np.stack([rows[i] for i in order]), (
            np.stack([owns[i] for i in order]) if pairs else None
        )

    def _checked(self, value: np.ndarray, index: int, rows: dict, what: str) -> np.ndarray:
        """Finite numbers, as many as the other subsets gave."""
        if not np.isfinite(value).all():
            raise TrainFunctionError(f"train_fn returned non-finite {what} for subset {index}")
        expected = next(iter(rows.values())).shape if rows else None
        if value.size == 0 or (expected is not None and value.shape != expected):
            raise TrainFunctionError(
                f"train_fn returned {value.size} {what} for subset {index}; "
                + (f"the others returned {expected[0]}" if expected else "expected at least one")
            )
        return value

    # -- the cache ------------------------------------------------------------------------------
    def _store(self, kind: str, masks: MaskSet, identity) -> SubmodelStore | None:
        """The cache's store of ``kind``, after checking the cache belongs to this call; where
        the rows follow a screen's candidates (the others in), one store per candidate set."""
        if self.cache_dir is None:
            return None
        root = Path(self.cache_dir)
        manifest = root / "experiment.json"
        # what the cache is bound to: an evaluation made under other values is another's
        bound = {
            "function": identity,
            "n_points": int(masks.n_points),
            "design": masks.design.to_dict(),
            "seed": int(masks.seed),
        }
        if manifest.exists():
            recorded = load_json(manifest)
            for key in bound:
                if recorded.get(key) != bound[key]:
                    raise UserError(
                        f"cache_dir {root}: made for another {key} ({recorded.get(key)!r}, this "
                        f"call: {bound[key]!r}); use another cache_dir or remove it"
                    )
        else:
            root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(manifest, bound)
        name = kind if masks.units is None else f"{kind}-{masks.units_digest()[:8]}"
        return SubmodelStore(root / name)

    def _fingerprint(self, masks: MaskSet, seeds: list[int], identity, index: int) -> dict:
        return {
            "subset": int(index),
            "mask_sha256": masks.row_digest(index),
            "p": float(masks.p[index]),
            "seed": int(seeds[index]),
            "function": identity,
            **({"mislabels": True} if self.mislabels else {}),  # its files hold the scores too
        }

    def _cached(self, store: SubmodelStore, masks: MaskSet, seeds, identity) -> tuple:
        rows, owns = {}, {}
        for index in range(masks.n_subsets):
            if not store.path(index).exists():
                continue
            expected = self._fingerprint(masks, seeds, identity, index)
            shape = next(iter(rows.values())).shape if rows else None  # as the first one's
            rows[index] = store.read(index, expected, shape)[0]
            if self.mislabels:
                owns[index] = store.read_training_points(index, None)[0]
        return rows, owns

    def _write(self, store, masks, seeds, identity, index: int, value, own=None) -> None:
        store.write(index, value, self._fingerprint(masks, seeds, identity, index), None, own)
