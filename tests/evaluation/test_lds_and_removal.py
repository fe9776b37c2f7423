"""Held-out LDS and the counterfactual removal arms, on toy problems with known answers."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO

from ame.estimation.results import Estimates
from ame.evaluation.validation import (
    lds,
    lds_interval,
    plan_removal,
    predict,
    removal_queries,
    removal_table,
)
from ame.pipeline import params, provenance
from ame.pipeline.plan import level_plan
from ame.sampling import STREAMS, Design, MaskSet, sample_subsets


@pytest.fixture(scope="module")
def config():
    return params.load(REPO / "params.yaml")


def linear_game(n_subsets=800, n_units=60, noise=0.0, seed=0):
    """Masks of the grid design and a behaviour linear in them plus a strong p-dependent mean
    (effects are powers of two: distinct subset sums, no ties to break)."""
    masks, p = sample_subsets(n_units, n_subsets, seed=seed)
    rng = np.random.default_rng(seed)
    effects = np.zeros((2, n_units))
    effects[0, :5] = [0.5, 0.25, 0.125, 0.0625, 0.03125]
    effects[1, 10:13] = [-0.25, 0.125, 0.5]
    Y = 10 * p[:, None] + masks @ effects.T + noise * rng.standard_normal((n_subsets, 2))
    return masks, p, Y, effects


def test_lds_of_a_linear_behaviour_with_the_true_effects_is_one():
    masks, p, Y, effects = linear_game()
    scores, notes = lds(effects, masks, p, Y)
    np.testing.assert_allclose(scores, 1.0)
    assert notes == [None, None]
    noisy = linear_game(noise=0.05)
    scores, _ = lds(effects, *noisy[:3])
    assert np.all(scores > 0.9)
    low, high = lds_interval(effects, *noisy[:3], n_bootstrap=200, seed=0)
    assert low <= scores.mean() <= high and high - low < 0.05


def test_lds_is_computed_within_p_so_the_p_mean_cannot_inflate_it():
    """Effects on the wrong points score near 0 although the behaviour rises with p and so does
    any prediction summed over a bigger subset."""
    masks, p, Y, effects = linear_game()
    unrelated = np.abs(np.random.default_rng(1).standard_normal(effects.shape))
    unrelated[:, :13] = 0  # none on the points that matter
    pooled = np.corrcoef(masks @ unrelated[0], Y[:, 0])[0, 1]
    assert pooled > 0.8  # what a correlation over every p would report
    scores, _ = lds(unrelated, masks, p, Y)
    assert np.all(np.abs(scores) < 0.15)


def test_lds_of_a_behaviour_unrelated_to_the_masks_is_near_zero():
    masks, p, _, effects = linear_game(n_subsets=2000)
    Y = np.random.default_rng(5).standard_normal((2000, 2))
    scores, _ = lds(effects, masks, p, Y)
    assert np.all(np.abs(scores) < 0.1)


def test_prediction_is_the_sum_of_effects_centred_at_p():
    masks = np.array([[True, False, True], [False, False, False]])
    p = np.array([0.5, 0.25])
    ame = np.array([[1.0, 2.0, 4.0]])
    np.testing.assert_allclose(predict(ame, masks, p)[:, 0], [5 - 3.5, -0.25 * 7])


def test_undefined_lds_is_nan_with_its_reason():
    masks, p, Y, effects = linear_game(n_subsets=400)
    few, few_notes = lds(effects, masks[:2], p[:2], Y[:2])
    assert np.isnan(few).all() and few_notes[0].startswith("too few validation submodels")
    constant = Y.copy()
    constant[:, 1] = 0.3
    scores, notes = lds(effects, masks, p, constant)
    assert np.isfinite(scores[0]) and np.isnan(scores[1])
    assert notes[1] == "constant behaviour on the validation submodels"
    scores, notes = lds(np.zeros_like(effects), masks, p, Y)
    assert np.isnan(scores).all() and notes[0] == "constant prediction: no effect estimated"
    assert all(np.isnan(lds_interval(effects, masks, p, Y, n_bootstrap=0, seed=0)))


# --- the validation experiment in the run plan -----------------------------------------------


def test_validation_experiment_has_its_own_budget_and_stream(config):
    main = level_plan(config, "points", 1437)
    held_out = level_plan(config, "points", 1437, validation=True)
    assert held_out.budget == config["validation"]["n_subsets"] == 200
    assert held_out.stream == STREAMS["validation"] != main.stream
    share = copy.deepcopy(config)
    share["validation"]["n_subsets"] = None
    share["validation"]["fraction"] = 0.1
    assert level_plan(share, "points", 1437, validation=True).budget == round(0.1 * 1259)
    validation_streams = {STREAMS[k] for k in STREAMS if k.startswith("validation")}
    assert len(validation_streams) == 3 and len(set(STREAMS.values())) == len(STREAMS)


# --- removal arms --------------------------------------------------------------------------------


def toy(n_points=40, n_classes=3, source=None):
    y = np.arange(n_points) % n_classes
    return SimpleNamespace(n_points=n_points, y_train=y, source=source)


def estimates_of(ame, selected, unit="point", ids=None):
    ame = np.asarray(ame, dtype=float)
    Q, n = ame.shape
    return Estimates(
        ame,
        None,
        np.asarray(selected, dtype=bool),
        np.zeros(Q),
        [f"query_{q}" for q in range(Q - 1)] + ["aggregate"],
        "test",
        np.arange(n) if ids is None else ids,
        unit,
        list(range(Q - 1)) + [-1],
    )


def removal_config(config, replicates=3, queries=1, per_job=10, seed_policy="common"):
    c = copy.deepcopy(config)
    c["validation"].update(replicates=replicates, removal_queries=queries)
    c["training"].update(subsets_per_job=per_job, seed=7, seed_policy=seed_policy)
    c["sampling"]["k"] = 4
    return c


def test_removal_arms_use_exactly_the_intended_training_sets(config):
    n = 40
    ame = np.zeros((3, n))
    ame[2, [3, 9, 21]] = [0.5, 0.4, 0.3]
    ame[0, [1, 2, 5, 8, 13]] = [0.1, 0.5, 0.3, 0.2, 0.05]
    selected = np.zeros((3, n), dtype=bool)
    selected[2, [3, 9, 21]] = True  # the aggregate has a selection; query_0 has none
    c = removal_config(config)
    masks, plan = plan_removal(c, toy(n), estimates_of(ame, selected))
    bits = masks.masks
    assert [e["query"] for e in plan["queries"]] == ["query_0", "aggregate"]  # query_1 capped
    assert masks.budget == 3 + 2 * 6 and masks.n_subsets == 20  # padded to whole packs of 10
    assert bits[plan["rows_full"]].all()
    query_0, aggregate = plan["queries"]
    assert aggregate["rule"] == "selected" and aggregate["removed_units"] == [3, 9, 21]
    assert query_0["rule"] == "top_k" and query_0["removed_units"] == [2, 5, 8, 1]  # k = 4
    for entry in plan["queries"]:
        removed = np.ones(n, dtype=bool)
        removed[entry["removed_units"]] = False
        for row in entry["rows_removed"]:
            np.testing.assert_array_equal(bits[row], removed)
        randoms = [bits[row] for row in entry["rows_random"]]
        assert all((~r).sum() == entry["n_removed"] for r in randoms)
        assert len({r.tobytes() for r in randoms}) == 3  # a new random draw per replicate
    # replicate r trains its three arms with seed training.seed + r, whatever the seed policy
    seeds = masks.seeds
    assert seeds[plan["rows_full"]].tolist() == [7, 8, 9]
    assert seeds[aggregate["rows_removed"]].tolist() == [7, 8, 9]
    assert seeds[aggregate["rows_random"]].tolist() == [7, 8, 9]
    assert plan["seeds"] == seeds[: masks.budget].tolist()
    for row in (0, 1, aggregate["rows_random"][2]):
        fingerprint = provenance.submodel_fingerprint(c, "data", masks, row)
        assert fingerprint["seed"] == seeds[row]
    again, _ = plan_removal(c, toy(n), estimates_of(ame, selected))
    assert again.rows_digest() == masks.rows_digest()


def test_source_removal_takes_out_every_point_of_the_sources(config):
    source = np.repeat(np.arange(8), 5)
    ame = np.zeros((1, 8))
    ame[0, 6] = 1.0
    estimates = estimates_of(ame, ame > 0, unit="source")
    c = removal_config(config, replicates=1, queries=0)
    masks, plan = plan_removal(c, toy(40, source=source), estimates)
    (entry,) = plan["queries"]
    removed = masks.masks[entry["rows_removed"][0]]
    np.testing.assert_array_equal(~removed, source == 6)
    assert (~masks.masks[entry["rows_random"][0]]).sum() == 5  # one random source, whole


def test_a_removal_leaving_one_class_is_recorded_not_trained(config):
    ame = np.zeros((1, 6))
    data = toy(6, n_classes=2)  # classes 0 1 0 1 0 1: removing 1, 3, 5 would leave one class
    selected = np.array([[False, True, False, True, False, True]])
    c = removal_config(config, replicates=2)
    masks, plan = plan_removal(c, data, estimates_of(ame, selected))
    (entry,) = plan["queries"]
    assert entry["note"] == "the removal would leave 3 training points of a single class"
    assert entry["rows_removed"] == [] and masks.budget == 2
    assert removal_queries(estimates_of(np.zeros((3, 4)), np.zeros((3, 4))), 5) == [0, 1, 2]


def test_no_query_to_retrain_gives_an_empty_table(config):
    c = removal_config(config, replicates=1, queries=0)
    estimates = estimates_of(np.ones((2, 5)), np.ones((2, 5)))
    estimates.points = [0, 1]  # no aggregate, no individual query asked for
    masks, plan = plan_removal(c, toy(5), estimates)
    assert plan["queries"] == [] and masks.budget == 1  # only the full-data arm
    behaviours = SimpleNamespace(subsets=np.array([0]), Y=np.zeros((1, 2)))
    table = removal_table(plan, behaviours)
    assert table.empty and "removal_effect" in table.columns


def test_mask_artifact_keeps_its_training_seeds(tmp_path):
    masks = MaskSet.draw(30, 4, Design("grid"), seed=0)
    masks.seeds = np.array([5, 6, 7, 8])
    masks.save(tmp_path / "m.npz")
    loaded = MaskSet.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.seeds, [5, 6, 7, 8])
    assert loaded.head(2).seeds.tolist() == [5, 6]
    reseeded = MaskSet.load(tmp_path / "m.npz")
    reseeded.seeds = np.array([5, 6, 7, 9])
    assert reseeded.rows_digest() != loaded.rows_digest()  # another seed: another store
