"""Designs: the distribution of a subset's inclusion probability p, which sets the estimand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ame.errors import UserError

DESIGNS = ("grid", "fixed", "uniform", "shapley", "beta")
DISCRETE_DESIGNS = ("grid", "fixed")
DEFAULT_GRID = (0.2, 0.4, 0.6, 0.8)


@dataclass(frozen=True)
class Design:
    """A distribution over the inclusion probability p of a subset.

    Parameters
    ----------
    name : {"grid", "fixed", "uniform", "shapley", "beta"}
        ``grid``: p uniform on ``p_values``; ``fixed``: p = ``p`` (0.5 gives Banzhaf);
        ``uniform``: p ~ U(0, 1); ``shapley``: density proportional to 1/(p(1-p)) on
        [eps, 1-eps] (uniform in logit space); ``beta``: p ~ Beta(beta_a, beta_b).
    """

    name: str = "grid"
    p_values: tuple[float, ...] = DEFAULT_GRID
    p: float = 0.5
    eps: float = 0.01
    beta_a: float = 1.0
    beta_b: float = 1.0

    def __post_init__(self):
        if self.name not in DESIGNS:
            raise UserError(f"design: unknown design {self.name!r}; choose one of {DESIGNS}")
        if self.name == "grid":
            if not self.p_values or any(not 0.0 < v < 1.0 for v in self.p_values):
                raise UserError(f"p_values: every value must lie in (0, 1), got {self.p_values}")
        if self.name == "fixed" and not 0.0 < self.p < 1.0:
            raise UserError(f"p: must lie in (0, 1), got {self.p}")
        if self.name == "shapley" and not 0.0 < self.eps < 0.5:
            raise UserError(f"eps: must lie in (0, 0.5), got {self.eps}")
        if self.name == "beta" and not (self.beta_a > 0 and self.beta_b > 0):
            raise UserError(f"beta_a, beta_b: must be positive, got {self.beta_a}, {self.beta_b}")

    @property
    def is_discrete(self) -> bool:
        return self.name in DISCRETE_DESIGNS

    def draw_p(self, rng: np.random.Generator) -> float:
        if self.name == "grid":
            return float(self.p_values[rng.integers(len(self.p_values))])
        if self.name == "fixed":
            return float(self.p)
        if self.name == "uniform":
            return float(rng.uniform(0.0, 1.0))
        if self.name == "shapley":
            lo, hi = _logit(self.eps), _logit(1.0 - self.eps)
            return float(1.0 / (1.0 + math.exp(-rng.uniform(lo, hi))))
        return float(rng.beta(self.beta_a, self.beta_b))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "p_values": list(self.p_values),
            "p": self.p,
            "eps": self.eps,
            "beta_a": self.beta_a,
            "beta_b": self.beta_b,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Design:
        return cls(
            name=d.get("name", d.get("design", "grid")),
            p_values=tuple(d.get("p_values", DEFAULT_GRID)),
            p=float(d.get("p", 0.5)),
            eps=float(d.get("eps", 0.01)),
            beta_a=float(d.get("beta_a", 1.0)),
            beta_b=float(d.get("beta_b", 1.0)),
        )


def _logit(x: float) -> float:
    return math.log(x / (1.0 - x))
