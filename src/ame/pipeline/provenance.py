"""Fingerprints: what produced each submodel output, checked before anything is aggregated."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version

import numpy as np

from ame.params import digest, submodel_settings
from ame.sampling import MaskSet


def package_version() -> str:
    return version("ame")


def subset_seed(config: dict, index: int) -> int:
    """Training seed of subset ``index`` under the configured seed policy."""
    t = config["training"]
    return t["seed"] if t["seed_policy"] == "common" else t["seed"] + index


def submodel_fingerprint(config: dict, dataset_fp: str, masks: MaskSet, index: int) -> dict:
    """Everything a submodel's outputs depend on: data, mask bits, p, recipe and seed."""
    fingerprint = {
        "subset": int(index),
        "dataset": dataset_fp,
        "mask_sha256": hashlib.sha256(masks.packed[index].tobytes()).hexdigest(),
        "n_points": masks.n_points,
        "p": float(masks.p[index]),
        "settings": digest(submodel_settings(config)),
        "seed": subset_seed(config, index),
    }
    if masks.units is not None:  # which points each bit decides (sources, selected sources)
        fingerprint["units"] = masks.units_digest()
    return fingerprint


def encode(fingerprint: dict) -> np.ndarray:
    return np.array(json.dumps({**fingerprint, "ame_version": package_version()}, sort_keys=True))


def mismatch(recorded: dict, expected: dict) -> str | None:
    """Name the first field where a stored fingerprint disagrees with the current run."""
    for key, value in expected.items():
        if recorded.get(key) != value:
            return f"{key} is {recorded.get(key)!r}, expected {value!r}"
    return None


def run_fingerprint(config: dict, dataset_fp: str, masks: MaskSet, n_subsets: int) -> str:
    """One hash for a whole run: data, the masks actually used, and every setting."""
    h = hashlib.sha256()
    h.update(dataset_fp.encode())
    h.update(masks.packed[:n_subsets].tobytes())
    h.update(masks.p[:n_subsets].tobytes())
    h.update((masks.units_digest() or "").encode())
    h.update(json.dumps(config, sort_keys=True).encode())
    return h.hexdigest()
