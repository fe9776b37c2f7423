"""Source-level and hierarchical experiments: exactly known answers, then the workflow."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import jobs_run, make_workspace, snakemake
from estimation.test_estimator import LEAST_SQUARES, nonlinear, sandwich_stderr
from quality import check_run

from ame.data import Dataset
from ame.data.sources import synthetic_sources
from ame.estimation.estimator import AMEEstimator
from ame.estimation.results import Estimates
from ame.estimation.semivalues import estimand_weights, exact_semivalue
from ame.pipeline.params import load
from ame.pipeline.provenance import run_key
from ame.report.sections import smallest_budget_reaching
from ame.sampling import Design, MaskSet
from ame.sampling.hierarchy import restriction, selected_sources

N_POINTS, N_SOURCES = 24, 8
SOURCE = np.repeat(np.arange(N_SOURCES), 3)[np.random.default_rng(0).permutation(N_POINTS)]
DESIGN = Design("grid")


def point_masks(masks: MaskSet) -> np.ndarray:
    return np.stack([masks.point_mask(i) for i in range(masks.n_subsets)])


def game(points):
    """A non-linear behaviour of the training points (saturation and interactions)."""
    return nonlinear(points[:, : N_POINTS // 3]) + points[:, N_POINTS // 3 :].sum(1)[:, None] / 10


def estimate(masks: MaskSet, Y):
    est = AMEEstimator(**LEAST_SQUARES).fit(masks.masks, masks.p, Y, design=DESIGN)
    groups = np.unique(masks.p, return_inverse=True)[1]
    _, se = sandwich_stderr(masks.masks, masks.p, Y, est.featurization_, groups, est.ame_scale_)
    return est, se


def test_source_level_ames_are_the_semivalues_of_the_source_game():
    """Sources enter whole: the AME of a source is the semivalue of the game over sources."""
    masks = MaskSet.draw(
        N_POINTS, 4000, DESIGN, 3, units=SOURCE, ids=np.arange(N_SOURCES), unit="source", stream=2
    )
    points = point_masks(masks)
    np.testing.assert_array_equal(points, masks.masks[:, SOURCE])  # a source is all in or all out
    est, se = estimate(masks, game(points))
    weights = estimand_weights(DESIGN, N_SOURCES, "inverse")
    exact = exact_semivalue(lambda s: game(s[:, SOURCE]), N_SOURCES, weights)
    assert np.all(np.abs(est.ame_ - exact) <= 5 * se)
    assert se.max() < 0.1 * np.abs(exact).max()
    # an additive behaviour at a fixed p: a source's AME is the sum of its points' effects
    fixed = MaskSet.draw(
        N_POINTS, 200, Design("fixed", p=0.5), 3, units=SOURCE, ids=np.arange(N_SOURCES)
    )
    effects = np.linspace(0.0, 1.0, N_POINTS)
    additive = AMEEstimator(**LEAST_SQUARES).fit(fixed.masks, fixed.p, point_masks(fixed) @ effects)
    np.testing.assert_allclose(
        additive.ame_[0], np.bincount(SOURCE, weights=effects), rtol=1e-4, atol=1e-5
    )


def test_point_level_inside_selected_sources_keeps_the_other_sources_in():
    """The point-level AMEs inside the chosen sources are the semivalues of the game in which
    every other source is always present."""
    chosen = np.array([1, 4])
    units, ids = restriction(SOURCE, chosen)
    np.testing.assert_array_equal(ids, np.flatnonzero(np.isin(SOURCE, chosen)))
    masks = MaskSet.draw(N_POINTS, 4000, DESIGN, 4, units=units, ids=ids, stream=3)
    points = point_masks(masks)
    assert points[:, units < 0].all()
    np.testing.assert_array_equal(points[:, ids], masks.masks)
    est, se = estimate(masks, game(points))

    def restricted(active):
        full = np.ones((len(active), N_POINTS), dtype=bool)
        full[:, ids] = active
        return game(full)

    exact = exact_semivalue(restricted, len(ids), estimand_weights(DESIGN, len(ids), "inverse"))
    assert np.all(np.abs(est.ame_ - exact) <= 5 * se)
    assert se.max() < 0.1 * np.abs(exact).max()


def test_units_survive_a_round_trip_and_name_the_submodel_inputs(tmp_path):
    units, ids = restriction(SOURCE, np.array([2]))
    masks = MaskSet.draw(N_POINTS, 10, DESIGN, 0, budget=7, units=units, ids=ids, stream=3)
    masks.save(tmp_path / "m.npz")
    loaded = MaskSet.load(tmp_path / "m.npz")
    assert (loaded.budget, loaded.n_units, loaded.unit) == (7, 3, "point")
    np.testing.assert_array_equal(point_masks(loaded), point_masks(masks))
    other = MaskSet.draw(
        N_POINTS, 10, DESIGN, 0, units=(u := restriction(SOURCE, np.array([3])))[0], ids=u[1]
    )
    assert loaded.units_digest() != other.units_digest()


def test_selection_union_and_budget_for_a_recall():
    selected = np.array([[True, False, False, True], [False, False, True, True]])
    np.testing.assert_array_equal(selected_sources(selected, np.array([7, 8, 9, 10])), [7, 9, 10])
    curve = pd.DataFrame({"n_submodels": [10, 20, 40, 80], "recall": [0.2, 0.5, 0.9, 1.0]})
    assert smallest_budget_reaching(curve, 0.9) == 40
    assert smallest_budget_reaching(curve, 0.95) == 80
    assert smallest_budget_reaching(curve.head(2), 0.9) is None


def test_synthetic_contributors_hold_the_poisons_and_clean_points():
    poisons = np.arange(0, 300, 10)
    source = synthetic_sources(1437, poisons, 100, 10, seed=0)
    sizes = np.bincount(source)
    assert len(sizes) == 100 and sizes.min() >= 14 and sizes.max() <= 15
    poisoned = np.unique(source[poisons])
    assert len(poisoned) == 10
    assert np.all(np.bincount(source[poisons], minlength=100)[poisoned] == 3)
    assert np.all(sizes[poisoned] > 3)  # poisoned contributors hold clean points too
    np.testing.assert_array_equal(source, synthetic_sources(1437, poisons, 100, 10, seed=0))
    with pytest.raises(ValueError, match="dataset.n_poisoned_sources"):
        synthetic_sources(1437, poisons, 100, 0, seed=0)
    with pytest.raises(ValueError, match="cannot hold 30 poisons"):
        synthetic_sources(40, poisons, 20, 10, seed=0)


# --- the workflow: both levels and the flat comparison in one Snakemake DAG ---------------------

HIERARCHY = {
    "dataset": {"n_sources": 100, "n_poisoned_sources": 10},
    "sampling": {"n_subsets": 100},
    "training": {"steps": 100, "subsets_per_job": 100},
    "estimation": {"n_folds": 5},
    "hierarchy": {"enabled": True, "source_subsets": 300, "flat_subsets": 100},
}


@pytest.mark.slow
def test_hierarchical_workflow_refines_inside_the_selected_sources(tmp_path):
    workspace = make_workspace(tmp_path / "ws", HIERARCHY)
    first = snakemake(workspace)
    for rule, jobs in (("sample", 3), ("estimate", 3), ("report", 1)):
        assert jobs_run(first.stdout + first.stderr, rule) == jobs, rule
    for level, packs in (("sources", 3), ("points", 1), ("flat", 1)):  # 100 subsets per pack
        assert (
            len(list((workspace / f"logs/{level}/train").glob("*/pack_*.benchmark.tsv"))) == packs
        )
    dataset_path = workspace / "data/prepared/dataset.npz"
    dataset = Dataset.load(dataset_path)
    sources = Estimates.load(workspace / "results/sources/estimates.npz")
    assert sources.unit == "source" and len(sources.ids) == 100
    chosen = selected_sources(sources.selected, sources.ids)
    assert len(chosen) > 0
    masks = MaskSet.load(workspace / "results/points/masks.npz")
    np.testing.assert_array_equal(masks.ids, np.flatnonzero(np.isin(dataset.source, chosen)))
    assert masks.budget == 100 and masks.point_mask(7)[masks.units < 0].all()
    (run,) = (workspace / "results/points/submodels").iterdir()
    assert run.name == f"{run_key(load(workspace / 'params.yaml'))}-{masks.units_digest()[:8]}"
    points = Estimates.load(workspace / "results/points/estimates.npz")
    np.testing.assert_array_equal(points.ids, masks.ids)
    scores = (workspace / "results/sources/scores.csv").read_text().splitlines()
    header = scores[0].split(",")
    assert header[:3] == ["query", "source", "ame"] and header[-1] == "selected"
    assert {"ame_debiased", "ci_low", "ci_high", "pvalues"} <= set(header)
    assert len(scores) == 1 + 3 * 100
    level_metrics = {
        level: json.loads((workspace / f"results/{level}/metrics.json").read_text())
        for level in ("sources", "points", "flat")
    }
    assert level_metrics["sources"]["n_units"] == 100 and level_metrics["sources"]["n_true"] == 10
    assert level_metrics["points"]["n_units_studied"] == len(masks.ids)
    assert level_metrics["flat"]["n_submodels"] == 100
    for level in ("sources", "points", "flat"):
        check_run(workspace / f"results/{level}/estimates.npz", dataset_path)
    report = (workspace / "results/report.md").read_text()
    assert "## Hierarchical study" in report and "300 + 100 = 400" in report
    assert (workspace / "results/plots/hierarchy_vs_flat.png").stat().st_size > 1000
    assert "Nothing to be done" in snakemake(workspace, "-n").stdout


@pytest.mark.slow
def test_no_selected_source_stops_with_a_one_line_error(tmp_path):
    workspace = make_workspace(
        tmp_path / "ws",
        {
            **HIERARCHY,
            "training": {"steps": 5, "subsets_per_job": 10},
            "hierarchy": {"enabled": True, "source_subsets": 20, "compare_flat": False},
        },
    )
    result = snakemake(workspace, check=False)
    assert result.returncode != 0
    log = (workspace / "logs/points/sample.log").read_text()
    assert log.startswith("ame sample: error: hierarchy: no source selected at FDR 0.1;")
    assert len(log.splitlines()) == 1
    assert not (workspace / "results/points/masks.npz").exists()


def test_hierarchy_needs_source_labels(tmp_path):
    workspace = make_workspace(tmp_path / "ws", {"hierarchy": {"enabled": True}})
    result = snakemake(workspace, "-n", check=False)
    assert result.returncode != 0
    assert "hierarchy.enabled: needs source labels; set dataset.n_sources" in result.stderr
