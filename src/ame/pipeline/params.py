"""The run configuration (``params.yaml``): loading, schema validation and derived quantities.

One schema (``params.schema.yaml`` in this package, linked from ``workflow/schemas/``) serves the
Snakemake workflow, the DVC stages and the command line alike.
"""

from __future__ import annotations

import hashlib
import json
import math
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from ame.recipe import training_problem
from ame.sampling import Design, budget_from_sparsity

#: Settings that change a submodel's training data or recipe. Budget, packing and device do not:
#: changing them must never invalidate submodels that are already trained.
SUBMODEL_SETTINGS = {
    "dataset": None,
    "sampling": ("design", "p_values", "p", "eps", "beta_a", "beta_b", "seed"),
    "training": (
        "model",
        "hidden",
        "steps",
        "batch_size",
        "optimizer",
        "lr",
        "weight_decay",
        "seed_policy",
        "seed",
        "save_weights",
        "momentum",
        "nesterov",
        "lr_schedule",
        "label_smoothing",
        "augment",
        "precision",
    ),
}
INDEX_DIGITS = 6  # subset files are named subset_000123: up to a million subsets


class ParamsError(ValueError):
    """A parameter is missing, unknown or out of range; the message names the key."""


def schema() -> dict:
    return yaml.safe_load(resources.files("ame").joinpath("params.schema.yaml").read_text())


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f"{key}." if error.absolute_path else ""
        return f"unknown key {where}{extra[0]}; allowed keys: {', '.join(allowed)}"
    if error.validator == "required":
        return f"{key}: {error.message}"
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not allowed; choose one of {error.validator_value}"
    return f"{key}: {error.message}"


def validate(config: dict) -> dict:
    """Check ``config`` against the schema and cross-key rules; raise ParamsError on a fault."""
    if not isinstance(config, dict):
        raise ParamsError("params: expected a mapping of sections at the top level")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        raise ParamsError(_describe(errors[0]))
    name = config["dataset"]["name"]
    if name in ("npz", "cifar10") and not config["dataset"]["path"]:
        raise ParamsError(f"dataset.path: required when dataset.name is {name}")
    problem = training_problem(config["training"])
    if problem:
        raise ParamsError(f"training.{problem}")
    try:
        design(config)
    except ValueError as err:
        raise ParamsError(f"sampling.{err}") from err
    if name == "npz" and config["dataset"]["n_sources"] is not None:
        raise ParamsError(
            "dataset.n_sources: npz files carry their own per-point `source` array; set it to null"
        )
    if config["hierarchy"]["enabled"] and name != "npz" and config["dataset"]["n_sources"] is None:
        raise ParamsError("hierarchy.enabled: needs source labels; set dataset.n_sources")
    d = config["dataset"]
    if name != "npz" and d["n_sources"] is not None:
        most = min(d["n_sources"], d["n_poisons"])
        if d["n_poisoned_sources"] > most:
            raise ParamsError(
                f"dataset.n_poisoned_sources: {d['n_poisoned_sources']} exceeds "
                f"min(n_sources, n_poisons) = {most}"
            )
    return config


def load(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
    return validate(config)


def design(config: dict) -> Design:
    s = config["sampling"]
    return Design(
        name=s["design"],
        p_values=tuple(s["p_values"]),
        p=s["p"],
        eps=s["eps"],
        beta_a=s["beta_a"],
        beta_b=s["beta_b"],
    )


def n_subsets(config: dict, n_points: int) -> int:
    """The budget m: ``sampling.n_subsets``, or the paper's rule from ``c`` and ``k``."""
    s = config["sampling"]
    if s["n_subsets"] is not None:
        return int(s["n_subsets"])
    return budget_from_sparsity(n_points, s["c"], s["k"])


def source_budget(config: dict, n_sources: int) -> int:
    """Budget of the source level: ``hierarchy.source_subsets``, or c * k_sources * log2 S."""
    h = config["hierarchy"]
    if h["source_subsets"] is not None:
        return int(h["source_subsets"])
    return budget_from_sparsity(n_sources, config["sampling"]["c"], h["k_sources"])


def flat_budget(config: dict, n_points: int) -> int:
    """Budget of the flat comparison run: ``hierarchy.flat_subsets``, or the flat rule."""
    h = config["hierarchy"]
    return int(h["flat_subsets"]) if h["flat_subsets"] is not None else n_subsets(config, n_points)


def whole_jobs(config: dict, budget: int) -> int:
    """Subsets actually trained: a budget rounded up to whole jobs of ``subsets_per_job``."""
    per_job = config["training"]["subsets_per_job"]
    return math.ceil(budget / per_job) * per_job


def submodel_settings(config: dict) -> dict:
    """The part of the configuration that determines every submodel's training."""
    picked = {}
    for section, keys in SUBMODEL_SETTINGS.items():
        values = config[section]
        picked[section] = dict(values) if keys is None else {k: values[k] for k in keys}
    return picked


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def run_key(config: dict) -> str:
    """Short key naming the submodel directory: a settings change means new, missing files.

    Snakemake only notices a params change through its metadata, which a collaborator who ran
    ``dvc pull`` does not have; a key in the path makes the change visible as missing outputs.
    """
    return digest(submodel_settings(config))[:12]
