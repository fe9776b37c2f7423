"""ame: Average Marginal Effects of training data, from randomized subset experiments.

Public API: :class:`AMEExperiment` (a training function and a budget in, effects with intervals
and their held-out validation out), and its parts: :func:`sample_subsets` (draw the subsets) and
:class:`AMEEstimator` (estimate AMEs from masks, p and behaviours). Both classes are imported
lazily: the workflow imports this package at start-up and should not pay for torch there.
"""

import os

# Same inputs, same bytes: Intel MKL (torch's BLAS on x86) may otherwise use fewer threads when
# the machine is busy, which reorders its sums and changes an estimate's last bits, so a rerun
# of an unchanged step would look like a change to everything downstream (DVC, Snakemake).
os.environ.setdefault("MKL_DYNAMIC", "FALSE")

from ame.sampling import Design, sample_subsets  # noqa: E402

__all__ = ["AMEEstimator", "AMEExperiment", "Design", "sample_subsets"]


def __getattr__(name):
    if name == "AMEEstimator":
        from ame.estimation import AMEEstimator

        return AMEEstimator
    if name == "AMEExperiment":
        from ame.experiment import AMEExperiment

        return AMEExperiment
    raise AttributeError(f"module 'ame' has no attribute {name!r}")
