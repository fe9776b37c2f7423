"""Two runs of a study give the same results: the check a refactor that changes no behaviour
must pass (the run plan and the scenario door were checked this way on the default demo).

    python benchmarks/same_results.py BEFORE/results AFTER/results

Compares every array of ``masks.npz``, ``behaviours.npz`` and ``estimates.npz`` (exactly: same
keys, shapes, dtypes and bytes, NaN equal to NaN) and every figure of ``metrics.json`` but the
timings; prints one line per file and exits 1 on any difference. The results file records
each array's largest absolute difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from record import add, recorded

ARRAYS = ("masks.npz", "behaviours.npz", "estimates.npz")
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


def compare_metrics(before: Path, after: Path) -> dict[str, str]:
    """The figures of metrics.json that differ (timings aside), as ``before -> after``."""
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
    same = True
    for name in ARRAYS:
        differences = compare_arrays(args.before / name, args.after / name)
        add(name, differences)
        changed = {k: v for k, v in differences.items() if v != 0.0}
        same &= not changed
        print(
            f"{name}: {len(differences)} arrays, "
            + (f"differ: {changed}" if changed else "identical")
        )
    metrics = compare_metrics(args.before / "metrics.json", args.after / "metrics.json")
    add("metrics.json", metrics)
    same &= not metrics
    print("metrics.json: " + (f"differ: {metrics}" if metrics else "same figures (timings aside)"))
    add("same", same)
    return 0 if same else 1


if __name__ == "__main__":
    with recorded(__file__):
        status = main()
    sys.exit(status)
