"""§11.8 Detection job: the report's figures, as the paper's Fig. 2 and 3 draw them.

``triggers.png`` shows every label's reversed trigger (mask times pattern, the image the
trigger stamps), one panel per label, and ``trigger-label-<t>.png`` each one alone;
``l1-norms.png`` the L1 norms of the best masks; ``anomaly-indices.png`` the anomaly
indices with the threshold 2. Flagged labels are drawn in red. Files are written atomically.
"""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from fast.detection import ANOMALY_THRESHOLD, LabelResult

FLAGGED_COLOUR = "tab:red"
OTHER_COLOUR = "tab:blue"


def _save(figure: Figure, path: str) -> str:
    """Write a figure atomically (a temporary file, then a rename) and close it."""
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=120, bbox_inches="tight")
    plt.close(figure)
    os.replace(temporary, path)
    return path


def _trigger_panel(axes: Any, result: LabelResult, flagged: bool) -> None:
    axes.imshow(result.mask * result.pattern, cmap="gray", vmin=0.0, vmax=255.0)
    axes.set_title(
        f"label {result.target}\nL1 {result.best_norm:.1f}", color=FLAGGED_COLOUR if flagged else "black"
    )
    axes.set_xticks([])
    axes.set_yticks([])


def _bars(labels: list[int], values: list[float], flagged: list[int], ylabel: str, title: str) -> Figure:
    figure, axes = plt.subplots(figsize=(6, 3.2))
    colours = [FLAGGED_COLOUR if label in flagged else OTHER_COLOUR for label in labels]
    axes.bar([str(label) for label in labels], values, color=colours)
    axes.set_xlabel("label")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    return figure


def write_figures(directory: str, results: list[LabelResult], report: dict[str, Any]) -> list[str]:
    """Draw the triggers, the L1 norms and the anomaly indices; return the files written."""
    flagged = list(report["flagged_labels"])
    labels = [result.target for result in results]
    written = []
    figure, grid = plt.subplots(1, len(results), figsize=(1.6 * len(results), 2.2), squeeze=False)
    for axes, result in zip(grid[0], results, strict=True):
        _trigger_panel(axes, result, result.target in flagged)
    written.append(_save(figure, os.path.join(directory, "triggers.png")))
    for result in results:
        figure, axes = plt.subplots(figsize=(2.2, 2.4))
        _trigger_panel(axes, result, result.target in flagged)
        written.append(_save(figure, os.path.join(directory, f"trigger-label-{result.target}.png")))
    norms = [row["best_l1_norm"] for row in report["labels"]]
    written.append(
        _save(
            _bars(labels, norms, flagged, "L1 norm of the best mask", "Reversed trigger size per label"),
            os.path.join(directory, "l1-norms.png"),
        )
    )
    indices = [min(row["anomaly_index"], 1e3) for row in report["labels"]]
    figure = _bars(labels, indices, flagged, "anomaly index", "Anomaly index (MAD) per label")
    figure.axes[0].axhline(ANOMALY_THRESHOLD, color="black", linestyle="--", linewidth=1)
    written.append(_save(figure, os.path.join(directory, "anomaly-indices.png")))
    return written
