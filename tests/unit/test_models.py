"""Constraints live in the database: each is violated once here, on SQLite and on PostgreSQL."""

import pytest
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Assignment, Criterion, Nomination, ReviewSheet, Round, Score
from tests.factories import make_nomination, make_nominator, make_round, make_user

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


def _violates(obj_factory):
    db.session.add(obj_factory())
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


@BOTH
def test_constraints_are_enforced_by_the_database(app):
    with app.app_context():
        rnd = make_round()
        nominator = make_nominator()
        nom = make_nomination(rnd, nominator)
        reviewer = make_user("r1")
        crit = rnd.criteria[0]
        sheet = ReviewSheet(reviewer_id=reviewer.id, nomination_id=nom.id)
        db.session.add(sheet)
        db.session.commit()
        db.session.add(Score(sheet_id=sheet.id, criterion_id=crit.id, value=10))
        db.session.commit()

        # reviewer × nomination × criterion is unique
        _violates(lambda: Score(sheet_id=sheet.id, criterion_id=crit.id, value=12))
        # reviewer × nomination sheet is unique
        _violates(lambda: ReviewSheet(reviewer_id=reviewer.id, nomination_id=nom.id))
        db.session.add(Assignment(reviewer_id=reviewer.id, nomination_id=nom.id))
        db.session.commit()
        _violates(lambda: Assignment(reviewer_id=reviewer.id, nomination_id=nom.id))
        # check constraints
        _violates(lambda: Score(sheet_id=sheet.id, criterion_id=rnd.criteria[1].id, value=-1))
        _violates(lambda: Nomination(round_id=rnd.id, nominator_id=nominator.id, category="other", title="x"))
        _violates(lambda: Nomination(round_id=rnd.id, nominator_id=nominator.id, category="unit", title="x",
                                     summary="字" * 501))
        _violates(lambda: Nomination(round_id=rnd.id, nominator_id=nominator.id, category="unit", title="x",
                                     event_count=-3))
        _violates(lambda: Round(year=2030, name="x", phase="nonsense"))
        _violates(lambda: Criterion(round_id=rnd.id, category="unit", code="zero", name="z", max_score=0, step=1))
        # foreign keys
        _violates(lambda: Score(sheet_id=999999, criterion_id=crit.id, value=1))
        _violates(lambda: Nomination(round_id=rnd.id, nominator_id=424242, category="unit", title="x"))
        # a 500-character summary is fine
        make_nomination(rnd, nominator, title="刚好五百字", summary="字" * 500)


@BOTH
def test_deleting_a_sheet_cascades_to_its_scores(app):
    with app.app_context():
        rnd = make_round()
        nom = make_nomination(rnd, make_nominator())
        reviewer = make_user("r1")
        sheet = ReviewSheet(reviewer_id=reviewer.id, nomination_id=nom.id)
        sheet.scores.append(Score(criterion_id=rnd.criteria[0].id, value=3))
        db.session.add(sheet)
        db.session.commit()
        db.session.delete(sheet)
        db.session.commit()
        assert db.session.query(Score).count() == 0
