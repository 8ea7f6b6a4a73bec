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


def test_demo_nominator_accounts_sign_in_and_see_their_own_units_nominations(demo_app):
    import re

    from app.demo import data as demo_data
    from tests.conftest import login

    client = demo_app.test_client()
    for account in demo_data.NOMINATOR_ACCOUNTS:
        with demo_app.app_context():
            user = db.session.scalar(select(User).where(User.username == account["username"]))
            assert user.role == "nominator" and user.active and not user.must_change_password
            assert user.affiliation.name == account["affiliation"] and user.email == account["email"]
            own = set(db.session.scalars(select(Nomination.id).where(Nomination.nominator_id == user.affiliation_id)))
            other = db.session.scalar(select(Nomination.id).where(Nomination.nominator_id != user.affiliation_id)
                                      .order_by(Nomination.id).limit(1))
            db.session.remove()
        resp = login(client, account["username"])  # the printed demo password, no forced change
        assert resp.status_code == 303 and resp.headers["Location"].endswith("/portal/")
        home = client.get("/portal/")
        assert home.status_code == 200
        page = home.get_data(as_text=True)
        assert account["affiliation"] in page
        listed = {int(n) for n in re.findall(r'href="/portal/nominations/(\d+)"', page)}
        assert listed == own and own  # its unit's imported nominations, nobody else's
        assert "由省科协录入（只读）" in page
        assert client.get(f"/portal/nominations/{min(own)}").status_code == 200
        assert client.get(f"/portal/nominations/{other}").status_code == 404
        client.post("/logout", data={"csrf_token": _token(client)})


def _token(client) -> str:
    from tests.conftest import csrf_token_from

    return csrf_token_from(client.get("/account").get_data(as_text=True))


def test_demo_logins_list_the_nominator_accounts(demo_app):
    from app.demo import data as demo_data

    out = demo_app.test_cli_runner().invoke(args=["demo", "logins"])
    assert out.exit_code == 0, out.output
    for account in demo_data.NOMINATOR_ACCOUNTS:
        assert account["username"] in out.output and account["affiliation"] in out.output
    assert "推荐单位" in out.output and demo_data.DEMO_PASSWORD in out.output
