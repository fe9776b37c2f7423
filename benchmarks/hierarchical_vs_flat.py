"""Hierarchical study vs a flat point-level run: submodels needed for the same recall.

Runs the study of studies/hierarchical (source level, point level inside the selected sources,
and a flat run beside them, all in one Snakemake run) in a scratch copy of the workflow, once
per dataset seed (the seed places the poisons and the contributors), and prints per seed: each
level's precision and recall, the submodels of the two levels together, the flat run's smallest
budget prefix that reaches the hierarchy's point-level recall (and its precision and recall at
its full budget), and the ratio of the two budgets.

    python benchmarks/hierarchical_vs_flat.py [--seeds 0 1 2] [--source-subsets 800]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import make_workspace, run, write_params  # noqa: E402
from record import add, recorded  # noqa: E402

from ame.report.sections import smallest_budget_reaching  # noqa: E402


def study(seed: int, root: Path, source_subsets: int | None) -> dict:
    ws = make_workspace(root / f"seed{seed}", tiny=False)
    overlay = yaml.safe_load((ROOT / "studies/hierarchical/params.yaml").read_text())
    overlay.pop("extends")  # the study's overlay on the workspace's copy of the base params
    write_params(ws, overlay)
    write_params(ws, {"dataset": {"seed": seed}})
    if source_subsets is not None:
        write_params(ws, {"hierarchy": {"source_subsets": source_subsets}})
    started = time.perf_counter()
    run(["snakemake", "--cores", "2"], ws)
    wall = time.perf_counter() - started
    m = {  # rates to three decimals, for the table
        level: {
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in json.loads((ws / f"results/{level}/metrics.json").read_text()).items()
        }
        for level in ("sources", "points", "flat")
    }
    curve = pd.read_csv(ws / "results/flat/budget_curve.csv")
    total = m["sources"]["n_submodels"] + m["points"]["n_submodels"]
    needed = smallest_budget_reaching(curve, m["points"]["recall"])
    return {
        "seed": seed,
        "sources_P": m["sources"]["precision"],
        "sources_R": m["sources"]["recall"],
        "points_studied": m["points"]["n_units_studied"],
        "points_P": m["points"]["precision"],
        "points_R": m["points"]["recall"],
        "hier_submodels": total,
        "flat_needed": needed if needed is not None else f"> {m['flat']['n_submodels']}",
        "flat_P_full": m["flat"]["precision"],
        "flat_R_full": m["flat"]["recall"],
        "flat_over_hier": round(needed / total, 2) if needed is not None else None,
        "wall_s": round(wall),
        "metrics": m,
        "validation": {
            level: json.loads((ws / f"results/{level}/validation.json").read_text())
            for level in ("sources", "points")
            if (ws / f"results/{level}/validation.json").is_file()
        },
        "flat_curve": curve.to_dict("records"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--source-subsets", type=int, help="source-level budget instead of the study's"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [study(seed, Path(tmp), args.source_subsets) for seed in args.seeds]
    add("rows", rows)
    table = [{k: v for k, v in row.items() if not isinstance(v, dict | list)} for row in rows]
    print(pd.DataFrame(table).to_markdown(index=False))


if __name__ == "__main__":
    with recorded(
        __file__,
        measures=("src/ame", "workflow", "Snakefile", "params.yaml", "studies/hierarchical"),
    ):
        main()
