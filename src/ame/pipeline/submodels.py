"""The submodel store: one directory per run key, one file per subset.

It owns the file layout (names, the pack a subset belongs to), atomic writes, reading and the
fingerprint check; training and gathering hand it arrays and never build a path themselves.

Layout: ``<dir>/subset_000123.npz`` holds the outputs of subset 123 on every query point
(``logits``), on every training point when ``training.training_points`` is on
(``training_logits``), and its fingerprint (JSON, ``ame.pipeline.provenance``);
``subset_000123.safetensors`` its weights when ``training.save_weights`` is on. A training job
trains one *pack* of ``subsets_per_job`` consecutive subsets, a power of ten, so the pack of a
subset is the leading digits of its index.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ame.artifacts import ArtifactError, atomic_path, atomic_savez, load_npz
from ame.errors import UserError

INDEX_DIGITS = 6  # subset_000123: up to a million subsets per run
PACK_SIZES = tuple(10**k for k in range(4))  # subsets per training job: 1, 10, 100, 1000


def check_pack_size(per_job: int) -> int:
    if per_job not in PACK_SIZES:
        raise UserError(
            f"training.subsets_per_job: {per_job} is not allowed; choose one of {list(PACK_SIZES)}"
        )
    return per_job


def fingerprint_mismatch(recorded: dict, expected: dict) -> str | None:
    """The first field where a stored fingerprint disagrees with the current run."""
    for key, value in expected.items():
        if recorded.get(key) != value:
            return f"{key} is {recorded.get(key)!r}, expected {value!r}"
    return None


class SubmodelStore:
    """The submodel files of one run (``directory``), trained ``per_job`` subsets at a time."""

    def __init__(self, directory: str | Path, per_job: int = 1, save_weights: bool = False):
        self.directory = Path(directory)
        self.per_job = check_pack_size(per_job)
        self.save_weights = save_weights

    # -- layout -------------------------------------------------------------------------------
    @property
    def member_digits(self) -> int:
        return round(math.log10(self.per_job))

    @property
    def pack_digits(self) -> int:
        return INDEX_DIGITS - self.member_digits

    @property
    def suffixes(self) -> tuple[str, ...]:
        return (".npz", ".safetensors") if self.save_weights else (".npz",)

    def path(self, index: int, suffix: str = ".npz") -> Path:
        return self.directory / f"subset_{index:0{INDEX_DIGITS}d}{suffix}"

    def n_packs(self, n_subsets: int) -> int:
        return math.ceil(n_subsets / self.per_job)

    def pack_name(self, pack: int) -> str:
        return f"{pack:0{self.pack_digits}d}"

    def pack_range(self, pack: int) -> range:
        return range(pack * self.per_job, (pack + 1) * self.per_job)

    def pack_pattern(self, directory_pattern: str, pack: str = "{pack}") -> list[str]:
        """Every file of one pack, as Snakemake output patterns under ``directory_pattern``."""
        members = [
            f"{i:0{self.member_digits}d}" if self.member_digits else "" for i in range(self.per_job)
        ]
        return [
            f"{directory_pattern}/subset_{pack}{member}{suffix}"
            for member in members
            for suffix in self.suffixes
        ]

    def files(self, n_subsets: int) -> list[Path]:
        """Every file of the packs holding subsets 0 .. n_subsets - 1."""
        return [
            self.path(i, suffix)
            for i in range(self.n_packs(n_subsets) * self.per_job)
            for suffix in self.suffixes
        ]

    # -- writing and reading ------------------------------------------------------------------
    def write(
        self, index: int, outputs: np.ndarray, record: dict, weights=None, on_training=None
    ) -> None:
        """Store subset ``index``: weights first, then the outputs file, which marks it done."""
        if self.save_weights and weights is not None:
            from safetensors.torch import save_file

            with atomic_path(self.path(index, ".safetensors")) as tmp:
                save_file(weights, str(tmp))
        extra = {} if on_training is None else {"training_logits": on_training}
        atomic_savez(
            self.path(index),
            logits=outputs,
            fingerprint=np.array(json.dumps(record, sort_keys=True)),
            **extra,
        )

    def read_training_points(
        self, index: int, n_points: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The outputs of subset ``index`` on every training point (``n_points`` of them; None:
        any number) and on every query point (read after :meth:`read` checked its fingerprint,
        which says the run asked for them)."""
        arrays = load_npz(self.path(index), required=("logits", "training_logits"))
        if n_points is not None and len(arrays["training_logits"]) != n_points:
            raise ArtifactError(
                f"subset {index} ({self.path(index)}): outputs on "
                f"{len(arrays['training_logits'])} training points, expected {n_points}"
            )
        return arrays["training_logits"], arrays["logits"]

    def read(
        self, index: int, expected: dict, shape: tuple[int, ...] | None
    ) -> tuple[np.ndarray, dict]:
        """Outputs and record of subset ``index``, checked against the current run's fingerprint
        ``expected`` and output ``shape`` (None: any); the first disagreement raises, naming the
        subset."""
        path = self.path(index)
        try:
            arrays = load_npz(path, required=("logits", "fingerprint"))
        except ArtifactError as err:
            raise ArtifactError(f"subset {index}: {err}") from err
        try:
            recorded = json.loads(str(arrays["fingerprint"]))
        except json.JSONDecodeError:
            recorded = None
        if not isinstance(recorded, dict):
            raise ArtifactError(f"subset {index} ({path}): unreadable fingerprint")
        problem = fingerprint_mismatch(recorded, expected)
        if problem:
            raise ArtifactError(f"subset {index} ({path}): fingerprint mismatch: {problem}")
        if shape is not None and arrays["logits"].shape != tuple(shape):
            raise ArtifactError(
                f"subset {index} ({path}): logits of shape {arrays['logits'].shape}, "
                f"expected {tuple(shape)}"
            )
        return arrays["logits"], recorded
