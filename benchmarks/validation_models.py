"""Evidence without ground truth, per model: held-out LDS and counterfactual removal.

Runs the default study (params.yaml as shipped; with ``--study DIR``, the overlay of that study's
``params.yaml``, e.g. ``studies/deep``) in a scratch copy of the workflow once per training model
and prints, per model, the held-out LDS (mean over queries and its 95 % interval),
its value at the smallest budget prefix, the removal effects of the aggregate query, the
ground-truth precision and recall beside them, and the wall time of the whole run.

    python benchmarks/validation_models.py [--models linear mlp] [--study studies/deep]
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


def study(model: str, root: Path, overlay: dict) -> dict:
    ws = make_workspace(root / model, tiny=False)
    write_params(ws, overlay)
    write_params(ws, {"training": {"model": model}})
    started = time.perf_counter()
    run(["snakemake", "--cores", "2"], ws)
    wall = time.perf_counter() - started
    v = json.loads((ws / "results/validation.json").read_text())
    m = json.loads((ws / "results/metrics.json").read_text())
    curve = pd.read_csv(ws / "results/lds_curve.csv")
    return {
        "model": model,
        "lds": v["lds_mean"],
        "lds_ci": f"{v['lds_ci_low']:.3f}–{v['lds_ci_high']:.3f}",
        f"lds_at_{int(curve['n_submodels'].iloc[0])}": round(curve["lds_mean"].iloc[0], 3),
        "aggregate_full": v["removal_full"],
        "minus_selection": v["removal_removed"],
        "minus_random": v["removal_random"],
        "drop_fraction": v["removal_drop_fraction"],
        "random_change": v["random_change_fraction"],
        "precision": m["precision"],
        "recall": m["recall"],
        "wall_s": round(wall),
        "metrics": m,
        "validation": v,
        "lds_curve": curve.to_dict("records"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["linear", "mlp"])
    parser.add_argument("--study", type=Path, help="a study directory whose overlay to apply")
    args = parser.parse_args()
    overlay = {}
    if args.study is not None:
        overlay = yaml.safe_load((ROOT / args.study / "params.yaml").read_text())
        overlay.pop("extends", None)
    add("study", str(args.study or "."))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [study(model, Path(tmp), overlay) for model in args.models]
    add("rows", rows)
    table = [
        {key: value for key, value in row.items() if not isinstance(value, dict | list)}
        for row in rows
    ]
    print(pd.DataFrame(table).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    measures = ("src/ame", "workflow", "Snakefile", "params.yaml", "studies/deep/params.yaml")
    with recorded(__file__, measures=measures):
        main()
