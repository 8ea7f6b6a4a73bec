"""The same round on SQLite and on PostgreSQL gives the same ranking, to the last rank and 1e-9 in value."""

from __future__ import annotations

import random
from dataclasses import asdict

import pytest

from app import create_app
from app.extensions import db
from app.ranking import engine as ranking
from tests.conftest import PG_URL, _base_config, _pg_reset
from tests.ranking_fixtures import Scenario

pytestmark = pytest.mark.postgres


def build_round(seed: int = 7) -> None:
    rng = random.Random(seed)
    s = Scenario()
    member = s.add_nominator("省卫生健康委员会", "member", 20)
    society = s.add_nominator("省营养学会", "society", 30)
    reviewers = s.panel(9) + [s.reviewer("own", affiliation=member)]
    nominators = [s.nominator, member, society]
    for i in range(48):
        nom = s.nomination(f"N{i:02d}", nominator=nominators[i % 3])
        quality = rng.choice([60, 70, 70, 80, 80, 90])  # repeated levels make real ties
        for r in rng.sample(reviewers, rng.randint(0, 7)):
            if r.affiliation_id == nom.nominator_id and rng.random() < 0.5:
                continue
            roll = rng.random()
            if roll < 0.08:  # an incomplete draft
                s.sheet(r, nom, values={"content": 10.5, "format": 12}, status="draft")
                continue
            total = min(100, max(0, quality + rng.choice([-7.5, -3, -0.5, 0, 0, 2, 4.5, 8])))
            s.sheet(r, nom, total, status="draft" if roll < 0.2 else "submitted")
        if i % 11 == 3:
            s.recuse(reviewers[0], nom)
        if i == 40:
            nom.status = "withdrawn"
            db.session.commit()


def snapshot() -> dict:
    round_id = current_round_id()
    out = {}
    for drafts in (False, True):
        for method in ("mean", "trimmed", "median", "zscore"):
            rows = ranking.compute(round_id, "activity", method=method, include_drafts=drafts)
            out[("rank", method, drafts)] = [_rounded(asdict(r)) for r in rows]
        out[("severity", drafts)] = [_rounded(asdict(r)) for r in ranking.severity(round_id, "activity", drafts)]
    progress = ranking.progress(round_id, "activity")
    out["progress"] = _rounded(asdict(progress))
    out["breakdown"] = [
        [_rounded({k: v for k, v in asdict(t).items() if k not in ("submitted_at", "updated_at")})
         for t in ranking.reviewer_totals(round_id, nid, include_drafts=True)]
        for nid in range(1, 49, 5)
    ]
    return out


def current_round_id() -> int:
    from sqlalchemy import select

    from app.models import Round

    return db.session.scalar(select(Round.id))


def _rounded(value):
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def test_sqlite_and_postgresql_agree(tmp_path):
    results = {}
    for backend, url in (("sqlite", "sqlite:///" + str(tmp_path / "same.sqlite3")), ("postgres", PG_URL)):
        if backend == "postgres":
            _pg_reset(url)
        app = create_app(_base_config(tmp_path, url))
        with app.app_context():
            db.create_all()
            build_round()
            results[backend] = snapshot()
            db.session.remove()
            db.engine.dispose()
    sqlite, pg = results["sqlite"], results["postgres"]
    assert sqlite.keys() == pg.keys()
    for key in sqlite:
        assert sqlite[key] == pg[key], key
    # the data really exercises the tie-breaks and the method differences
    means = [r["mean"] for r in sqlite[("rank", "mean", False)] if r["mean"] is not None]
    assert len(means) != len(set(means))
    orders = {tuple(r["nomination_id"] for r in sqlite[("rank", m, False)]) for m in ("mean", "zscore")}
    assert len(orders) == 2
    assert sqlite[("rank", "mean", False)] != sqlite[("rank", "mean", True)]  # drafts change something
