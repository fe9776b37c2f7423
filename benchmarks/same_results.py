"""Two runs of a study give the same results: the check a refactor that changes no behaviour
must pass (the run plan and the scenario door were checked this way on the default demo).

    python benchmarks/same_results.py BEFORE/results AFTER/results

Compares every array of ``masks.npz``, ``behaviours.npz`` and ``estimates.npz`` (exactly: same
keys, shapes, dtypes and bytes, NaN equal to NaN), and of the validation and removal masks and
behaviours, and every figure of ``metrics.json`` and ``validation.json`` but the timings; prints
one line per file and exits 1 on any difference. The results file records
each array's largest absolute difference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from record import add, recorded

ARRAYS = ("masks.npz", "behaviours.npz", "estimates.npz")
#: the validate step's, where both runs validated
VALIDATION_ARRAYS = tuple(
    f"{kind}_{name}" for kind in ("validation", "removal") for name in ARRAYS[:2]
)
FIGURES = ("metrics.json", "validation.json")
#: figures of metrics.json that measure the machine, not the result
TIMINGS = ("seconds", "time")


def compare_arrays(before: Path, after: Path) -> dict[str, float | str]:
    """Per array: 0.0 when identical, else its largest absolute difference (or why not
    comparable)."""
    differences = {}
    with np.load(before, allow_pickle=False) as a, np.load(after, allow_pickle=False) as b:
        for key in sorted(set(a.files) | set(b.files)):
            if key not in a.files or key not in b.files:
                differences[key] = "only in " + ("after" if key in b.files else "before")
            elif a[key].shape != b[key].shape or a[key].dtype != b[key].dtype:
                differences[key] = f"{a[key].dtype}{a[key].shape} vs {b[key].dtype}{b[key].shape}"
            elif a[key].dtype.kind in "fc":
                equal = np.array_equal(a[key], b[key], equal_nan=True)
                differences[key] = 0.0 if equal else float(np.nanmax(np.abs(a[key] - b[key])))
            else:
                differences[key] = 0.0 if np.array_equal(a[key], b[key]) else "differs"
    return differences


def compare_figures(before: Path, after: Path) -> dict[str, str]:
    """The figures of a JSON summary that differ (timings aside), as ``before -> after``."""
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    return {
        key: f"{a.get(key)!r} -> {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if not any(word in key for word in TIMINGS) and a.get(key) != b.get(key)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="results directory of the first run")
    parser.add_argument("after", type=Path, help="results directory of the second run")
    args = parser.parse_args()
    for side in ("before", "after"):  # the commit each run was made at, when it was in a clone
        done = subprocess.run(
            ["git", "-C", str(getattr(args, side)), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        add(f"{side}_commit", done.stdout.strip() or None)
    same = True
    validated = (args.before / "validation.json").exists()
    for name in ARRAYS + (VALIDATION_ARRAYS if validated else ()):
        differences = compare_arrays(args.before / name, args.after / name)
        add(name, differences)
        changed = {k: v for k, v in differences.items() if v != 0.0}
        same &= not changed
        print(
            f"{name}: {len(differences)} arrays, "
            + (f"differ: {changed}" if changed else "identical")
        )
    for name in FIGURES[: 2 if validated else 1]:
        figures = compare_figures(args.before / name, args.after / name)
        add(name, figures)
        same &= not figures
        print(f"{name}: " + (f"differ: {figures}" if figures else "same figures (timings aside)"))
    add("same", same)
    return 0 if same else 1


if __name__ == "__main__":
    with recorded(__file__, measures=()):  # it compares two runs named by their commits
        status = main()
    sys.exit(status)
