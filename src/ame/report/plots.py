"""The report's figures: one function per PNG, each written atomically (``report.md`` links
them by name)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ame.artifacts import atomic_path  # noqa: E402
from ame.data import Dataset  # noqa: E402
from ame.estimation.results import Estimates  # noqa: E402

N_TOP_IMAGES = 8

N_QUERIES_SHOWN = 4


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _finish_budget_plot(fig, ax, xlabel: str, title: str, path: Path) -> None:
    """Rates against a log2 budget axis: the common frame of the budget plots."""
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


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
