"""The estimate step: the design, the batched CV-LASSO solver, intervals, knockoffs and BH.

:class:`AMEEstimator` (torch) is imported on first use: the estimate artifacts
(``ame.estimation.results``) are read by verbs that never fit."""

__all__ = ["AMEEstimator"]


def __getattr__(name):
    if name == "AMEEstimator":
        from ame.estimation.estimator import AMEEstimator

        return AMEEstimator
    raise AttributeError(f"module 'ame.estimation' has no attribute {name!r}")
