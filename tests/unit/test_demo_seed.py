"""The seeded demo round itself (not only the data module) keeps every rule of the notice."""

from sqlalchemy import func, select

from app.extensions import db
from app.models import Assignment, Nomination, Nominator, ReviewSheet, Round, User


def test_seeded_round_respects_every_quota_and_recusal(demo_app):
    with demo_app.app_context():
        rnd = db.session.scalar(select(Round))
        counts = db.session.execute(
            select(Nominator.kind, Nominator.name, Nomination.category, func.count())
            .join(Nomination, Nomination.nominator_id == Nominator.id)
            .group_by(Nominator.kind, Nominator.name, Nomination.category)).all()
        assert counts
        for kind, name, category, n in counts:
            assert n <= rnd.quota(kind, category), f"{name} {category}: {n} > quota"
        total = db.session.scalar(select(func.count()).select_from(Nomination))
        assert 140 <= total <= 160
        kinds = dict(db.session.execute(select(Nominator.kind, func.count()).group_by(Nominator.kind)).all())
        assert kinds["city"] == 14 and kinds["member"] >= 10 and kinds["society"] >= 10
        first = db.session.scalars(select(Nominator.name).order_by(Nominator.position).limit(14)).all()
        assert first[0].startswith("长沙") and first[-1].startswith("湘西土家族苗族自治州")

        reviewers = db.session.scalars(select(User).where(User.role == "reviewer")).all()
        assert len(reviewers) == 7 and sum(1 for r in reviewers if r.affiliation_id) == 2
        # 回避: no reviewer is assigned, or has a sheet for, their own unit's nominations
        own = db.session.scalar(
            select(func.count()).select_from(Assignment)
            .join(Nomination, Nomination.id == Assignment.nomination_id)
            .join(User, User.id == Assignment.reviewer_id)
            .where(User.affiliation_id == Nomination.nominator_id))
        assert own == 0
        own_sheets = db.session.scalar(
            select(func.count()).select_from(ReviewSheet)
            .join(Nomination, Nomination.id == ReviewSheet.nomination_id)
            .join(User, User.id == ReviewSheet.reviewer_id)
            .where(User.affiliation_id == Nomination.nominator_id))
        assert own_sheets == 0
        # stage reviewing: about half of the sheets are submitted
        assigned = db.session.scalar(select(func.count()).select_from(Assignment))
        submitted = db.session.scalar(select(func.count()).select_from(ReviewSheet)
                                      .where(ReviewSheet.status == "submitted"))
        assert 0.35 * assigned <= submitted <= 0.65 * assigned
        assert rnd.phase == "reviewing"
