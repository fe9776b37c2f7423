"""The estimate step: featurization, the batched CV-LASSO solver, knockoffs and the estimator."""

from ame.estimation.estimator import AMEEstimator

__all__ = ["AMEEstimator"]
