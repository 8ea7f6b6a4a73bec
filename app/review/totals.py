"""A sheet's figures — `review_sheets.total` and `n_values` — kept right beside its scores.

The live ranking aggregates these two columns instead of pivoting every score, so they must
never disagree with the scores. Three ways keep them, all inside the transaction that writes the
scores:

* the score save (app/review/scoring.py) writes them in the same UPDATE that moves the sheet's version,
  from the values it just validated: no extra statement on the hottest path, and the optimistic
  version check that refuses a lost update refuses a stale total with it;
* any ORM write of a Score (demo seed, test factories, admin tools) is caught by the session hook below,
  which calls `refresh()` for the touched sheets before the flush ends;
* a bulk Core load (benchmarks, restore of an old backup) calls `refresh()` or writes the columns itself.

`verify()` recomputes every sheet from its scores and reports the differences (`flask ranking verify`).
Only scores of the round × category's criteria count — the same rule as the ranking SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import ReviewSheet, Score

CHUNK = 500
_INFO_KEY = "kepu_sheets_to_refresh"
# Float sums of binary-step values are exact; anything else may differ in the last bits only.
TOLERANCE = 1e-6

_OF_SHEET = """
  FROM scores sc
  JOIN criteria c ON c.id = sc.criterion_id
  JOIN nominations n ON n.id = review_sheets.nomination_id
  WHERE sc.sheet_id = review_sheets.id AND c.round_id = n.round_id AND c.category = n.category"""
_REFRESH = (f"UPDATE review_sheets SET total = COALESCE((SELECT SUM(sc.value) {_OF_SHEET}), 0), "
            f"n_values = (SELECT COUNT(*) {_OF_SHEET}) WHERE id IN ({{ids}})")


def refresh(sheet_ids: Iterable[int], *, connection=None) -> int:
    """Recompute the figures of these sheets from their scores (inside the caller's transaction)."""
    ids = sorted({int(i) for i in sheet_ids if i is not None})
    conn = connection if connection is not None else db.session.connection()
    done = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        # Integers only, so inlining them is safe, and one statement per chunk needs no expanding bind.
        done += conn.execute(text(_REFRESH.format(ids=", ".join(str(i) for i in chunk)))).rowcount
    return done


def refresh_all(round_id: int | None = None) -> int:
    where = "" if round_id is None else " WHERE nomination_id IN (SELECT id FROM nominations WHERE round_id = :rid)"
    ids = db.session.execute(text("SELECT id FROM review_sheets" + where),
                             {} if round_id is None else {"rid": round_id}).scalars().all()
    return refresh(ids)


@dataclass(frozen=True)
class Difference:
    sheet_id: int
    reviewer_id: int
    nomination_id: int
    stored_total: float
    stored_n: int
    actual_total: float
    actual_n: int


_VERIFY = """
WITH actual AS (
  SELECT sc.sheet_id, SUM(sc.value) AS total, COUNT(*) AS n
  FROM scores sc
  JOIN review_sheets s ON s.id = sc.sheet_id
  JOIN nominations n ON n.id = s.nomination_id
  JOIN criteria c ON c.id = sc.criterion_id AND c.round_id = n.round_id AND c.category = n.category
  {where}
  GROUP BY sc.sheet_id
)
SELECT s.id, s.reviewer_id, s.nomination_id, s.total, s.n_values, COALESCE(a.total, 0), COALESCE(a.n, 0)
FROM review_sheets s
JOIN nominations n ON n.id = s.nomination_id
LEFT JOIN actual a ON a.sheet_id = s.id
{where}
ORDER BY s.id
"""


def verify(round_id: int | None = None) -> list[Difference]:
    """Every sheet (of one round, or all) whose stored figures differ from its scores."""
    where = "" if round_id is None else "WHERE n.round_id = :rid"
    rows = db.session.execute(text(_VERIFY.format(where=where)), {} if round_id is None else {"rid": round_id})
    out = []
    for sid, rid, nid, total, n, actual_total, actual_n in rows:
        if int(n) != int(actual_n) or abs(float(total) - float(actual_total)) > TOLERANCE:
            out.append(Difference(sid, rid, nid, float(total), int(n), float(actual_total), int(actual_n)))
    return out


def repair(found: list[Difference], actor=None) -> int:
    """`flask ranking verify --fix`: recompute the figures of the sheets verify() found, audited, and
    invalidate the ranking of every round × category they belong to (its cached copies are keyed by the
    version)."""
    from app.audit import operations as audit
    from app.core.database import write_transaction
    from app.rounds import phases as rounds

    before = {d.sheet_id: d for d in found}
    ids = sorted(before)
    if not ids:
        return 0
    with write_transaction():
        fixed = refresh(ids)
        scopes = db.session.execute(text(
            "SELECT DISTINCT n.round_id, n.category FROM review_sheets s JOIN nominations n ON n.id = s.nomination_id "
            f"WHERE s.id IN ({', '.join(str(int(i)) for i in ids)})")).all()
        for round_id, category in scopes:
            audit.record("sheet.totals_repair", "round", round_id, actor=actor, round_id=round_id,
                         before={str(k): [d.stored_total, d.stored_n] for k, d in before.items()},
                         after={str(k): [d.actual_total, d.actual_n] for k, d in before.items()})
            rounds.bump_ranking(round_id, category)
    return fixed


# --- the ORM hook -------------------------------------------------------------------------------


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context) -> None:
    touched = session.info.setdefault(_INFO_KEY, set())
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Score):
            sheet_id = obj.sheet_id if obj.sheet_id is not None else getattr(obj.sheet, "id", None)
            if sheet_id is not None:
                touched.add(sheet_id)


@event.listens_for(Session, "after_flush_postexec")
def _refresh_touched(session: Session, _context) -> None:
    touched = session.info.pop(_INFO_KEY, None)
    if not touched:
        return
    refresh(touched, connection=session.connection())
    # The objects in the session still hold the figures they were loaded with.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, ReviewSheet) and obj.id in touched:
            session.expire(obj, ["total", "n_values"])
