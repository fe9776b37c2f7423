"""The run configuration (``params.yaml``): loading, overlays and schema validation.

One schema (``params.schema.yaml`` in this package, linked from ``workflow/schemas/``) serves the
Snakemake workflow, the DVC stages, the command line and Python callers alike; it holds every
key's default (:func:`defaults`, :func:`complete`). A study's params file may hold
only what differs from a base: ``extends: ../../params.yaml`` names the base, and the study's
sections are merged into it key by key before the whole is validated.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from ame import scenarios
from ame.errors import UserError
from ame.pipeline.plan import design
from ame.pipeline.submodels import check_pack_size
from ame.training.recipe import training_problem

EXTENDS = "extends"


class ParamsError(UserError):
    """A parameter is missing, unknown or out of range; the message names the key."""


def schema() -> dict:
    """The schema, with the names ``dataset.name`` may take read from the scenario registry."""
    loaded = yaml.safe_load(
        resources.files("ame.pipeline").joinpath("params.schema.yaml").read_text()
    )
    loaded["properties"]["dataset"]["properties"]["name"]["enum"] = scenarios.names()
    return loaded


def defaults() -> dict:
    """The default of every key, shipped with the package (the schema's ``default``s; the
    repository's ``params.yaml`` is this, with comments, and a test keeps the two equal)."""
    return {
        section: {key: spec["default"] for key, spec in body["properties"].items()}
        for section, body in schema()["properties"].items()
    }


def complete(overrides: dict | None = None) -> dict:
    """A validated configuration from only what differs from the defaults (``{section: {key:
    value}}``), for use without a params file: a notebook, the run plan from Python."""
    return validate(merge(defaults(), overrides or {}))


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
    problem = scenarios.get(config).problem(config)
    if problem:
        raise ParamsError(problem)
    problem = training_problem(config["training"])
    if problem:
        raise ParamsError(f"training.{problem}")
    try:
        design(config)
    except ValueError as err:
        raise ParamsError(f"sampling.{err}") from err
    e = config["estimation"]
    if e["selection"] == "knockoff" and not e["knockoffs"]:
        raise ParamsError(
            "estimation.selection: knockoff needs knockoffs: true; choose bh or support instead"
        )
    if config["stages"]["enabled"]:
        if config["hierarchy"]["enabled"]:
            raise ParamsError(
                "stages.enabled: a hierarchy is already a two-stage design; enable one of the two"
            )
        if (config["sampling"]["n_subsets"] or 0) < 2:
            raise ParamsError(
                "stages.enabled: needs sampling.n_subsets >= 2, the budget the two stages share"
            )
    try:
        check_pack_size(config["training"]["subsets_per_job"])
    except ValueError as err:
        raise ParamsError(str(err)) from err
    return config


def read(path: str | Path) -> dict:
    """The params file as written, with its base merged in when it ``extends`` one."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(config, dict) or EXTENDS not in config:
        return config
    base_path = path.parent / str(config.pop(EXTENDS))
    if base_path.resolve() == path.resolve():
        raise ParamsError(f"{path}: {EXTENDS} names the file itself")
    return merge(read(base_path), config)


def merge(base: dict, overlay: dict) -> dict:
    """``base`` with the sections of ``overlay`` merged in key by key (one level deep)."""
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in overlay.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    return merged


def load(path: str | Path = "params.yaml") -> dict:
    """The validated configuration of a params file (overlays merged)."""
    return validate(read(path))
