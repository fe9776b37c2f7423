"""The one-call Python API: planted effects found, the run plan's subsets, a cache that resumes
and refuses what is not its own, and bad behaviours stopped with the subset named."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from quality import assert_finds_the_planted_units

import ame
from ame.errors import UserError
from ame.experiment import TrainFunctionError
from ame.pipeline import params
from ame.sampling import STREAMS

N_POINTS = 60
EFFECTS = np.zeros(N_POINTS)
EFFECTS[:5] = 1.0  # points 0-4 raise every query by 1


def train_fn(indices, seed):
    """Three queries: the summed planted effects of the subset plus seeded noise."""
    return EFFECTS[indices].sum() + np.random.default_rng(seed).normal(0, 0.3, size=3)


SETTINGS = {"training": {"seed_policy": "per_subset"}}


def experiment(**kwargs) -> ame.AMEExperiment:
    return ame.AMEExperiment(**{"budget": 120, "params": SETTINGS, "progress": False, **kwargs})


@pytest.fixture(scope="module")
def fitted() -> ame.AMEExperiment:
    return experiment(validation=60).fit(train_fn, N_POINTS)


def test_the_planted_points_are_found_and_the_effects_validate_on_held_out_subsets(fitted):
    assert fitted.ame_.shape == (3, N_POINTS)
    assert_finds_the_planted_units(fitted.estimates_, np.arange(5))
    assert fitted.lds_.shape == (3,) and fitted.lds_mean_ > 0.6
    low, high = fitted.lds_interval_
    assert low < fitted.lds_mean_ < high
    top = fitted.top(5)
    assert set(top[top["query"] == "query 0"]["point"]) == set(range(5))
    assert (top["ci_low"] < top["ame_debiased"]).all()
    assert (top["ame_debiased"] < top["ci_high"]).all()


def test_the_subsets_are_the_run_plans_and_training_seeds_follow_the_seed_policy(fitted):
    config = params.complete({"sampling": {"n_subsets": 120}, **SETTINGS})
    from ame.pipeline.plan import experiment as planned

    drawn = planned(config, "points", "main", N_POINTS).draw(config, N_POINTS)
    np.testing.assert_array_equal(fitted.masks_.packed, drawn.packed[:120])
    seen = []
    experiment(budget=20).fit(lambda idx, seed: seen.append(seed) or 0.0, N_POINTS)
    assert sorted(seen) == list(range(20))  # training.seed 0 + subset index


def test_parallel_calls_give_the_same_answer(fitted):
    again = experiment(n_jobs=2).fit(train_fn, N_POINTS)
    np.testing.assert_array_equal(again.ame_, fitted.ame_)


def test_a_larger_budget_reuses_the_cache_and_a_foreign_cache_is_refused(tmp_path):
    calls = []

    def counted(indices, seed):
        calls.append(seed)
        return train_fn(indices, seed)

    small = experiment(budget=40, cache_dir=tmp_path, function_id="planted-v1").fit(counted, 60)
    assert len(calls) == 40
    calls.clear()
    experiment(budget=40, cache_dir=tmp_path, function_id="planted-v1").fit(counted, 60)
    assert calls == []
    larger = experiment(budget=60, cache_dir=tmp_path, function_id="planted-v1").fit(counted, 60)
    assert sorted(calls) == list(range(40, 60))
    np.testing.assert_array_equal(larger.masks_.packed[:40], small.masks_.packed)
    for change, key in (
        ({"random_state": 1}, "seed"),
        ({"design": "fixed"}, "design"),
        ({"function_id": "planted-v2"}, "function"),
    ):
        with pytest.raises(UserError, match=f"made for another {key} "):
            experiment(
                budget=40, cache_dir=tmp_path, **{"function_id": "planted-v1", **change}
            ).fit(counted, 60)
    with pytest.raises(UserError, match="made for another n_points "):
        experiment(budget=40, cache_dir=tmp_path, function_id="planted-v1").fit(counted, 61)


KILLED = """
import sys, time
import numpy as np
sys.path.insert(0, {tests!r})
import ame
from test_experiment import SETTINGS, train_fn

def slow(indices, seed):
    time.sleep(0.05)
    return train_fn(indices, seed)

ame.AMEExperiment(budget=120, params=SETTINGS, cache_dir={cache!r}, function_id="planted-v1",
                  progress=False).fit(slow, 60)
"""


def test_a_killed_call_resumes_from_what_finished_with_the_same_result(tmp_path, fitted):
    cache = tmp_path / "cache"
    script = KILLED.format(tests=str(__import__("pathlib").Path(__file__).parent), cache=str(cache))
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while len(list(cache.glob("main/*.npz"))) < 15 and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = len(list(cache.glob("main/*.npz")))
    assert 15 <= finished < 120
    calls = []

    def counted(indices, seed):
        calls.append(seed)
        return train_fn(indices, seed)

    resumed = experiment(cache_dir=cache, function_id="planted-v1").fit(counted, N_POINTS)
    assert len(calls) == 120 - finished
    np.testing.assert_array_equal(resumed.ame_, fitted.ame_)


def test_a_raising_function_names_the_subset_and_keeps_the_others(tmp_path):
    def fails_on_7(indices, seed):
        if seed == 7:
            raise ValueError("out of memory")
        return train_fn(indices, seed)

    raised = r"raised on subset 7 \(seed 7\): ValueError: out of memory; 1 subset\(s\) failed"
    with pytest.raises(TrainFunctionError, match=raised + ", the other 39"):
        experiment(budget=40, cache_dir=tmp_path, function_id="f").fit(fails_on_7, N_POINTS)
    assert len(list(tmp_path.glob("main/*.npz"))) == 39


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (lambda seed: np.nan if seed == 3 else 1.0, "non-finite behaviours for subset 3"),
        (lambda seed: [1.0, 2.0] if seed == 3 else 1.0, "2 behaviours for subset 3; the others"),
    ],
)
def test_a_bad_behaviour_is_one_line_naming_the_subset(returned, message):
    with pytest.raises(TrainFunctionError, match=message):
        experiment(budget=10).fit(lambda idx, seed: returned(seed), N_POINTS)


FLIPPED = np.arange(10)  # the own labels of points 0-9 are wrong: predicted with probability 0.1


def own_label_fn(indices, seed):
    """Behaviours as ``train_fn``; own-label probabilities of the 60 training points (flipped
    ones low) and of 200 calibration points (clean), each with seeded noise."""
    rng = np.random.default_rng(seed)
    clean = 0.8 + 0.1 * rng.random(N_POINTS + 200)
    clean[FLIPPED] = 0.1 + 0.1 * rng.random(FLIPPED.size)
    return train_fn(indices, seed), clean


def test_mislabels_come_from_the_same_subsets_and_keep_their_cache(tmp_path):
    run = experiment(mislabels=True, cache_dir=tmp_path).fit(own_label_fn, N_POINTS)
    found = run.mislabels_
    assert found.value_.shape == (N_POINTS,) and found.calibration_values_.shape == (200,)
    assert sorted(found.relabel_order_) == FLIPPED.tolist()
    assert_finds_the_planted_units(run.estimates_, np.arange(5))  # the AMEs of the same call
    again = experiment(mislabels=True, cache_dir=tmp_path).fit(own_label_fn, N_POINTS)
    np.testing.assert_array_equal(again.mislabels_.value_, found.value_)
    with pytest.raises(TrainFunctionError, match="returns a pair"):
        experiment(budget=10, mislabels=True).fit(train_fn, N_POINTS)
    with pytest.raises(TrainFunctionError, match="the calibration points' scores must follow"):
        short = experiment(budget=10, mislabels=True)
        short.fit(lambda idx, seed: (1.0, np.ones(N_POINTS)), N_POINTS)


def two_stages(others: str, **kwargs) -> ame.AMEExperiment:
    """240 subsets: 120 screen all 60 points, 120 vary the 15 candidates (BH: five planted
    points are too few for Knockoff+ at q = 0.1, which needs ten)."""
    stages = {"enabled": True, "candidates": 0.25, "others": others}
    settings = {**SETTINGS, "stages": stages, "estimation": {"selection": "bh"}}
    return experiment(budget=240, params=settings, **kwargs)


@pytest.mark.parametrize(("others", "estimand"), [("sampled", "design"), ("in", "others_in")])
def test_two_stages_estimate_the_screens_candidates_on_fresh_subsets(others, estimand, tmp_path):
    cached = {"validation": 60, "cache_dir": tmp_path, "function_id": "planted-v1"}
    run = two_stages(others, **cached).fit(train_fn, N_POINTS)
    assert run.screen_masks_.n_subsets == run.masks_.n_subsets == 120
    assert set(range(5)) <= set(run.candidates_) and len(run.candidates_) == 15
    assert run.estimates_.ids.tolist() == run.candidates_.tolist()
    assert run.estimates_.estimand == estimand and run.screen_.estimand == "design"
    # the screen is the plain run's first subsets; the second stage's are fresh
    plain = experiment(budget=120).fit(train_fn, N_POINTS)
    np.testing.assert_array_equal(run.screen_masks_.packed, plain.masks_.packed)
    np.testing.assert_array_equal(run.screen_.ame, plain.estimates_.ame)
    assert not np.array_equal(run.masks_.point_mask(0), plain.masks_.point_mask(0))
    others_in = run.masks_.units is not None
    assert others_in == (others == "in")
    if others_in:  # every non-candidate is in every subset
        rest = np.setdiff1d(np.arange(N_POINTS), run.candidates_)
        assert all(run.masks_.point_mask(i)[rest].all() for i in range(5))
    # effects of the candidates only: NaN elsewhere, the planted ones found and selected
    assert np.isnan(np.delete(run.ame_, run.candidates_, axis=1)).all()
    assert_finds_the_planted_units(run.estimates_, np.flatnonzero(run.candidates_ < 5))
    assert run.selected_[:, :5].mean() > 0.8 and run.selected_[:, 5:].sum() <= 3  # of 18
    # validated on held-out subsets of the second stage's design
    assert run.validation_masks_.stream == STREAMS["validation_candidates"]
    assert (run.validation_masks_.units is not None) == others_in
    assert run.lds_mean_ > 0.6
    # a rerun reads every evaluation from the cache
    calls = []
    two_stages(others, **cached).fit(
        lambda idx, seed: calls.append(seed) or train_fn(idx, seed), N_POINTS
    )
    assert not calls


def test_bad_arguments_are_one_line_naming_them():
    with pytest.raises(UserError, match="n_points: expected an integer >= 2"):
        experiment().fit(train_fn, 1)
    with pytest.raises(UserError, match="train_fn: expected a function"):
        experiment().fit("train.py", N_POINTS)
    with pytest.raises(params.ParamsError, match="sampling.n_subsets"):
        experiment(budget=0).fit(train_fn, N_POINTS)


def test_the_readme_quickstart_runs_as_printed_and_says_what_it_prints(tmp_path):
    """The README's block, run in a fresh interpreter: the figures the README quotes."""
    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## From Python, in one call") :]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 15
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "held-out LDS 0.57 (95% CI 0.42 to 0.71)"
    top = [line.split() for line in lines[1:-1]]  # query, 0, point, ame, ..., selected
    points = [int(row[3]) for row in top]
    assert len(top) == 8 and [p for p in points if p < 20] == [0, 4, 2, 18]
    assert sum(row[-1] == "True" for row in top) == 7
