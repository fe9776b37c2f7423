"""The sample step: designs of p, random streams, and the masks of every subset."""

from ame.sampling.designs import DESIGNS, Design
from ame.sampling.masks import (
    MaskSet,
    budget_from_sparsity,
    pack_masks,
    sample_subset,
    sample_subsets,
    unpack_masks,
)
from ame.sampling.streams import STREAMS, subset_rng

__all__ = [
    "DESIGNS",
    "STREAMS",
    "Design",
    "MaskSet",
    "budget_from_sparsity",
    "pack_masks",
    "sample_subset",
    "sample_subsets",
    "subset_rng",
    "unpack_masks",
]
