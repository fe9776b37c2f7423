"""The human-readable report: report.md with PNG plots of the budget curve, the AME distribution
with the ground truth marked, and the top-attributed training images of each query. It opens
with the evidence that needs no ground truth: held-out LDS and counterfactual removal."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ame import scenarios  # noqa: E402
from ame.artifacts import atomic_path, atomic_write_text, load_csv, load_json  # noqa: E402
from ame.data import Dataset  # noqa: E402
from ame.estimation.results import Estimates  # noqa: E402
from ame.sampling.hierarchy import selected_sources  # noqa: E402

N_TOP_IMAGES = 8
N_QUERIES_SHOWN = 4
LEVEL_COLUMNS = ("n_submodels", "n_units_studied", "precision", "recall", "topk_precision")


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def selection_rule(estimation: dict) -> str:
    """How points were selected, in words that follow the settings."""
    if estimation["selection"] == "support":
        return "the LASSO support (no FDR control)"
    if estimation["selection"] == "bh":
        return f"Benjamini-Hochberg on the debiased p-values at target FDR {estimation['fdr']}"
    name = "Knockoff+" if estimation["knockoff_plus"] else "Knockoff"
    return f"{name} at target FDR {estimation['fdr']}"


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
        return ['No estimate was flagged (README, "When an estimate is flagged").', ""]
    lines = ["## Flagged estimates", ""]
    lines += [f"- **{count}** {FLAG_TEXT[key]}" for key, count in raised]
    return lines + ["", "Per query: `metrics_per_query.csv` (columns `degenerate`, ...).", ""]


def smallest_budget_reaching(curve: pd.DataFrame, recall: float) -> int | None:
    """Fewest submodels at which a budget curve's mean recall reaches ``recall`` (None: never)."""
    reached = curve[curve["recall"] >= recall - 1e-12]
    return None if reached.empty else int(reached["n_submodels"].min())


def plot_budget_curve(curve: pd.DataFrame, rule: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for column, label in (
        ("precision", f"precision ({rule})"),
        ("recall", "recall"),
        ("topk_precision", "top-k precision"),
    ):
        ax.plot(curve["n_submodels"], curve[column], marker="o", label=label)
    _finish_budget_plot(
        fig,
        ax,
        "number of submodels (budget prefix)",
        "Detection of the true points vs budget (mean over queries)",
        path,
    )


def _finish_budget_plot(fig, ax, xlabel: str, title: str, path: Path) -> None:
    """Rates against a log2 budget axis: the common frame of the budget plots."""
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_ame_distribution(estimates: Estimates, truth: np.ndarray | None, path: Path) -> None:
    q = len(estimates.names) - 1  # the aggregate query when there is one, else the last query
    ame = estimates.ame[q]
    is_true = np.zeros(len(ame), dtype=bool) if truth is None else np.isin(estimates.ids, truth)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(ame.min(), ame.max(), 60)
    ax.hist(ame[~is_true], bins=bins, color="tab:gray", label="other training points")
    if is_true.any():
        ax.hist(ame[is_true], bins=bins, color="tab:red", alpha=0.8, label="ground truth (poisons)")
    ax.set_yscale("log")
    ax.set_xlabel(f"AME on {estimates.names[q]} (behaviour units)")
    ax.set_ylabel("training points")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_top_images(
    dataset: Dataset, estimates: Estimates, truth: np.ndarray | None, direction: str, path: Path
) -> None:
    """Each row: a query image, then its top-attributed training images (red frame: true)."""
    shape = dataset.meta.get("input_shape", list(dataset.X_train.shape[1:]))
    points = estimates.points or []
    queries = [q for q, point in enumerate(points) if point >= 0][:N_QUERIES_SHOWN]
    if not queries or len(shape) not in (2, 3):
        return
    fig, axes = plt.subplots(
        len(queries),
        N_TOP_IMAGES + 1,
        figsize=(1.2 * (N_TOP_IMAGES + 1), 1.35 * len(queries)),
        squeeze=False,
    )
    true_set = set() if truth is None else set(truth.tolist())

    def show(ax, image, title, frame=None):
        image = np.asarray(image).reshape(shape)
        if image.ndim == 3:  # channels first -> last, scaled for display
            image = np.moveaxis(image, 0, -1)
            image = (image - image.min()) / max(float(np.ptp(image)), 1e-8)
        ax.imshow(image, cmap="gray_r" if image.ndim == 2 else None)
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        if frame:
            for spine in ax.spines.values():
                spine.set_edgecolor(frame)
                spine.set_linewidth(2.5)

    for row, q in enumerate(queries):
        show(
            axes[row, 0],
            dataset.X_query[points[q]],
            estimates.names[q],
            "tab:blue",
        )
        for col, column in enumerate(estimates.ranking(direction)[q][:N_TOP_IMAGES]):
            point = int(estimates.ids[column])
            show(
                axes[row, col + 1],
                dataset.X_train[point],
                f"#{point} {estimates.ame[q, column]:.3f}",
                "tab:red" if point in true_set else None,
            )
    _save(fig, path)


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
) -> None:
    """Write report.md and its plots; ``levels`` maps the study's other experiments (sources,
    flat) to their results directories; ``validation`` names the validate step's outputs
    (``summary``, ``per_query``, ``curve``, ``predictions``)."""
    dataset = Dataset.load(dataset_path)
    estimates = Estimates.load(estimates_path)
    metrics = load_json(metrics_path)
    curve = load_csv(curve_path)
    per_query = load_csv(per_query_path)
    plots_dir = Path(plots_dir)
    truth = dataset.ground_truth
    rule = selection_rule(config["estimation"])
    direction = config["estimation"]["direction"]
    plots = {
        "ame_distribution.png": lambda p: plot_ame_distribution(estimates, truth, p),
        "top_images.png": lambda p: plot_top_images(dataset, estimates, truth, direction, p),
    }
    if len(curve):
        plots["budget_curve.png"] = lambda p: plot_budget_curve(curve, rule, p)
    for name, draw in plots.items():
        draw(plots_dir / name)
    rel = (
        Path(plots_dir).relative_to(Path(out).parent)
        if Path(plots_dir).is_relative_to(Path(out).parent)
        else Path(plots_dir)
    )
    columns = ["n_submodels", "n_points", "n_queries", "fdr_target"]
    if truth is not None:  # without ground truth these metrics are absent, not zero
        columns += ["precision", "recall", "topk_precision"]
    summary = pd.DataFrame([{k: metrics[k] for k in columns}])
    header = [
        "# AME report",
        "",
        f"Dataset: **{dataset.meta.get('name')}** ({dataset.n_points} training points, "
        f"{len(estimates.names)} queries). Design: **{config['sampling']['design']}**; "
        f"estimand: {estimates.semivalue}. Behaviour: {config['behaviour']['kind']} of the "
        f"query's class. AMEs are in the behaviour's own units. "
        + scenarios.get(config).submodel_line(config),
        "",
    ]
    levels_part = (
        hierarchy_section(dataset, metrics, levels, plots_dir, rel, direction) if levels else []
    )
    evidence = validation_section(validation, truth is None, plots_dir, rel) if validation else []
    if evidence and levels:
        evidence[2:2] = [
            "These figures are the point level's; the source level's are in the hierarchical "
            "section below.",
            "",
        ]
    lines = [
        "## Summary (mean over queries)",
        "",
        summary.to_markdown(index=False),
        "",
        f"Selection: {rule}, direction {config['estimation']['direction']}; "
        f"{metrics['n_excluded']} submodels excluded as diverged. "
        f"Run fingerprint `{metrics['run_fingerprint'][:16]}`.",
        "",
        *flags_section(metrics, per_query),
    ]
    if truth is not None and config["estimation"]["selection"] != "support":
        lines += [
            "*Precision here is measured against the planted ground truth, which is not the "
            "false discovery rate the selection controls:* a selected point outside the ground "
            "truth may still have a real effect on the behaviour (a clean image that resembles "
            "the trigger, say). The FDR target bounds the share of selected points with **no** "
            "effect, not the share outside the planted set.",
            "",
        ]
    if truth is not None and len(curve):
        lines += [
            "## Precision and recall vs budget",
            "",
            curve_table(curve),
            "",
            f"![budget curve]({rel / 'budget_curve.png'})",
            "",
        ]
    lines += [
        "## Per query",
        "",
        per_query.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## AME distribution",
        "",
        f"![AME distribution]({rel / 'ame_distribution.png'})",
        "",
    ]
    if (plots_dir / "top_images.png").exists():
        lines += [
            "## Top-attributed training images",
            "",
            "Query image first (blue), then the training points with the largest AME; "
            "red frames mark ground-truth points.",
            "",
            f"![top images]({rel / 'top_images.png'})",
            "",
        ]
    lines += top_table(estimates, "## Top points per query", direction)
    atomic_write_text(out, "\n".join(header + evidence + levels_part + lines) + "\n")


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


def plot_hierarchy_vs_flat(curve: pd.DataFrame, total: int, points: dict, path: Path) -> None:
    """The flat run's recall and precision against its budget, and where the hierarchy lands."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for column, marker in (("recall", "o"), ("precision", "s")):
        (line,) = ax.plot(
            curve["n_submodels"], curve[column], marker=marker, label=f"flat: {column}"
        )
        ax.scatter(
            [total],
            [points[column]],
            marker="*",
            s=160,
            zorder=3,
            color=line.get_color(),
            edgecolor="black",
            label=f"hierarchy: {column}",
        )
    _finish_budget_plot(
        fig,
        ax,
        "number of submodels (hierarchy: both levels together)",
        "Point-level detection: hierarchy vs flat run (mean over queries)",
        path,
    )


def hierarchy_section(
    dataset: Dataset, points: dict, levels: dict, plots_dir: Path, rel: Path, direction: str
) -> list[str]:
    """Source and point levels side by side, and the flat run's budget for the same recall."""
    sources = load_json(levels["sources"] / "metrics.json")
    src_estimates = Estimates.load(levels["sources"] / "estimates.npz")
    chosen = selected_sources(src_estimates.selected, src_estimates.ids)
    names = dataset.meta.get("source_names")
    rows = [
        {"level": "sources", **{k: sources[k] for k in LEVEL_COLUMNS}},
        {"level": "points inside the selected sources", **{k: points[k] for k in LEVEL_COLUMNS}},
    ]
    total = sources["n_submodels"] + points["n_submodels"]
    lines = [
        "## Hierarchical study: sources, then points inside the selected sources",
        "",
        f"{dataset.n_sources} sources. The source level selected {len(chosen)} of them (for any "
        f"query): {', '.join(str(names[s] if names else s) for s in chosen)}. The point level "
        f"studied their {points['n_units_studied']} points, every other source being in every "
        "subset. Precision and recall are means over queries; the point level counts a true "
        "point of an unselected source as missed.",
        "",
        pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    if "flat" in levels and points["recall"] is not None:
        flat = load_json(levels["flat"] / "metrics.json")
        curve = load_csv(levels["flat"] / "budget_curve.csv")
        needed = smallest_budget_reaching(curve, points["recall"])
        reach = (
            f"reached that recall at {needed} submodels (the smallest budget prefix of its curve)"
            if needed is not None
            else f"did not reach that recall within its {flat['n_submodels']} submodels"
        )
        lines += [
            f"**Submodels**: the two levels used {sources['n_submodels']} + "
            f"{points['n_submodels']} = {total} for a point-level recall of "
            f"{points['recall']:.3f}. A flat point-level run on the same data, in the same "
            f"workflow run, {reach}; at its full budget of {flat['n_submodels']} it had "
            f"precision {flat['precision']:.3f} and recall {flat['recall']:.3f}. Its curve:",
            "",
            curve_table(curve),
            "",
            f"![hierarchy vs flat]({rel / 'hierarchy_vs_flat.png'})",
            "",
        ]
        plot_hierarchy_vs_flat(curve, total, points, plots_dir / "hierarchy_vs_flat.png")
    checks = levels["sources"] / "validation.json"
    if checks.exists():
        lines += source_evidence(load_json(checks))
    lines += top_table(src_estimates, "### Top sources per query", direction, names=names)
    lines += [
        "## Point level",
        "",
        "The sections below describe the point level, inside the selected sources.",
        "",
    ]
    return lines


def _figure(value, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _percent(fraction) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.0f} %"


def plot_lds_curve(curve: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(curve["n_submodels"], curve["lds_mean"], marker="o", label="LDS (mean over queries)")
    ax.fill_between(
        curve["n_submodels"], curve["lds_ci_low"], curve["lds_ci_high"], alpha=0.25, label="95% CI"
    )
    _finish_budget_plot(
        fig, ax, "number of submodels (budget prefix)", "Held-out LDS vs budget", path
    )


def plot_predictions(predictions: pd.DataFrame, query: str, path: Path) -> None:
    rows = predictions[predictions["query"] == query]
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for p, group in rows.groupby("p"):
        ax.scatter(group["predicted"], group["measured"], s=10, label=f"p = {p:.3g}")
    ax.set_xlabel("predicted: sum of AMEs of the subset, centred at p")
    ax.set_ylabel("measured behaviour")
    ax.set_title(f"Held-out submodels, {query}")
    if rows["p"].nunique() <= 10:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_removal_arms(arms: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.2 * len(arms) + 2.5, 3.6))
    x = np.arange(len(arms))
    for i, (arm, label) in enumerate(
        (("full", "full data"), ("removed", "minus selection"), ("random", "minus random"))
    ):
        ax.bar(
            x + (i - 1) * 0.27,
            arms[f"{arm}_mean"],
            0.27,
            yerr=arms[f"{arm}_sd"].fillna(0),
            capsize=3,
            label=label,
        )
    ax.set_xticks(x, arms["query"], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("behaviour (mean over seeds)")
    ax.set_title("Counterfactual retraining")
    ax.legend(fontsize=8)
    _save(fig, path)


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
