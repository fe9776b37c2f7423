"""The evaluate step: metrics against ground truth, when the dataset has one."""
