"""Artifacts on disk: plain ``.npz`` arrays and JSON, written atomically, read without pickle.

A killed job must never leave a file that a rerun would accept as finished, so every writer
goes through a temporary file in the same directory and an atomic ``os.replace``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ame.errors import UserError


class ArtifactError(UserError):
    """An artifact is missing, truncated, foreign or inconsistent with the current run."""


def default_mode() -> int:
    """The permissions a plain ``open()`` gives a new file: the temporary file's 0600 would hide
    results from collaborators who share the project directory."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix + ".tmp")
    except OSError as err:  # a read-only or missing place: the user's to fix, not a bug
        raise ArtifactError(f"{path}: cannot write here ({err.strerror})") from err
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_mode())
        try:
            os.replace(tmp, path)
        except OSError as err:  # e.g. the output names a directory
            raise ArtifactError(f"{path}: cannot write here ({err.strerror})") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_savez(path: str | Path, **arrays) -> None:
    """Write an uncompressed ``.npz`` atomically, byte-identical for identical arrays.

    ``np.savez`` stamps each member with the current time; fixed timestamps keep artifact hashes
    (and so DVC's cache) stable when a rerun reproduces the same numbers.
    """
    with atomic_path(path, suffix=".npz") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_json(path: str | Path):
    """A JSON artifact (metrics, summaries, plans); missing or unreadable is an ArtifactError."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: not a readable JSON file ({err})") from err


def load_csv(path: str | Path):
    """A CSV table written by a step (curves, per-query tables) as a pandas DataFrame."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found")
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ArtifactError(f"{path}: not a readable CSV table ({err})") from err


def load_npz(path: str | Path, required: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` (never unpickling) and check the required keys exist."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ArtifactError(f"{path}: not a readable .npz array file ({err})") from err
    missing = [key for key in required if key not in arrays]
    if missing:
        raise ArtifactError(f"{path}: missing arrays {missing} (found {sorted(arrays)})")
    return arrays
