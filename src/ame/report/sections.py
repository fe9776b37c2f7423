"""The report's sections: each a function of the artifacts it reads (by name), returning its
Markdown lines and drawing its figures (``ame.report.plots``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ame import scenarios
from ame.artifacts import load_csv, load_json
from ame.data import Dataset
from ame.estimation.results import ESTIMANDS, Estimates
from ame.report.plots import (
    plot_ame_distribution,
    plot_budget_curve,
    plot_lds_curve,
    plot_predictions,
    plot_removal_arms,
    plot_top_images,
)


@dataclass
class Run:
    """The artifacts of one level that every section may read, loaded once."""

    config: dict
    dataset: Dataset
    estimates: Estimates
    metrics: dict
    curve: pd.DataFrame
    per_query: pd.DataFrame
    plots_dir: Path
    rel: Path  # the plots directory as report.md links it

    @property
    def direction(self) -> str:
        return self.config["estimation"]["direction"]


def selection_rule(estimation: dict) -> str:
    """How points were selected, in words that follow the settings."""
    if estimation["selection"] == "support":
        return "the LASSO support (no FDR control)"
    if estimation["selection"] == "bh":
        return f"Benjamini-Hochberg on the debiased p-values at target FDR {estimation['fdr']}"
    name = "Knockoff+" if estimation["knockoff_plus"] else "Knockoff"
    return f"{name} at target FDR {estimation['fdr']}"


def header_section(run: Run) -> list[str]:
    """What was studied: the data, the design and estimand, the behaviour, the submodels."""
    c, dataset = run.config, run.dataset
    return [
        "# AME report",
        "",
        f"Dataset: **{dataset.meta.get('name')}** ({dataset.n_points} training points, "
        f"{len(run.estimates.names)} queries). Design: **{c['sampling']['design']}**; "
        f"estimand: {run.estimates.semivalue}"
        + ("" if run.estimates.estimand == "design" else f", {ESTIMANDS[run.estimates.estimand]}")
        + f". Behaviour: {c['behaviour']['kind']} of the "
        f"query's class. AMEs are in the behaviour's own units. "
        + scenarios.get(c).submodel_line(c),
        "",
    ]


def summary_section(run: Run) -> list[str]:
    """The run's figures (metrics.json), ground-truth ones only where there is a ground truth."""
    columns = ["n_submodels", "n_points", "n_queries", "fdr_target"]
    if run.dataset.ground_truth is not None:  # without it these metrics are absent, not zero
        columns += ["precision", "recall", "topk_precision"]
    m = run.metrics
    return [
        "## Summary (mean over queries)",
        "",
        pd.DataFrame([{k: m[k] for k in columns}]).to_markdown(index=False),
        "",
        f"Selection: {selection_rule(run.config['estimation'])}, direction {run.direction}; "
        f"{m['n_excluded']} submodels excluded as diverged. "
        f"Run fingerprint `{m['run_fingerprint'][:16]}`.",
        "",
    ]


def ground_truth_caveat(run: Run) -> list[str]:
    """Precision against planted points is not the FDR the selection controls."""
    if run.dataset.ground_truth is None or run.config["estimation"]["selection"] == "support":
        return []
    return [
        "*Precision here is measured against the planted ground truth, which is not the "
        "false discovery rate the selection controls:* a selected point outside the ground "
        "truth may still have a real effect on the behaviour (a clean image that resembles "
        "the trigger, say). The FDR target bounds the share of selected points with **no** "
        "effect, not the share outside the planted set.",
        "",
    ]


def budget_section(run: Run) -> list[str]:
    """Precision and recall at the budget prefixes (budget_curve.csv), with its plot (drawn
    whenever there is a curve; shown where a ground truth gives it meaning)."""
    if not len(run.curve):
        return []
    plot_budget_curve(
        run.curve, selection_rule(run.config["estimation"]), run.plots_dir / "budget_curve.png"
    )
    if run.dataset.ground_truth is None:
        return []
    return [
        "## Precision and recall vs budget",
        "",
        curve_table(run.curve),
        "",
        f"![budget curve]({run.rel / 'budget_curve.png'})",
        "",
    ]


def per_query_section(run: Run) -> list[str]:
    """metrics_per_query.csv, and the AME distribution of the last query (the aggregate)."""
    plot_ame_distribution(
        run.estimates, run.dataset.ground_truth, run.plots_dir / "ame_distribution.png"
    )
    return [
        "## Per query",
        "",
        run.per_query.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## AME distribution",
        "",
        f"![AME distribution]({run.rel / 'ame_distribution.png'})",
        "",
    ]


def images_section(run: Run) -> list[str]:
    """The top-attributed training images of the first queries, when the data are images."""
    path = run.plots_dir / "top_images.png"
    plot_top_images(run.dataset, run.estimates, run.dataset.ground_truth, run.direction, path)
    if not path.exists():
        return []
    return [
        "## Top-attributed training images",
        "",
        "Query image first (blue), then the training points with the largest AME; "
        "red frames mark ground-truth points.",
        "",
        f"![top images]({run.rel / 'top_images.png'})",
        "",
    ]


FLAG_TEXT = {
    "n_degenerate_queries": "queries whose behaviour is constant once the p-dependent mean is "
    "removed (a saturated probability?): AMEs set to 0, nothing selected",
    "n_truncated_queries": "queries whose λ path stopped at estimation.max_active",
    "n_queries_lambda_at_path_end": "queries whose chosen λ is the end of a truncated path: the "
    "fit is too sparse; raise estimation.max_active",
    "n_queries_knockoffs_cannot_select": "queries where Knockoff+ cannot select anything (fewer "
    "than 1/q candidates): raise the budget, or use selection: bh",
    "n_outlier_behaviours": "behaviours more than 10 robust SDs from their bucket's median "
    "(diverged submodels?); estimation.robust: winsorize clips them",
    "n_unidentifiable_points": "points in every subset or in none of a bucket: AME NaN, never "
    "selected",
}


def flags_section(metrics: dict, per_query: pd.DataFrame) -> list[str]:
    """The estimator's warnings, where the reader sees the numbers they qualify."""
    raised = [(k, metrics[k]) for k in FLAG_TEXT if metrics.get(k)]
    if not raised:
        return ["No estimate was flagged (docs/explanation/trust.md).", ""]
    lines = ["## Flagged estimates", ""]
    lines += [f"- **{count}** {FLAG_TEXT[key]}" for key, count in raised]
    return lines + ["", "Per query: `metrics_per_query.csv` (columns `degenerate`, ...).", ""]


def smallest_budget_reaching(curve: pd.DataFrame, recall: float) -> int | None:
    """Fewest submodels at which a budget curve's mean recall reaches ``recall`` (None: never)."""
    reached = curve[curve["recall"] >= recall - 1e-12]
    return None if reached.empty else int(reached["n_submodels"].min())


def curve_table(curve: pd.DataFrame) -> str:
    """A budget curve as markdown: submodel counts as integers, rates to three decimals, and the
    reason beside a prefix that could not be estimated."""
    if "note" in curve and curve["note"].isna().all():
        curve = curve.drop(columns="note")
    return (
        curve.astype(object)
        .where(curve.notna(), None)
        .to_markdown(
            index=False,
            floatfmt=[".0f" if c == "n_submodels" else ".3f" for c in curve.columns],
            missingval="",
        )
    )


def top_table(
    estimates: Estimates, title: str, direction: str, n_top: int = 5, names=None
) -> list[str]:
    """Markdown rows: the ``n_top`` strongest AMEs in ``direction`` of each query, by id (or by
    name); points with a zero AME are not listed."""
    sign = "raising" if direction == "positive" else "lowering"
    lines = [
        title,
        "",
        f"| query | top {estimates.unit}s {sign} the behaviour (AME) |",
        "|---|---|",
    ]
    for q, (name, top) in enumerate(
        zip(estimates.names, estimates.ranking(direction), strict=True)
    ):
        cells = ", ".join(
            f"{estimates.ids[c] if names is None else names[estimates.ids[c]]} "
            f"({estimates.ame[q, c]:.4f})"
            for c in top[:n_top]
        )
        lines.append(f"| {name} | {cells or '(no non-zero AME)'} |")
    return lines + [""]


def _figure(value, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _percent(fraction) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.0f} %"


def source_evidence(summary: dict) -> list[str]:
    """The source level's held-out LDS and removal of its selected sources, in one paragraph."""
    text = (
        f"**Source level, without ground truth**: held-out LDS {_figure(summary['lds_mean'])} "
        f"(95% CI {_figure(summary['lds_ci_low'])} to {_figure(summary['lds_ci_high'])}, "
        f"{summary['n_validation_submodels']} validation submodels over sources)"
    )
    if summary.get("removal_n_replicates") and "removal_query" in summary:
        text += (
            f"; retrained without its {summary['removal_n_removed']} {summary['removal_rule']} "
            f"sources ({summary['removal_n_removed_points']} points), "
            f"{summary['removal_query']} goes from {_figure(summary['removal_full'])} to "
            f"{_figure(summary['removal_removed'])} (without as many random points: "
            f"{_figure(summary['removal_random'])})"
        )
    if summary.get("removal_note"):
        text += f"; removal: {summary['removal_note']}"
    return [text + ".", ""]


def validation_section(paths: dict, leads: bool, plots_dir: Path, rel: Path) -> list[str]:
    """LDS on held-out submodels and the removal arms: the evidence without ground truth."""
    summary = load_json(paths["summary"])
    per_query = load_csv(paths["per_query"])
    curve = load_csv(paths["curve"])
    predictions = load_csv(paths["predictions"])
    lds = summary["lds_mean"]
    lines = [
        "## Can I trust these attributions?",
        "",
        (
            "The dataset has no ground truth: the evidence below is all there is, computed from "
            "this run's own models."
            if leads
            else "Evidence that needs no ground truth, computed from this run's own models."
        ),
        "",
        f"**Held-out LDS: {_figure(lds)}** (95% CI {_figure(summary['lds_ci_low'])} to "
        f"{_figure(summary['lds_ci_high'])} for the LDS of these estimates on new subsets of the "
        f"design; mean over {summary['lds_n_queries']} queries). "
        f"{summary['n_validation_submodels']} validation submodels, trained on fresh random "
        "subsets that the estimate never saw, are predicted from the estimated effects; the LDS "
        "is the Spearman correlation of prediction and measurement, computed within each "
        f"{summary['lds_within']} (so that bigger subsets making better models cannot inflate "
        "it) and averaged. 1: the effects rank new submodels perfectly; 0: they know nothing.",
        "",
    ]
    if summary["lds_n_units_unpredicted"]:
        lines += [
            f"{summary['lds_n_units_unpredicted']} {summary['unit']}s have no estimate (in every "
            "subset or in none) and predict nothing in the LDS.",
            "",
        ]
    if lds is None:
        lines += [f"LDS not available: {summary['lds_note']}.", ""]
    if "removal_query" in summary:
        if summary["removal_n_replicates"]:
            rule = {"selected": "selected", "top_k": "top-ranked (none selected)"}[
                summary["removal_rule"]
            ]
            points = (
                f" ({summary['removal_n_removed_points']} points)"
                if summary["unit"] == "source"
                else ""
            )
            lines += [
                f"**Counterfactual retraining** ({summary['removal_n_replicates']} of "
                f"{summary['removal_replicates']} seeds per arm): retrained without its "
                f"{summary['removal_n_removed']} {rule} {summary['unit']}s{points}, "
                f"**{summary['removal_query']}** goes from {_figure(summary['removal_full'])} to "
                f"{_figure(summary['removal_removed'])} "
                f"({_percent(summary['removal_drop_fraction'])} of the full-data value removed); "
                f"without as many random training points it is "
                f"{_figure(summary['removal_random'])}.",
                "",
            ]
        if summary["removal_note"]:
            lines += [f"Removal for {summary['removal_query']}: {summary['removal_note']}.", ""]
    shown = per_query["query"].iloc[-1]
    plots = {"lds_scatter.png": lambda p: plot_predictions(predictions, shown, p)}
    if curve["lds_mean"].notna().any():
        plots["lds_curve.png"] = lambda p: plot_lds_curve(curve, p)
    arms = per_query[per_query["n_replicates"].fillna(0) > 0]
    if len(arms):
        plots["removal_arms.png"] = lambda p: plot_removal_arms(arms, p)
    for name, draw in plots.items():
        draw(plots_dir / name)
    columns = ["query", "lds", "lds_note", "removal_rule", "n_removed", "n_replicates"]
    columns += ["full_mean", "full_sd", "removed_mean", "random_mean", "removal_effect"]
    columns += ["random_effect", "removal_note"]
    table = per_query[columns].dropna(axis=1, how="all")
    counts = [c for c in ("n_removed", "n_replicates") if c in table]
    table = table.astype(dict.fromkeys(counts, "Int64"))
    table = table.astype(object).where(table.notna(), None)  # blank cells, not "nan"
    lines += [
        "Per query (removal effect = full − minus selection; random effect = full − minus random):",
        "",
        table.to_markdown(index=False, floatfmt=".3f", missingval=""),
        "",
        "LDS at the budget prefixes (one still rising at the full budget says that more "
        "submodels would help):",
        "",
        curve_table(curve),
        "",
    ]
    lines += [f"![{name}]({rel / name})" for name in plots] + [""]
    return lines


MISLABELS_SHOWN = 20  # rows of the relabel list in the report (mislabels.csv holds every point)


def mislabels_section(table: pd.DataFrame, summary: dict, ground_truth) -> list[str]:
    """The relabel list (``training.training_points``): the points to relabel first, and how
    many clean points to expect among them; the flipped set, where known, only marks them."""
    listed = table[table["listed"]].head(MISLABELS_SHOWN).copy()
    lines = [
        "## Labels to check",
        "",
        f"Each training point's out-of-subset value: the mean probability its own label gets "
        f"from the submodels that left it out ({summary['n_submodels']} submodels). "
        f"**{summary['listed']} points to relabel** at FDR {summary['fdr']}: about "
        f"{summary['expected_clean']:.1f} of them are expected to be clean, calibrated on "
        f"the {summary['n_calibration']} query points (held-out points with their true classes).",
        "",
    ]
    if not summary["listed"]:
        lines += [
            f"Nothing is listed: with {summary['n_calibration']} calibration points a list "
            f"needs at least {summary['min_list']} points (more held-out points, or a larger "
            "`estimation.fdr`).",
            "",
        ]
        return lines
    if ground_truth is not None:
        listed["in ground truth"] = listed["point"].isin(np.asarray(ground_truth))
    lines += [
        listed.to_markdown(index=False, floatfmt=".3f"),
        "",
        f"All points, listed first: `mislabels.csv` (the first {MISLABELS_SHOWN} shown).",
        "",
    ]
    return lines
