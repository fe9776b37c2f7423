"""The user's own experiment: a plug-in module that describes the data and trains on a subset.

A plug-in is a Python module named by ``dataset.plugin``: a file (``path/to/file.py``, relative
to the study directory, where Snakemake and DVC run) or an importable module (``pkg.module``). It
provides two functions, NumPy in and out (docs/tutorials/plugin.md):

``describe(options) -> dict``
    ``n_points`` (int), ``queries`` (one name per query point), ``n_outputs`` (numbers per query
    that ``train`` returns) and, optionally, ``classes`` (one class per query, for the
    probability and margin behaviours), ``sources`` (one label per training point),
    ``ground_truth`` (indices of the points known to matter: evaluation only), ``labels`` (one
    integer label per training point, for display), ``train_display`` and ``query_display``
    (images of shape (n, H, W) or (n, C, H, W), or one string per point, for the report).
    ``training_outputs: True`` says that ``train`` also returns the outputs on every training
    point; with ``labels`` (each training point's class) and ``classes`` of queries that are
    held-out points with their true classes (the calibration points), the workflow's
    ``training.training_points`` gives out-of-subset values and a relabel list at the FDR
    (docs/how-to/mislabels.md).
``train(indices, seed, device, options) -> array of shape (n_queries, n_outputs)``
    Train on the training points ``indices`` (int64 array) and return the outputs on every query;
    with ``training_outputs``, a pair: those and the outputs on every training point,
    ``(n_points, n_outputs)``.
``train_batch(list_of_indices, seeds, device, options) -> list of arrays`` (optional)
    Several subsets in one call, for plug-ins that vectorize.

``options`` is ``dataset.options`` as written in the params. The plug-in's source file and the
options are part of the submodel run key: editing either means new submodels, never stale ones.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from ame.data.dataset import Dataset
from ame.errors import UserError

REQUIRED = ("n_points", "queries", "n_outputs")
OPTIONAL = (
    "classes",
    "sources",
    "ground_truth",
    "labels",
    "train_display",
    "query_display",
    "training_outputs",
)


class PluginError(UserError):
    """The plug-in cannot be loaded, or broke its contract; the message names it."""


def _module_path(spec: str) -> Path | None:
    return Path(spec) if spec.endswith(".py") else None


def load(spec: str):
    """Import the plug-in module named by ``dataset.plugin`` (a ``.py`` file or a module name)."""
    path = _module_path(spec)
    try:
        if path is not None:
            if not path.is_file():
                raise PluginError(f"plugin {spec}: file not found (relative to {Path.cwd()})")
            name = f"ame_plugin_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
            if name in sys.modules:
                return sys.modules[name]
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        else:
            module = importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as err:  # the user's code failed to import: say so in one line
        raise PluginError(
            f"plugin {spec}: cannot be imported ({type(err).__name__}: {err})"
        ) from err
    for function in ("describe", "train"):
        if not callable(getattr(module, function, None)):
            raise PluginError(f"plugin {spec}: has no function {function}()")
    return module


def source_digest(spec: str) -> str:
    """Content hash of the plug-in's source file: editing it changes the run key."""
    path = _module_path(spec)
    if path is None:
        found = importlib.util.find_spec(spec)
        path = Path(found.origin) if found and found.origin else None
    if path is None or not path.is_file():
        raise PluginError(f"plugin {spec}: source file not found")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def description(d: dict) -> dict:
    """The checked output of the plug-in's ``describe``."""
    spec = d["plugin"]
    try:
        raw = load(spec).describe(d["options"])
    except PluginError:
        raise
    except Exception as err:
        raise PluginError(f"plugin {spec}: describe() raised {type(err).__name__}: {err}") from err
    if not isinstance(raw, dict):
        raise PluginError(f"plugin {spec}: describe() must return a dict, got {type(raw).__name__}")
    missing = [key for key in REQUIRED if key not in raw]
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        problem = f"lacks {missing}" if missing else f"has unknown keys {unknown}"
        raise PluginError(f"plugin {spec}: describe() {problem}; expected {list(REQUIRED)}")
    n, queries = raw["n_points"], list(raw["queries"])
    if not isinstance(n, int | np.integer) or n < 2:
        raise PluginError(f"plugin {spec}: describe() n_points must be an integer >= 2, got {n!r}")
    if not queries:
        raise PluginError(f"plugin {spec}: describe() returned no queries")
    if not isinstance(raw["n_outputs"], int | np.integer) or raw["n_outputs"] < 1:
        raise PluginError(f"plugin {spec}: describe() n_outputs must be a positive integer")
    out = {
        "n_points": int(n),
        "queries": [str(q) for q in queries],
        "n_outputs": int(raw["n_outputs"]),
    }
    sizes = {"classes": len(queries), "sources": n, "labels": n, "train_display": n,
             "query_display": len(queries)}  # fmt: skip
    for key, size in sizes.items():
        if raw.get(key) is None:
            continue
        value = np.asarray(raw[key])
        if len(value) != size:
            raise PluginError(
                f"plugin {spec}: describe() {key} has {len(value)} entries, expected {size}"
            )
        out[key] = value
    if "classes" in out and not (
        np.issubdtype(out["classes"].dtype, np.integer)
        and (0 <= out["classes"]).all()
        and (out["classes"] < out["n_outputs"]).all()
    ):
        raise PluginError(f"plugin {spec}: describe() classes must be integers in [0, n_outputs)")
    if raw.get("training_outputs"):
        labels = out.get("labels")
        if (
            labels is None
            or "classes" not in out
            or not (
                np.issubdtype(labels.dtype, np.integer)
                and (0 <= labels).all()
                and (labels < out["n_outputs"]).all()
            )
        ):
            raise PluginError(
                f"plugin {spec}: describe() training_outputs needs labels (each training "
                "point's own class, integers in [0, n_outputs)) and the queries' classes"
            )
        out["training_outputs"] = True
    if raw.get("ground_truth") is not None:
        truth = np.asarray(raw["ground_truth"], dtype=np.int64).ravel()
        if ((truth < 0) | (truth >= n)).any():
            raise PluginError(f"plugin {spec}: describe() ground_truth indices outside [0, {n})")
        out["ground_truth"] = truth
    return out


def describe(d: dict) -> dict:
    desc = description(d)
    sources = desc.get("sources")
    return {
        "n_points": desc["n_points"],
        "n_query_points": len(desc["queries"]),
        "n_sources": 0 if sources is None else len(np.unique(sources)),
        "has_classes": "classes" in desc,
        "training_outputs": desc.get("training_outputs", False),
    }


def _display(value, n: int) -> np.ndarray:
    """What the report shows of each point: images as float32, text as strings, else nothing."""
    if value is None:
        return np.zeros((n, 0), dtype=np.float32)
    if value.dtype.kind in "USO":
        return value.astype(str)
    return value.astype(np.float32)


def build(d: dict) -> Dataset:
    """The prepared dataset of a plug-in: its description, as arrays (the data stay with the
    plug-in, which loads them itself in ``train``)."""
    desc = description(d)
    n, n_queries = desc["n_points"], len(desc["queries"])
    source, source_names = None, None
    if "sources" in desc:
        names, source = np.unique(desc["sources"], return_inverse=True)
        source, source_names = source.astype(np.int64), [str(x) for x in names]
    meta = {
        "name": "plugin",
        "plugin": d["plugin"],
        "n_classes": desc["n_outputs"],
        "n_outputs": desc["n_outputs"],
        "query_names": desc["queries"],
        "has_classes": "classes" in desc,
        "training_outputs": desc.get("training_outputs", False),
    }
    if source_names is not None:
        meta["source_names"] = source_names
    train_display = _display(desc.get("train_display"), n)
    if train_display.ndim in (3, 4):
        meta["input_shape"] = list(train_display.shape[1:])
    return Dataset(
        train_display,
        np.asarray(desc.get("labels", np.full(n, -1)), dtype=np.int64),
        _display(desc.get("query_display"), n_queries),
        np.asarray(desc.get("classes", np.full(n_queries, -1)), dtype=np.int64),
        desc.get("ground_truth"),
        meta,
        source,
    )
