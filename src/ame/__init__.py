"""ame: Average Marginal Effects of training data, from randomized subset experiments.

Public API: :func:`sample_subsets` (draw the subsets) and :class:`AMEEstimator` (estimate AMEs
from masks, p and behaviours). The estimator is imported lazily: the workflow imports this
package at start-up and should not pay for torch there.
"""

from ame.sampling import Design, sample_subsets

__all__ = ["AMEEstimator", "Design", "sample_subsets"]


def __getattr__(name):
    if name == "AMEEstimator":
        from ame.estimation import AMEEstimator

        return AMEEstimator
    raise AttributeError(f"module 'ame' has no attribute {name!r}")
