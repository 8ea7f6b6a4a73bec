"""The counted sheets of one round × category, read with the ranking's own SQL (counted_sheets_ctes:
submitted, assigned, not recused, active nomination — the rule has one home, app/ranking/sql.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, text

from app.extensions import db
from app.models import User
from app.ranking import engine as ranking
from app.ranking import sql as ranking_sql
from app.ranking.sql import Criteria
from app.stats.robustness import Panel


@dataclass
class CategoryData:
    panel: Panel
    criteria: list  # ranking.CriterionInfo in rubric order
    reviewer_names: dict[int, str]


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def panel(round_id: int, category: str) -> CategoryData:
    """Every active nomination of the category (ascending id) and its counted sheets with the
    per-criterion values, ordered by nomination then reviewer: the same rows on both engines."""
    infos = ranking.criteria_of(round_id, category)
    crit = Criteria(tuple(c.id for c in infos), tuple(c.code for c in infos))
    columns = "".join(f", st.c_{i}" for i in range(len(crit.ids)))
    sql = f"""
WITH {ranking_sql.counted_sheets_ctes(crit, False, _dialect())}
SELECT noms.id AS nomination_id, st.reviewer_id {columns}
FROM noms
LEFT JOIN sheet_totals st ON st.nomination_id = noms.id
ORDER BY noms.id, st.reviewer_id
"""
    rows = db.session.execute(text(sql), {"round_id": round_id, "category": category, **crit.params()}).all()
    nomination_ids: list[int] = []
    sheet_nom: list[int] = []
    reviewers: list[int] = []
    values: list[tuple] = []
    for r in rows:
        if not nomination_ids or nomination_ids[-1] != r[0]:
            nomination_ids.append(r[0])
        if r[1] is not None:
            sheet_nom.append(len(nomination_ids) - 1)
            reviewers.append(r[1])
            values.append(tuple(float(v) for v in r[2:]))
    width = max(len(crit.ids), 1)
    data = Panel(
        nomination_ids=np.asarray(nomination_ids, dtype=np.int64),
        sheet_nom=np.asarray(sheet_nom, dtype=np.int64),
        sheet_reviewer=np.asarray(reviewers, dtype=np.int64),
        values=np.asarray(values, dtype=np.float64).reshape(-1, width) if values else np.zeros((0, width)),
        criteria=crit.codes,
    )
    ids = sorted(set(reviewers))
    names = dict(db.session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all()) if ids else {}
    return CategoryData(data, infos, names)
