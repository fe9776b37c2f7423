"""The human-readable report: report.md with PNG plots of the budget curve, the AME distribution
with the ground truth marked, and the top-attributed training images of each query. It opens
with the evidence that needs no ground truth: held-out LDS and counterfactual removal.

:func:`write_report` loads the run's named artifacts once (``sections.Run``) and joins the sections
of ``ame.report.sections``, in the order a reader needs them; figures are ``ame.report.plots``'.
"""

from __future__ import annotations

from pathlib import Path

from ame.artifacts import atomic_write_text, load_csv, load_json
from ame.data import Dataset
from ame.estimation.results import Estimates
from ame.report import sections
from ame.report.hierarchy import hierarchy_section
from ame.report.sections import Run
from ame.report.stages import stages_section


def write_report(
    config: dict,
    dataset_path,
    estimates_path,
    metrics_path,
    curve_path,
    per_query_path,
    out,
    plots_dir,
    levels: dict | None = None,
    validation: dict | None = None,
    mislabels: tuple | None = None,
) -> None:
    """Write report.md and its plots; ``levels`` maps the study's other experiments (sources,
    flat, a two-stage design's screen) to their results directories; ``validation`` names the
    validate step's outputs (``summary``, ``per_query``, ``curve``, ``predictions``);
    ``mislabels`` the mislabels step's (table, summary)."""
    plots_dir = Path(plots_dir)
    run = Run(
        config,
        Dataset.load(dataset_path),
        Estimates.load(estimates_path),
        load_json(metrics_path),
        load_csv(curve_path),
        load_csv(per_query_path),
        plots_dir,
        plots_dir.relative_to(Path(out).parent)
        if plots_dir.is_relative_to(Path(out).parent)
        else plots_dir,
    )
    evidence = (
        sections.validation_section(
            validation, run.dataset.ground_truth is None, plots_dir, run.rel
        )
        if validation
        else []
    )
    staged = bool(levels) and "screen" in levels
    if evidence and levels:
        evidence[2:2] = [
            "These figures are the second stage's (the screen's estimate only picks candidates)."
            if staged
            else "These figures are the point level's; the source level's are in the "
            "hierarchical section below.",
            "",
        ]
    if staged:
        hierarchy = stages_section(config, run.dataset, run.metrics, run.estimates, levels)
    elif levels:
        hierarchy = hierarchy_section(
            run.dataset, run.metrics, levels, plots_dir, run.rel, run.direction
        )
    else:
        hierarchy = []
    lines = [
        *sections.header_section(run),
        *evidence,
        *hierarchy,
        *sections.summary_section(run),
        *(
            sections.mislabels_section(
                load_csv(mislabels[0]), load_json(mislabels[1]), run.dataset.ground_truth
            )
            if mislabels
            else []
        ),
        *sections.flags_section(run.metrics, run.per_query),
        *sections.ground_truth_caveat(run),
        *sections.budget_section(run),
        *sections.per_query_section(run),
        *sections.images_section(run),
        *sections.top_table(run.estimates, "## Top points per query", run.direction),
    ]
    atomic_write_text(out, "\n".join(lines) + "\n")
