import numpy as np
import pytest
from scipy import integrate, special

from ame.estimation.semivalues import (
    banzhaf_weights,
    estimand_name,
    estimand_weights,
    exact_semivalue,
    shapley_weights,
)
from ame.sampling import Design

DESIGNS = [
    Design("grid"),
    Design("fixed", p=0.3),
    Design("uniform"),
    Design("shapley", eps=0.05),
    Design("beta", beta_a=2.0, beta_b=0.5),
]


def threshold_game(masks):
    return (masks[:, :3].sum(1) >= 2).astype(float)


def total_mass(weights):
    n = len(weights)
    return sum(special.comb(n - 1, s) * w for s, w in enumerate(weights))


def test_threshold_game_shapley_and_banzhaf():
    n = 7
    phi = exact_semivalue(threshold_game, n, shapley_weights(n))
    np.testing.assert_allclose(phi, [1 / 3] * 3 + [0] * 4, atol=1e-12)
    # Banzhaf: a key player is pivotal when exactly one of the other two is present.
    np.testing.assert_allclose(
        exact_semivalue(threshold_game, n, banzhaf_weights(n)), [0.5] * 3 + [0] * 4
    )


def test_exact_semivalue_keeps_query_axis():
    n = 5

    def two(masks):
        return np.stack([threshold_game(masks), masks.sum(1).astype(float)], 1)

    values = exact_semivalue(two, n, shapley_weights(n))
    assert values.shape == (2, n)
    np.testing.assert_allclose(values[1], 1.0)  # additive game: every point adds exactly 1


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.name)
@pytest.mark.parametrize("featurization", ["inverse", "centered"])
def test_weights_are_probability_semivalues(design, featurization):
    weights = estimand_weights(design, 9, featurization)
    assert total_mass(weights) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.name)
@pytest.mark.parametrize("featurization", ["inverse", "centered"])
def test_weights_match_the_sampler(design, featurization):
    """w(s) = E[p^s (1-p)^(N-1-s)] under the sampler's p, tilted by p(1-p) for centered features."""
    n, draws = 6, 200_000
    rng = np.random.default_rng(0)
    p = np.array([design.draw_p(rng) for _ in range(draws)])
    tilt = p * (1 - p) if featurization == "centered" else np.ones_like(p)
    s = np.arange(n)
    terms = tilt[:, None] * p[:, None] ** s * (1 - p[:, None]) ** (n - 1 - s)
    mc, mc_se = terms.mean(0) / tilt.mean(), terms.std(0) / tilt.mean() / np.sqrt(draws)
    assert np.all(np.abs(estimand_weights(design, n, featurization) - mc) <= 5 * mc_se + 1e-12)


def test_closed_forms():
    n = 10
    np.testing.assert_allclose(
        estimand_weights(Design("uniform"), n, "inverse"), shapley_weights(n)
    )
    np.testing.assert_allclose(
        estimand_weights(Design("fixed", p=0.5), n, "inverse"), banzhaf_weights(n)
    )
    near = estimand_weights(Design("shapley", eps=1e-6), n, "centered")
    np.testing.assert_allclose(near, shapley_weights(n), rtol=1e-4)
    # shapley design, inverse features: density 1/(p(1-p)) on [eps, 1-eps]; interior s by betainc
    eps, s = 0.1, np.arange(1, n - 1)
    closed = np.exp(special.betaln(s, n - 1 - s)) * (
        special.betainc(s, n - 1 - s, 1 - eps) - special.betainc(s, n - 1 - s, eps)
    )
    weights = estimand_weights(Design("shapley", eps=eps), n, "inverse")
    np.testing.assert_allclose(weights[1:-1], closed / (2 * np.log((1 - eps) / eps)), rtol=1e-8)
    quad = integrate.quad(lambda p: (1 - p) ** (n - 2) / p, eps, 1 - eps)[0]
    assert weights[0] == pytest.approx(quad / (2 * np.log((1 - eps) / eps)))


def test_names():
    assert (
        estimand_name(Design("shapley", eps=0.01), "centered")
        == "Shapley value (p uniform on [0.01, 0.99])"
    )
    assert estimand_name(Design("uniform"), "centered") == "Beta(2, 2) semivalue"
    assert estimand_name(Design("beta", beta_a=2, beta_b=3), "centered") == "Beta(3, 4) semivalue"
    assert estimand_name(Design("fixed", p=0.5), "inverse") == "Banzhaf value (p = 0.5)"
    assert "0.2, 0.4, 0.6, 0.8" in estimand_name(Design("grid"), "inverse")
    assert "sampled p" in estimand_name(None, "inverse")


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_points"):
        exact_semivalue(threshold_game, 20, np.ones(20))
    with pytest.raises(ValueError, match="weights"):
        exact_semivalue(threshold_game, 4, np.ones(3))
    with pytest.raises(ValueError, match="utility"):
        exact_semivalue(lambda m: np.ones(3), 4, np.ones(4))
    with pytest.raises(ValueError, match="featurization"):
        estimand_weights(Design("grid"), 4, "auto")
