"""Fingerprints: what produced each submodel, checked before anything is aggregated.

Which settings change a submodel is decided by exclusion: every key of the ``dataset``,
``sampling`` and ``training`` sections counts, except the few listed in ``NOT_SUBMODEL``. A new
key is therefore part of the run key unless someone argues it out, never silently ignored
(``tests/pipeline/test_provenance.py`` checks that every excluded key exists).
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version

from ame import scenarios
from ame.pipeline.plan import training_seed
from ame.sampling import MaskSet

SUBMODEL_SECTIONS = ("dataset", "sampling", "training")
#: Settings that never change what a submodel is: the budget, how subsets are packed into jobs,
#: and where and how fast it trains (docs/explanation/reproducibility.md: GPU reruns may differ
#: in the last bits whatever these say; vectorized training gives the same models up to rounding).
NOT_SUBMODEL = {
    "sampling": ("n_subsets", "c", "k"),
    "training": ("device", "deterministic", "vectorize", "subsets_per_job"),
}
#: Switches that add outputs to every submodel file: they count when on only, so that the runs
#: trained before they existed keep their keys (and their submodels).
ONLY_WHEN_ON = {"training": ("training_points",)}


def package_version() -> str:
    return version("ame")


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def submodel_settings(config: dict) -> dict:
    """The part of the configuration that determines every submodel's training."""
    settings = {
        section: {
            key: value
            for key, value in config[section].items()
            if key not in NOT_SUBMODEL.get(section, ())
            and (value or key not in ONLY_WHEN_ON.get(section, ()))
        }
        for section in SUBMODEL_SECTIONS
    }
    settings["dataset"] = scenarios.get(config).submodel_settings(settings["dataset"])
    return settings


def run_key(config: dict) -> str:
    """Short key naming the submodel directory: a settings change means new, missing files.

    Snakemake only notices a params change through its metadata, which a collaborator who ran
    ``dvc pull`` does not have; a key in the path makes the change visible as missing outputs.
    """
    return digest(submodel_settings(config))[:12]


def submodel_fingerprint(config: dict, dataset_fp: str, masks: MaskSet, index: int) -> dict:
    """Everything a submodel's outputs depend on: data, mask bits, p, recipe and seed."""
    fingerprint = {
        "subset": int(index),
        "dataset": dataset_fp,
        "mask_sha256": masks.row_digest(index),
        "n_points": masks.n_points,
        "p": float(masks.p[index]),
        "settings": digest(submodel_settings(config)),
        "seed": training_seed(config, masks, index),
    }
    if masks.units is not None:  # which points each bit decides (sources, selected sources)
        fingerprint["units"] = masks.units_digest()
    return fingerprint


def submodel_record(fingerprint: dict, status: str, attempts: int, trained_seed: int) -> dict:
    """What a submodel file records: its fingerprint, how training went, and the package version."""
    return {
        **fingerprint,
        "status": status,
        "attempts": attempts,
        "trained_seed": trained_seed,
        "ame_version": package_version(),
    }


def run_fingerprint(config: dict, dataset_fp: str, masks: MaskSet, n_subsets: int) -> str:
    """One hash for a whole run: data, the masks actually used, and every setting."""
    h = hashlib.sha256()
    h.update(dataset_fp.encode())
    h.update(masks.packed[:n_subsets].tobytes())
    h.update(masks.p[:n_subsets].tobytes())
    h.update((masks.units_digest() or "").encode())
    h.update(json.dumps(config, sort_keys=True).encode())
    return h.hexdigest()
