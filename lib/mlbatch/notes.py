"""One-line notes a person must see at the end of a run, not only in a report: suspected
leaks explore kept (or dropped on request), and inputs predict could not read.

The stages record the facts in their manifests' metrics; the CLI's run summary and the
stages' own logs word them with these functions, so both say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHOWN = 5  # columns named in one note; the rest are counted


def leak_note(leaks: list[Mapping[str, Any]] | None) -> str | None:
    """`explore: 2 columns flagged as possible leaks (kept): a (AUC 0.97), b (R² 0.91)`."""
    if not leaks:
        return None
    notes = []
    for action, what in (
        ("flag", "flagged as possible leak{s} (kept)"),
        ("drop", "dropped as suspected leak{s} (explore.drop_suspected_leaks)"),
    ):
        chosen = [leak for leak in leaks if leak.get("action") == action]
        if chosen:
            what = what.format(s="" if len(chosen) == 1 else "s")
            named = [f"{leak['column']} ({leak['metric']} {leak['power']:.2f})"
                     for leak in chosen[:SHOWN]]  # fmt: skip
            more = f" and {len(chosen) - SHOWN} more" if len(chosen) > SHOWN else ""
            notes.append(f"{_count(len(chosen), 'column')} {what}: {', '.join(named)}{more}")
    return "explore: " + "; ".join(notes) if notes else None


def input_note(quality: Mapping[str, Any] | None) -> str | None:
    """`predict: 3 values in 1 column could not be read as numbers (scored as missing): ...`."""
    if not quality:
        return None
    notes = []
    unparseable = quality.get("unparseable") or {}
    if unparseable:
        total = sum(entry["count"] for entry in unparseable.values())
        named = [f"{column} ({entry['count']:,})" for column, entry in unparseable.items()]
        notes.append(
            f"{_count(total, 'value')} in {_count(len(unparseable), 'column')} could "
            f"not be read as numbers (scored as missing): {', '.join(named[:SHOWN])}"
        )
    unseen = {c: e for c, e in (quality.get("unseen") or {}).items() if e["count"]}
    if unseen:
        named = [f"{column} ({entry['share']:.1%} of rows)" for column, entry in unseen.items()]
        notes.append(
            f"categories unseen in training (scored as unknown) in "
            f"{_count(len(unseen), 'column')}: {', '.join(named[:SHOWN])}"
        )
    return "predict: " + "; ".join(notes) if notes else None


def run_notes(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The notes for a run, from each committed stage's metrics (stage -> metrics)."""
    found = [
        leak_note((metrics.get("explore") or {}).get("suspected_leaks")),
        input_note((metrics.get("predict") or {}).get("input_quality")),
    ]
    return [note for note in found if note]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
