"""Per-job overhead of training packs, and the wall time of the default study.

Part 1 trains the same 100 digits subsets through Snakemake with 1, 10 and 100 subsets per job,
side by side in one run, and splits each job's wall time (Snakemake's benchmark file) into
training (logged by `ame train`) and overhead (interpreter start, imports, loading data).
Part 2 runs the whole default workflow (params.yaml as shipped) and reports its wall time.

    python benchmarks/pipeline_overhead.py [--skip-default]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_workspace, run  # noqa: E402
from record import add, recorded

N_SUBSETS = 100


def train_only(per_job: int, root: Path) -> dict:
    ws = make_workspace(
        root / f"pack{per_job}",
        {"sampling": {"n_subsets": N_SUBSETS}, "training": {"subsets_per_job": per_job}},
    )
    run(["snakemake", "results/masks.npz", "--cores", "2"], ws)
    started = time.perf_counter()
    run(["snakemake", "submodels", "--cores", "2"], ws)
    wall = time.perf_counter() - started
    job_seconds = sum(
        pd.read_csv(f, sep="\t")["s"].iloc[0] for f in ws.glob("logs/train/*/*.benchmark.tsv")
    )
    train_seconds = sum(
        float(re.search(r"trained \d+ submodels in ([\d.]+)s", f.read_text())[1])
        for f in ws.glob("logs/train/*/*.log")
    )
    n_jobs = N_SUBSETS // per_job
    return {
        "subsets_per_job": per_job,
        "jobs": n_jobs,
        "wall_s": round(wall, 1),
        "train_s_per_submodel": round(train_seconds / N_SUBSETS, 3),
        "overhead_s_per_job": round((job_seconds - train_seconds) / n_jobs, 2),
        "overhead_share": round(1 - train_seconds / job_seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-default", action="store_true", help="only the packing comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [train_only(per_job, Path(tmp)) for per_job in (1, 10, 100)]
        table = pd.DataFrame(rows)
        base = table.loc[table.subsets_per_job == 1, "wall_s"].iloc[0]
        table["speedup_vs_1_per_job"] = (base / table["wall_s"]).round(1)
        add("packing", table.to_dict("records"))
        print(f"Training {N_SUBSETS} digits submodels through Snakemake (--cores 2):")
        print(table.to_markdown(index=False))
        if not args.skip_default:
            ws = make_workspace(Path(tmp) / "default", tiny=False)
            started = time.perf_counter()
            run(["snakemake", "--cores", "2"], ws)
            wall = time.perf_counter() - started
            metrics = (ws / "results/metrics.json").read_text()
            add("default_study_wall_s", round(wall))
            print(f"\nDefault study (params.yaml as shipped): {wall:.0f} s wall in total")
            print(metrics)


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame", "workflow", "Snakefile", "params.yaml")):
        main()
