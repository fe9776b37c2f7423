"""The estimate step: the design, the batched CV-LASSO solver, intervals, knockoffs and BH."""

from ame.estimation.estimator import AMEEstimator

__all__ = ["AMEEstimator"]
