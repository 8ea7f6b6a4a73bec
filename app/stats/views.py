"""What the deliberation page needs from app/stats: the figures read lazily (the summary fragment,
refreshed after every decision, never touches them) and the rows filtered by their 稳健性 label."""

from __future__ import annotations

from functools import cached_property

from app.stats import report


class Robustness:
    """The category's figures on first use: cached per ranking version, computed or queued by report.current."""

    def __init__(self, round_id: int, category: str):
        self.round_id, self.category = round_id, category

    @cached_property
    def current(self) -> report.Current:
        return report.current(self.round_id, self.category)

    def place(self, nomination_id: int) -> dict | None:
        return self.current.place(nomination_id)


def filtered(rows: list, robust: Robustness, choice: str) -> list:
    """The standings to show: all (in rank order), only one label, or the 临界 ones first."""
    if not choice:
        return rows

    def label(st) -> str | None:
        p = robust.place(st.nomination_id)
        return p["label"] if p else None

    if choice == "edge-first":
        return sorted(rows, key=lambda st: label(st) != "edge")  # stable: rank order inside each part
    return [st for st in rows if label(st) == choice]
