"""Seconds per CIFAR-10 submodel for each training recipe, and the full-data backdoor checks.

    python benchmarks/cifar_gpu.py [--data DIR] [--out results.json]   # on a GPU machine
    python benchmarks/cifar_gpu.py --quick                              # CPU smoke test

The recipes are the ``training`` sections of ``examples/params-cifar10.yaml`` (the paper's) and
``examples/params-cifar10-fast.yaml``: what is timed is exactly what a run with those params
trains, through ``ame.fit``. For each recipe: one warm-up submodel (kernel selection, not
counted), then ``--repeats`` submodels on the full training set (the step count is fixed, so a
subset costs the same), including the query logits; seconds per submodel, submodels per
GPU-hour and GPU-hours for the paper's budget (m = 2,497 submodels for CIFAR10-20 at c = 8).

``--data DIR`` (the python-version batches) adds the paper's full-data checks on the last model:
clean accuracy on the second half of the shuffled test set, attack success on the triggered
first half (outside class 1), and the query behaviour. Without it the data are synthetic
CIFAR-10-shaped images of the real sizes: timings hold, accuracies mean nothing and are left out.
Then the fast recipe once more with ``deterministic: true`` (its cost), the vectorized
small-model benchmark on CUDA (benchmarks/vectorized_training.py), and the throughput of 2 and 4
training processes sharing the GPU (``--processes``). Everything is printed and written as JSON
to ``--out``; a budget (``--budget-s``) skips what would not fit.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
try:
    import ame  # noqa: F401
except ImportError:  # a GPU image without the package installed: use the source tree
    sys.path.insert(0, str(ROOT / "src"))

from record import recorded  # noqa: E402

from ame.data import cifar10 as cifar  # noqa: E402
from ame.training.fit import configure_backends, fit_submodel, predict  # noqa: E402

RECIPES = {
    "paper": ROOT / "examples/params-cifar10.yaml",
    "fast": ROOT / "examples/params-cifar10-fast.yaml",
}
PAPER_BUDGET = 2497  # submodels of CIFAR10-20 at c = 8
QUICK = {"steps": 3, "hidden": 4, "batch_size": 32}  # --quick: CPU smoke-test sizes
PROBE_STEPS = 60  # a short timed run after the warm-up predicts a submodel's time


def environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        env.update(
            gpu=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        env.update(cpu_threads=torch.get_num_threads())
    return env


def _seconds(fn, device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def checks(model, settings, arrays, dataset, d, device) -> dict:
    """The paper's full-data checks of one trained model."""
    X_clean, y_clean, X_trig = cifar.evaluation_sets(
        arrays[2],
        arrays[3],
        len(arrays[1]),
        d["seed"],
        d["target_class"],
        d["trigger_size"],
        d["trigger_value"],
    )
    target = d["target_class"]
    clean = predict(model, torch.as_tensor(X_clean, device=device), settings).argmax(1)
    trig = predict(model, torch.as_tensor(X_trig, device=device), settings).argmax(1)
    q = torch.softmax(
        torch.as_tensor(predict(model, torch.as_tensor(dataset.X_query, device=device), settings)),
        1,
    )[:, target]
    return {
        "clean_accuracy": float((clean == y_clean).mean()),
        "attack_success": float((trig == target).mean()),
        "query_probability_mean": float(q.mean()),
        "queries_won": int((q > 0.5).sum()),
    }


def time_recipe(name, settings, dataset, device, repeats, deadline, eval_fn=None) -> dict:
    X = torch.as_tensor(dataset.X_train, device=device)
    y = torch.as_tensor(dataset.y_train, device=device)
    Xq = torch.as_tensor(dataset.X_query, device=device)
    rows = torch.arange(len(y), device=device)
    configure_backends(settings, device)

    def train(steps=None, seed=0):
        run = settings if steps is None else {**settings, "steps": min(settings["steps"], steps)}
        model = fit_submodel(X, y, rows, dataset.n_classes, run, seed)
        predict(model, Xq, run)
        return model

    t_warm, _ = _seconds(lambda: train(30, 10**6), device)  # kernel selection, allocations
    t_probe, _ = _seconds(lambda: train(PROBE_STEPS, 10**6), device)
    result = {
        "recipe": name,
        **{k: settings[k] for k in ("steps", "batch_size", "precision", "deterministic")},
        "n_points": dataset.n_points,
        "warmup_seconds": t_warm,
        "seconds": [],
    }
    model = None
    for seed in range(repeats):
        projected = max(result["seconds"], default=t_probe * settings["steps"] / PROBE_STEPS)
        if time.perf_counter() + projected > deadline:
            result["skipped"] = f"budget: a submodel would take about {projected:.0f} s"
            break
        seconds, model = _seconds(lambda seed=seed: train(seed=seed), device)
        result["seconds"].append(seconds)
    if result["seconds"]:
        per = float(np.median(result["seconds"]))
        result.update(
            seconds_per_submodel=per,
            ms_per_step=1000 * per / settings["steps"],
            submodels_per_gpu_hour=3600 / per,
            gpu_hours_paper_budget=PAPER_BUDGET * per / 3600,
        )
        if eval_fn is not None:
            result.update(eval_fn(model))
    figures = (
        f"{result['seconds_per_submodel']:7.2f} s/submodel ({result['ms_per_step']:.2f} ms/step, "
        f"{result['submodels_per_gpu_hour']:.0f}/GPU-hour, {result['gpu_hours_paper_budget']:.1f}"
        f" GPU-hours for m={PAPER_BUDGET})"
        if result["seconds"]
        else result.get("skipped", "not run")
    )
    checks_done = [k for k in ("clean_accuracy", "attack_success", "queries_won") if k in result]
    print(f"{name:>18}: {figures}" + "".join(f", {k} {result[k]:.4g}" for k in checks_done))
    return result


def _worker(recipe: str, data_dir, quick: bool, barrier, queue) -> None:
    """One of several concurrent training processes on the same GPU (spawned)."""
    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings, dataset = _scenario(recipe, _arrays(data_dir, quick), quick)
    configure_backends(settings, device)
    X = torch.as_tensor(dataset.X_train, device=device)
    y = torch.as_tensor(dataset.y_train, device=device)
    rows = torch.arange(len(y), device=device)
    fit_submodel(X, y, rows, dataset.n_classes, {**settings, "steps": 30}, 1)
    barrier.wait(timeout=300)
    seconds, _ = _seconds(lambda: fit_submodel(X, y, rows, dataset.n_classes, settings, 0), device)
    queue.put(seconds)


def concurrent(recipe: str, n: int, data_dir, quick: bool) -> dict:
    """Throughput of ``n`` training processes sharing the GPU (each submodel timed between a
    common start and its end): do several training jobs per GPU pay? (On an H200 with the fast
    recipe they did not: one process keeps the GPU busy.)"""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(n), context.Queue()
    procs = [
        context.Process(target=_worker, args=(recipe, data_dir, quick, barrier, queue))
        for _ in range(n)
    ]
    for proc in procs:
        proc.start()
    seconds = [queue.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(seconds)
    result = {"recipe": recipe, "processes": n, "seconds": seconds, "per_gpu_hour": n * 3600 / wall}
    print(
        f"{recipe:>10} x{n} processes: {wall:6.2f} s for {n} submodels, "
        f"{result['per_gpu_hour']:.0f} submodels/GPU-hour"
    )
    return result


def _arrays(data_dir, quick: bool):
    if data_dir:
        return cifar.load_cifar10(data_dir)
    return cifar.synthetic_arrays(*((300, 100) if quick else (50_000, 10_000)))


def _scenario(recipe: str, arrays, quick: bool):
    config = yaml.safe_load(RECIPES[recipe].read_text())
    d = config["dataset"]
    settings = {**config["training"], **(QUICK if quick else {})}
    dataset = cifar.backdoor(
        *arrays, d["seed"], d["n_poisons"], d["target_class"], d["trigger_size"], d["trigger_value"]
    )
    return settings, dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="directory of the real CIFAR-10 batches")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke test")
    parser.add_argument("--repeats", type=int, default=2, help="timed submodels per recipe")
    parser.add_argument(
        "--processes",
        type=int,
        nargs="*",
        default=[2, 4],
        help="concurrent training processes to try with the fast recipe",
    )
    parser.add_argument("--budget-s", type=float, default=480.0, help="start no work after")
    parser.add_argument("--out", type=Path, help="write all figures as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.processes = 1, [2]
    started = time.perf_counter()
    deadline = started + args.budget_s
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"environment": environment(device), "quick": args.quick, "recipes": []}
    print(json.dumps(report["environment"]))
    arrays = _arrays(args.data, args.quick)
    report["data"] = (
        f"CIFAR-10 from {args.data}"
        if args.data
        else f"synthetic CIFAR-10-shaped images {len(arrays[1])}/{len(arrays[3])}: timings only; "
        "accuracy figures need --data DIR with the real CIFAR-10 python batches"
    )
    print(report["data"], flush=True)
    for label, change in [
        ("fast", {}),
        ("paper", {}),
        ("fast deterministic", {"deterministic": True}),
    ]:
        settings, dataset = _scenario(label.split()[0], arrays, args.quick)
        settings.update(change)
        d = yaml.safe_load(RECIPES[label.split()[0]].read_text())["dataset"]
        eval_fn = None
        if args.data and not change:

            def eval_fn(model, settings=settings, dataset=dataset, d=d):
                return checks(model, settings, arrays, dataset, d, device)

        report["recipes"].append(
            time_recipe(label, settings, dataset, device, args.repeats, deadline, eval_fn)
        )
    configure_backends({"deterministic": False}, device)
    if device.type == "cuda" or args.quick:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from vectorized_training import run

        n = 4 if args.quick else 100
        report["vectorized"] = run(ROOT / "params.yaml", n, ["linear", "mlp"], [device.type])
    report["concurrent"] = []
    for n in args.processes:
        if time.perf_counter() + 60 > deadline:
            print(f"concurrency x{n}: skipped (budget)")
            continue
        report["concurrent"].append(concurrent("fast", n, args.data, args.quick))
    report["total_seconds"] = time.perf_counter() - started
    print(f"total {report['total_seconds']:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    with recorded(__file__, measures=("src/ame/training", "src/ame/data/cifar10.py")):
        code = main()
    sys.exit(code)
