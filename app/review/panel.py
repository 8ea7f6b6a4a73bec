"""What the score panel shows: built from the stored sheet, or from the reviewer's own rejected input
(so a 422 never wipes what they typed), or from the stored sheet after a 409 (with their input
listed beside it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.core.templating import fmt_score
from app.core.time import aware, beijing
from app.review.forms import SHEET_LIMITS
from app.review.scoring import SheetState, Target, parse_value


@dataclass
class Panel:
    target: Target
    stored: SheetState
    phase: str
    inputs: dict[int, str] = field(default_factory=dict)
    comment: str = ""
    errors: dict = field(default_factory=dict)
    message: str | None = None
    tone: str | None = None  # ok | error | conflict
    attempted: dict[int, str] | None = None
    attempted_comment: str | None = None

    @property
    def rubric(self):
        return self.target.rubric

    @property
    def version(self) -> int:
        return self.stored.version

    @property
    def submitted(self) -> bool:
        return self.stored.submitted

    @property
    def withdrawn(self) -> bool:
        return self.target.status != "active"

    @property
    def editable(self) -> bool:
        return self.phase == "reviewing" and not self.stored.submitted and not self.withdrawn

    @property
    def saved_at(self) -> datetime | None:
        return self.stored.updated_at if self.stored.id else None

    @property
    def saved_iso(self) -> str:
        return aware(self.saved_at).isoformat() if self.saved_at else ""

    @property
    def saved_clock(self) -> str:
        """HH:MM:SS in Beijing time (score-panel.js shows the same clock after each save)."""
        return beijing(self.saved_at).strftime("%H:%M:%S") if self.saved_at else ""

    @property
    def total(self) -> float:
        total = 0.0
        for c in self.rubric:
            value, error = parse_value(self.inputs.get(c.id), c)
            if value is not None and not error:
                total += float(value)
        return total

    @property
    def filled(self) -> int:
        return sum(1 for c in self.rubric if (self.inputs.get(c.id) or "").strip())

    @property
    def max_total(self) -> float:
        return self.target.max_total

    @property
    def comment_max(self) -> int:
        """The 评审意见 limit the form enforces; the template renders it and score-panel.js reads it back."""
        return SHEET_LIMITS["comment"]


def stored_inputs(state: SheetState) -> dict[int, str]:
    return {cid: fmt_score(v) for cid, v in state.values.items()}


def from_stored(target: Target, state: SheetState, phase: str, **extra) -> Panel:
    return Panel(target, state, phase, inputs=stored_inputs(state), comment=state.comment, **extra)


def from_input(target: Target, state: SheetState, phase: str, raw: dict[int, str | None], comment: str,
               **extra) -> Panel:
    inputs = {cid: (v or "").strip() for cid, v in raw.items()}
    return Panel(target, state, phase, inputs=inputs, comment=comment, **extra)


def conflict(target: Target, state: SheetState, phase: str, raw: dict[int, str | None], comment: str,
             message: str) -> Panel:
    """The stored sheet in the inputs; what the reviewer had typed, listed for re-entry."""
    attempted = {cid: (v or "").strip() for cid, v in raw.items()}
    changed = {cid: v for cid, v in attempted.items() if v != stored_inputs(state).get(cid, "")}
    comment = (comment or "").strip()
    return from_stored(target, state, phase, message=message, tone="conflict", attempted=changed,
                       attempted_comment=comment if comment != state.comment else None)
