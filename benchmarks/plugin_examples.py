"""Detection figures of the two plug-in examples at their documented budgets, over dataset seeds.

Each run copies the example's study directory (with the workflow it needs) to a temporary
folder, sets the plug-in's data seed (``dataset.options.seed``: which labels are flipped or which
images poisoned, and the split), runs ``dvc repro`` there exactly as ``make example-*`` does, and
reads ``results/metrics.json``, and where the study keeps its training-point outputs
(``training.training_points``) the relabel list of ``results/mislabels.csv``: how many points it
lists, the share of them the plug-in flipped (``list_precision``) and how many clean ones it
expects. Seed 0 is the shipped configuration; the others were used to choose nothing. Ground
truth enters only the evaluation step. ``--set`` changes plug-in options (the example's
k-nearest-neighbour variant on digits: ``--set model=knn data=digits test_fraction=0.7``).

    python benchmarks/plugin_examples.py --examples sklearn_mislabel torch_backdoor --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from record import add, recorded

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("Snakefile", "params.yaml", "workflow", "profiles", "src", ".dvcignore", ".gitignore")
COLUMNS = ("n_submodels", "topk_precision", "precision", "recall", "n_selected")


def relabel_list(study: Path) -> dict:
    """The mislabels step's list against the plug-in's flipped labels (evaluation only)."""
    summary = json.loads((study / "results/mislabels.json").read_text())
    table = pd.read_csv(study / "results/mislabels.csv")
    truth = np.load(study / "data/prepared/dataset.npz")["ground_truth"]
    listed = table.loc[table["listed"], "point"]
    return {
        "listed": int(len(listed)),
        "list_precision": float(listed.isin(truth).mean()) if len(listed) else None,
        "list_recall": float(np.isin(truth, listed).mean()),
        "expected_clean": summary["expected_clean"],
    }


def option(text: str) -> tuple[str, object]:
    """``key=value`` of ``--set``, the value read as YAML (numbers, words)."""
    key, _, value = text.partition("=")
    return key, yaml.safe_load(value)


def run_example(example: str, seed: int, workdir: Path, options: dict) -> dict:
    for name in COPIED:
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, workdir / name, **({"symlinks": True} if source.is_dir() else {}))
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=workdir, check=True)
    study = workdir / "examples" / example
    shutil.copytree(ROOT / "examples" / example, study, ignore=shutil.ignore_patterns(
        "results", "data", "logs", ".snakemake", "dvc.lock", "__pycache__"))  # fmt: skip
    overlay = yaml.safe_load((study / "params.yaml").read_text())
    overlay["dataset"]["options"].update(options, seed=seed)
    (study / "params.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    started = time.perf_counter()
    subprocess.run(["dvc", "repro"], cwd=study, check=True, capture_output=True)
    metrics = json.loads((study / "results/metrics.json").read_text())
    wall = time.perf_counter() - started
    row = {"seed": seed, **{k: metrics[k] for k in COLUMNS}, "wall_s": wall}
    if overlay.get("training", {}).get("training_points"):
        row.update(relabel_list(study))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=["sklearn_mislabel", "torch_backdoor"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", nargs="+", type=option, default=[], metavar="KEY=VALUE",
                        help="plug-in options (dataset.options) to change")  # fmt: skip
    args = parser.parse_args()
    options = dict(args.set)
    print(f"{'example':<18} {'seed':>4} " + " ".join(f"{c:>14}" for c in COLUMNS) + "   wall")
    for example in args.examples:
        rows = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                row = run_example(example, seed, Path(tmp), options)
            rows.append(row)
            cells = " ".join(f"{row[c]:>14.3f}" for c in COLUMNS)
            note = "" if seed == 0 else "  (held out)"
            listing = (
                f"  relabel list {row['listed']}, precision {row['list_precision']}, recall "
                f"{row['list_recall']:.3f}, {row['expected_clean']:.1f} clean expected"
                if "listed" in row
                else ""
            )
            print(f"{example:<18} {seed:>4} {cells} {row['wall_s']:>6.0f} s{note}{listing}",
                  flush=True)  # fmt: skip
        add(example, rows)
        means = " ".join(f"{sum(r[c] for r in rows) / len(rows):>14.3f}" for c in COLUMNS)
        print(f"{example:<18} {'mean':>4} {means}")


if __name__ == "__main__":
    with recorded(
        __file__, measures=("src/ame", "workflow", "Snakefile", "params.yaml", "examples")
    ):
        main()
