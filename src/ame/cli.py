"""Command line: one verb per pipeline step (``ame <step> ...``), each reading and writing files.

The Snakemake rules and DVC stages call these verbs; a researcher can call them by hand too.
Bad input (:class:`ame.errors.UserError` and its kin, raised where the input is read) ends with
one line naming the culprit and exit status 2; anything else is a bug and keeps its traceback
(exit 1). Outputs are written atomically, so a failed or killed step leaves nothing a rerun would
take as finished.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _config(args):
    from ame.pipeline import params

    return params.load(args.params)


def _store(config: dict, directory):
    from ame.pipeline.submodels import SubmodelStore

    t = config["training"]
    return SubmodelStore(directory, t["subsets_per_job"], t["save_weights"])


def cmd_prepare(args) -> None:
    from ame import scenarios

    scenarios.build(_config(args)).save(args.out)


def cmd_sample(args) -> None:
    from ame.data import Dataset
    from ame.estimation.results import Estimates
    from ame.pipeline.plan import draw_masks

    selection = Estimates.load(args.selection) if args.selection else None
    kind = "validation" if args.validation else "main"
    masks = draw_masks(_config(args), Dataset.load(args.dataset), args.level, selection, kind)
    masks.save(args.out)


def cmd_train(args) -> None:
    import torch

    from ame import scenarios
    from ame.data import Dataset
    from ame.sampling import MaskSet
    from ame.training.jobs import train_subsets

    torch.set_num_threads(args.threads)
    config = _config(args)
    dataset = Dataset.load(args.dataset)
    stats = train_subsets(
        scenarios.trainer(config, dataset),
        dataset,
        MaskSet.load(args.masks),
        range(args.first, args.first + args.count),
        config,
        _store(config, args.out_dir),
    )
    logging.info(
        "trained %d submodels in %.2fs (job total %.2fs)",
        stats["n_subsets"],
        stats["train_seconds"],
        stats["job_seconds"],
    )


def cmd_gather(args) -> None:
    from ame.behaviour.gather import gather, gather_training_points
    from ame.data import Dataset
    from ame.sampling import MaskSet

    config, dataset = _config(args), Dataset.load(args.dataset)
    store = _store(config, args.submodels)
    behaviours = gather(config, dataset, MaskSet.load(args.masks), store)
    if args.training_points:
        gather_training_points(dataset, store, behaviours.subsets).save(args.training_points)
    behaviours.save(args.out)


def cmd_estimate(args) -> None:
    from ame.behaviour.gather import Behaviours
    from ame.errors import UserError
    from ame.estimation.results import Estimates, PrefixEstimates, estimator_from_params
    from ame.sampling import MaskSet

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = _config(args)
    behaviours = Behaviours.load(args.behaviours)
    masks = MaskSet.load(args.masks)
    try:
        estimator = estimator_from_params(config).fit(
            masks.column_masks(behaviours.subsets),
            behaviours.p,
            behaviours.Y,
            design=masks.design,
            subset_index=behaviours.subsets,
        )
    except UserError as err:  # the estimator names its argument: say where it came from
        raise UserError(f"estimation ({len(behaviours.subsets)} submodels): {err}") from err
    prefixes = PrefixEstimates.fit(config, masks, behaviours)
    Estimates.from_estimator(estimator, config, behaviours, masks).save(args.out, args.scores)
    prefixes.save(args.prefixes)


def cmd_mislabels(args) -> None:
    from ame.artifacts import atomic_write_json, atomic_write_text
    from ame.behaviour.gather import TrainingPoints
    from ame.estimation.mislabel import MislabelDetector
    from ame.sampling import MaskSet

    e = _config(args)["estimation"]
    points = TrainingPoints.load(args.training_points)
    masks = MaskSet.load(args.masks).masks[points.subsets]
    found = MislabelDetector(e["fdr"], e["ci_level"], random_state=e["random_state"])
    found.fit(masks, points.own, points.queries)
    atomic_write_text(args.out, found.table().to_csv(index=False))
    atomic_write_json(
        args.summary,
        {
            "fdr": e["fdr"],
            "listed": int(found.selected_.sum()),
            "expected_clean": found.expected_clean_,
            "clean_share": found.clean_share_,
            "min_list": found.min_list_,
            "n_calibration": found.n_calibration_,  # those with a value: what min_list counts
            "n_submodels": int(len(points.subsets)),
            "unidentifiable": int(found.unidentifiable_.sum()),
        },
    )


def cmd_evaluate(args) -> None:
    from ame.behaviour.gather import Behaviours
    from ame.data import Dataset
    from ame.estimation.results import Estimates, PrefixEstimates
    from ame.evaluation.metrics import evaluate
    from ame.sampling import MaskSet

    evaluate(
        _config(args),
        Dataset.load(args.dataset),
        MaskSet.load(args.masks),
        Behaviours.load(args.behaviours),
        Estimates.load(args.estimates),
        PrefixEstimates.load(args.prefixes),
        metrics_path=args.metrics,
        curve_path=args.curve,
        per_query_path=args.per_query,
    )


def cmd_removal(args) -> None:
    from ame.artifacts import atomic_write_json
    from ame.data import Dataset
    from ame.estimation.results import Estimates
    from ame.evaluation.removal import plan_removal
    from ame.pipeline.plan import experiment

    config = _config(args)
    masks, plan = plan_removal(
        config,
        Dataset.load(args.dataset),
        Estimates.load(args.estimates),
        experiment(config, args.level, "removal"),
    )
    atomic_write_json(args.plan, plan)
    masks.save(args.out)


def cmd_validate(args) -> None:
    from ame.behaviour.gather import Behaviours
    from ame.estimation.results import Estimates, PrefixEstimates
    from ame.evaluation.removal import load_plan
    from ame.evaluation.validation import validate
    from ame.sampling import MaskSet

    validate(
        _config(args),
        Estimates.load(args.estimates),
        PrefixEstimates.load(args.prefixes),
        MaskSet.load(args.masks),
        MaskSet.load(args.validation_masks),
        Behaviours.load(args.validation_behaviours),
        load_plan(args.removal_plan),
        Behaviours.load(args.removal_behaviours),
        summary_path=args.summary,
        per_query_path=args.per_query,
        curve_path=args.curve,
        predictions_path=args.predictions,
    )


def cmd_report(args) -> None:
    from ame.report.report import write_report

    write_report(
        _config(args),
        dataset_path=args.dataset,
        estimates_path=args.estimates,
        metrics_path=args.metrics,
        curve_path=args.curve,
        per_query_path=args.per_query,
        out=args.out,
        plots_dir=args.plots_dir,
        levels=dict(zip(args.level_name or [], args.level_dir or [], strict=True)),
        validation={
            "summary": args.validation,
            "per_query": args.validation_per_query,
            "curve": args.lds_curve,
            "predictions": args.validation_predictions,
        }
        if args.validation
        else None,
        mislabels=(args.mislabels, args.mislabels_summary) if args.mislabels else None,
    )


def build_parser() -> argparse.ArgumentParser:
    from ame.pipeline.plan import LEVELS, VALIDATION_FILES

    parser = argparse.ArgumentParser(prog="ame", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name, func, help_text, *files):
        sub = verbs.add_parser(name, help=help_text)
        sub.add_argument("--params", default="params.yaml", help="run configuration")
        for flag in files:
            sub.add_argument(f"--{flag}", required=True, type=Path)
        sub.set_defaults(func=func)
        return sub

    verb("prepare", cmd_prepare, "build the dataset arrays and ground truth", "out")
    sample = verb("sample", cmd_sample, "draw the subset masks", "dataset", "out")
    sample.add_argument(
        "--selection",
        type=Path,
        help="the estimates the level follows: the sources' (a hierarchy's point level) or the "
        "screen's (a two-stage design's second stage)",
    )
    sample.add_argument(
        "--validation",
        action="store_true",
        help="the experiment's held-out validation subsets (docs/how-to/validation.md)",
    )
    train = verb(
        "train", cmd_train, "train submodels first..first+count-1", "dataset", "masks", "out-dir"
    )
    train.add_argument("--first", type=int, required=True, help="index of the first subset")
    train.add_argument("--count", type=int, default=1, help="number of consecutive subsets")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    gather = verb(
        "gather",
        cmd_gather,
        "check submodel fingerprints and build the behaviour matrix",
        "dataset",
        "masks",
        "submodels",
        "out",
    )
    gather.add_argument(
        "--training-points",
        type=Path,
        help="also write the own-label probabilities of the training and query points "
        "(submodels trained with training.training_points)",
    )
    verb(
        "mislabels",
        cmd_mislabels,
        "out-of-subset values of the training points and the relabel list at the FDR",
        "training-points",
        "masks",
        "out",
        "summary",
    )
    estimate = verb(
        "estimate",
        cmd_estimate,
        "fit the AME estimator and select points",
        "behaviours",
        "masks",
        "out",
        "scores",
        "prefixes",
    )
    estimate.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    verb(
        "evaluate",
        cmd_evaluate,
        "metrics against ground truth and the budget curve",
        "dataset",
        "masks",
        "behaviours",
        "estimates",
        "prefixes",
        "metrics",
        "curve",
        "per-query",
    )
    removal = verb(
        "removal",
        cmd_removal,
        "the training sets of the counterfactual removal arms",
        "dataset",
        "estimates",
        "out",
        "plan",
    )
    for sub in (sample, removal):
        sub.add_argument(
            "--level",
            choices=LEVELS,
            default="points",
            help="level of the study (docs/how-to/hierarchies.md, docs/how-to/stages.md)",
        )
    verb(
        "validate",
        cmd_validate,
        "LDS on held-out submodels and the removal effects",
        "estimates",
        "prefixes",
        "masks",
        "validation-masks",
        "validation-behaviours",
        "removal-plan",
        "removal-behaviours",
        "summary",
        "per-query",
        "curve",
        "predictions",
    )
    report = verb(
        "report",
        cmd_report,
        "plots and report.md",
        "dataset",
        "estimates",
        "metrics",
        "curve",
        "per-query",
        "out",
        "plots-dir",
    )
    for flag in VALIDATION_FILES:
        report.add_argument(f"--{flag}", type=Path, help="the validate step's outputs (optional)")
    report.add_argument(
        "--level-name",
        action="append",
        help="another experiment of the study (sources, flat, screen)",
    )
    report.add_argument(
        "--level-dir", action="append", type=Path, help="its results directory (same order)"
    )
    for flag in ("mislabels", "mislabels-summary"):
        report.add_argument(f"--{flag}", type=Path, help="the mislabels step's outputs (optional)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from ame.errors import UserError

    try:
        args.func(args)
    except UserError as err:  # the one rule: bad input is one line; anything else is a bug
        if os.environ.get("AME_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"ame {args.verb}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
