"""§11.10 Table 1 grid: detection for patience 5, 7 and learning rates 0.1, 0.01, 0.001 (the paper's Table 1).

``mpbadnet table1 MODEL_DIR --output DIR`` runs ``mpbadnet detect`` (secure) and its plaintext
baseline (the same model, the shares decoded) for every cell, each into ``DIR/<mode>-p<patience>-lr<rate>``,
and writes ``DIR/table1.md`` and ``DIR/table1.json``: per cell the flagged labels, the
smallest norm and its label and index, the highest index of any other label at or below the
median, the mini-batches, the seconds and (secure) the bytes over all parties.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from fast.detection import DetectionSettings
from fast.detection_job import DetectJob, run_detection, run_plaintext_detection
from fast.pipeline import write_summary

PATIENCES = (5, 7)
LEARNING_RATES = (0.1, 0.01, 0.001)
MODES = ("plaintext", "secure")


def cell_summary(mode: str, patience: int, rate: float, report: dict[str, Any]) -> dict[str, Any]:
    """One row of the table from one detection report."""
    rows = report["labels"]
    smallest = min(rows, key=lambda row: row["best_l1_norm"])
    median = sorted(row["best_l1_norm"] for row in rows)
    centre = (median[(len(median) - 1) // 2] + median[len(median) // 2]) / 2.0
    others = [row["anomaly_index"] for row in rows if row is not smallest and row["best_l1_norm"] <= centre]
    return {
        "mode": mode,
        "patience": patience,
        "learning_rate": rate,
        "flagged": report["flagged_labels"],
        "smallest_label": smallest["label"],
        "smallest_norm": smallest["best_l1_norm"],
        "smallest_index": smallest["anomaly_index"],
        "highest_other_index": max(others, default=0.0),
        "mini_batches": report["mini_batches"],
        "seconds": report.get("wall_seconds", report["seconds"]),
        "bytes_total": report.get("bytes_total"),
    }


def markdown(cells: list[dict[str, Any]]) -> str:
    """The table as Markdown."""
    lines = [
        "| mode | patience | learning rate | flagged | smallest norm (label) | its index "
        "| highest other index at or below the median | mini-batches | seconds | bytes, all parties |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in cells:
        flagged = ", ".join(str(label) for label in cell["flagged"]) or "none"
        sent = "" if cell["bytes_total"] is None else f"{cell['bytes_total'] / 1e9:.2f} GB"
        lines.append(
            f"| {cell['mode']} | {cell['patience']} | {cell['learning_rate']} | {flagged} "
            f"| {cell['smallest_norm']:.1f} ({cell['smallest_label']}) | {cell['smallest_index']:.2f} "
            f"| {cell['highest_other_index']:.2f} | {cell['mini_batches']} | {cell['seconds']:.0f} | {sent} |"
        )
    return "\n".join(lines) + "\n"


def run_grid(job: DetectJob, modes: tuple[str, ...] = MODES) -> list[dict[str, Any]]:
    """Every cell of the grid, in the order mode, patience, learning rate; writes the table."""
    cells = []
    for mode in modes:
        for patience in PATIENCES:
            for rate in LEARNING_RATES:
                settings: DetectionSettings = replace(job.settings, patience=patience, learning_rate=rate)
                cell_job = replace(
                    job, settings=settings, output=os.path.join(job.output, f"{mode}-p{patience}-lr{rate}")
                )
                report = run_detection(cell_job) if mode == "secure" else run_plaintext_detection(cell_job)
                cells.append(cell_summary(mode, patience, rate, report))
                write_tables(job.output, cells)
    return cells


def write_tables(directory: str, cells: list[dict[str, Any]]) -> None:
    """``table1.json`` and ``table1.md`` (atomically), rewritten after every cell."""
    os.makedirs(directory, exist_ok=True)
    write_summary(os.path.join(directory, "table1.json"), {"cells": cells})
    path = os.path.join(directory, "table1.md")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(markdown(cells))
    os.replace(path + ".tmp", path)
