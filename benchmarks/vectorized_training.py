"""Vectorized vs one-at-a-time training of small submodels on the digits scenario.

    python benchmarks/vectorized_training.py [--subsets 100] [--models linear mlp]
        [--threads 1] [--params params.yaml] [--out results.json]

Trains the same subsets (the first ``--subsets`` of the params' design) both ways with the params'
training recipe, on the CPU and, when present, on CUDA, and prints per device and model:
submodels per second each way, their ratio, the largest |logit difference| between the two
paths, and a noise floor: the loop against itself with each subset's rows in another order
(same arithmetic, another summation order). Adam on the mlp amplifies such rounding
differences over the steps, so its difference is compared with that floor, not with zero.
Timings include evaluating the query logits, as a training job does. One torch thread by
default, as each workflow training job uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
try:
    import ame  # noqa: F401
except ImportError:  # a machine where the package is not installed: use the source tree
    sys.path.insert(0, str(ROOT / "src"))

from record import add, recorded  # noqa: E402

from ame.sampling import Design, MaskSet  # noqa: E402
from ame.scenarios import build  # noqa: E402
from ame.training.fit import fit_submodel, predict  # noqa: E402
from ame.training.vectorized import CHUNK, fit_submodels  # noqa: E402

NOISE_SUBSETS = 10


def load_params(path: Path) -> dict:
    # plain YAML: the schema check needs jsonschema, which GPU images may lack
    return yaml.safe_load(Path(path).read_text())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(config: dict, dataset, n_subsets: int, model: str, device: torch.device) -> dict:
    """Both paths on the same subsets: rates, ratio, max |logit difference|, noise floor."""
    s = config["sampling"]
    design = Design(s["design"], tuple(s["p_values"]), s["p"], s["eps"], s["beta_a"], s["beta_b"])
    masks = MaskSet.draw(dataset.n_points, n_subsets, design, s["seed"])
    settings = {**config["training"], "model": model, "vectorize": True}
    t = settings
    seeds = [t["seed"] + (i if t["seed_policy"] == "per_subset" else 0) for i in range(n_subsets)]
    X = torch.as_tensor(dataset.X_train, device=device)
    y = torch.as_tensor(dataset.y_train, device=device)
    Xq = torch.as_tensor(dataset.X_query, device=device)
    rows = [
        torch.as_tensor(np.flatnonzero(masks.point_mask(i)), device=device)
        for i in range(n_subsets)
    ]
    k = dataset.n_classes

    def loop(row_sets):  # the subsets 0, 1, ... with these rows
        return np.stack(
            [
                predict(fit_submodel(X, y, r, k, settings, seed), Xq, settings)
                for r, seed in zip(row_sets, seeds, strict=False)
            ]
        )

    def together(row_sets):
        out = []
        for first in range(0, len(row_sets), CHUNK):
            chunk = row_sets[first : first + CHUNK]
            models = fit_submodels(X, y, chunk, k, settings, seeds[first : first + len(chunk)])
            out += [predict(m, Xq, settings) for m in models]
        return np.stack(out)

    loop(rows[:2]), together(rows[:2])  # warm-up: first calls, kernel selection
    timings = {}
    for name, fn in (("loop", loop), ("vectorized", together)):
        _sync(device)
        start = time.perf_counter()
        logits = fn(rows)
        _sync(device)
        timings[name] = (time.perf_counter() - start, logits)
    generator = torch.Generator().manual_seed(0)
    shuffled = [
        r[torch.randperm(len(r), generator=generator).to(device)] for r in rows[:NOISE_SUBSETS]
    ]
    floor = np.abs(loop(shuffled) - timings["loop"][1][:NOISE_SUBSETS]).max()
    (t_loop, l_loop), (t_vec, l_vec) = timings["loop"], timings["vectorized"]
    return {
        "device": str(device),
        "model": model,
        "n_subsets": n_subsets,
        "loop_per_s": n_subsets / t_loop,
        "vectorized_per_s": n_subsets / t_vec,
        "speedup": t_loop / t_vec,
        "max_abs_logit_diff": float(np.abs(l_loop - l_vec).max()),
        "noise_floor_max_abs_diff": float(floor),
        "max_abs_logit": float(np.abs(l_loop).max()),
    }


def run(params_path: Path, n_subsets: int, models, devices) -> list[dict]:
    config = load_params(params_path)
    dataset = build(config)
    results = []
    for device in devices:
        for model in models:
            r = compare(config, dataset, n_subsets, model, torch.device(device))
            print(
                f"{r['device']:>5} {model:>6}: loop {r['loop_per_s']:8.1f}/s  vectorized "
                f"{r['vectorized_per_s']:8.1f}/s  speedup {r['speedup']:5.2f}x  max|dlogit| "
                f"{r['max_abs_logit_diff']:.2e} (noise floor {r['noise_floor_max_abs_diff']:.2e},"
                f" logits up to {r['max_abs_logit']:.1f})",
                flush=True,
            )
            results.append(r)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--subsets", type=int, default=100)
    parser.add_argument("--models", nargs="+", default=["linear", "mlp"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, {args.threads} CPU thread(s), {args.subsets} subsets, "
        f"devices: {', '.join(devices)}"
    )
    results = run(args.params, args.subsets, args.models, devices)
    add("rows", results)
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame/training",)):
        code = main()
    sys.exit(code)
