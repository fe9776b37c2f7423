"""Data formats: the prepared :class:`Dataset` and one module per scenario's data (``digits``,
``npz``, ``cifar10``, ``plugin``). Which scenario a study runs, and what trains it, is
``ame.scenarios``' business: nothing here imports the training code.
"""

from ame.data.dataset import Dataset

__all__ = ["Dataset"]
