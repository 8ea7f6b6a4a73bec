"""An honest demo: the generated seal never bears a real organisation's name, and a few demo
nominations carry the shipped video while the others keep their 缺少活动视频 finding."""

from __future__ import annotations

from sqlalchemy import select

from app.demo import final as demo_final
from app.demo import seed as demo_seed
from app.extensions import db
from app.intake.uploads import video_type
from app.models import Assignment, Attachment, FormFinding, Nomination, Round, User
from tests.conftest import login

REAL_NAMES = ("科学技术协会", "科协", "湖南省", "人民政府", "委员会", "学会")


def test_seal_text_is_the_demo_text_and_no_real_organisation():
    assert demo_final.SEAL_TEXT == "演示专用章"
    assert not any(name in demo_final.SEAL_TEXT for name in REAL_NAMES)
    # the default of the drawing function is that text too (tests and scripts call it bare)
    assert demo_final.make_seal_png.__defaults__[0] == demo_final.SEAL_TEXT
    # and the text is really drawn: a seal with it differs from a blank ring and star
    assert demo_final.make_seal_png(size=120) != demo_final.make_seal_png("", size=120)


def test_finishing_the_demo_round_seals_with_the_demo_text(demo_app, monkeypatch):
    drawn: list[str] = []
    real = demo_final.make_seal_png

    def spy(text=demo_final.SEAL_TEXT, *args, **kwargs):
        drawn.append(text)
        return real(text, *args, size=120)

    monkeypatch.setattr(demo_final, "make_seal_png", spy)
    with demo_app.app_context():
        rnd = db.session.scalar(select(Round))
        rnd.phase = "deliberating"
        db.session.commit()
        demo_final.finish(rnd.id)
        assert db.session.get(Round, rnd.id).phase == "final"
    assert drawn == ["演示专用章"]


def test_the_shipped_video_is_small_and_accepted_like_an_upload():
    data = demo_seed.DEMO_VIDEO.read_bytes()
    assert 1_000 < len(data) <= 200_000
    assert video_type(data[:4096]) == ("video/mp4", "mp4")
    # a playable MP4 has its movie header, here before the media data (fast start: plays while loading)
    assert b"moov" in data and data.index(b"moov") < data.index(b"mdat")


def test_seeded_demo_has_videos_on_some_and_the_finding_on_the_rest(demo_app):
    with demo_app.app_context():
        noms = db.session.scalars(select(Nomination).order_by(Nomination.id)).all()
        with_video = {a.nomination_id for a in db.session.scalars(select(Attachment).where(Attachment.kind == "video"))}
        assert 5 <= len(with_video) <= len(noms) // 5
        assert {n.category for n in noms if n.id in with_video} == {"unit", "activity"}
        videos = db.session.scalars(select(Attachment).where(Attachment.kind == "video")).all()
        assert all(v.mime == "video/mp4" and v.size_bytes == demo_seed.DEMO_VIDEO.stat().st_size for v in videos)
        flagged = set(db.session.scalars(select(FormFinding.nomination_id).where(FormFinding.rule == "no_video",
                                                                                 FormFinding.status == "open")))
        assert flagged == {n.id for n in noms} - with_video


def test_a_reviewer_sees_and_plays_the_demo_video(app_factory):
    app = app_factory()
    with app.app_context():
        demo_seed.seed("collecting", photos=False, target_total=40)
        reviewer = db.session.scalar(select(User).where(User.role == "reviewer", User.affiliation_id.is_(None))
                                     .order_by(User.id))
        video = db.session.scalar(select(Attachment).where(Attachment.kind == "video").order_by(Attachment.id))
        assert db.session.scalar(select(Assignment).where(Assignment.reviewer_id == reviewer.id,
                                                          Assignment.nomination_id == video.nomination_id))
        rnd = db.session.scalar(select(Round))
        rnd.phase = "reviewing"
        db.session.commit()
        username, nomination_id, video_id = reviewer.username, video.nomination_id, video.id
    client = app.test_client()
    login(client, username)
    page = client.get(f"/review/nominations/{nomination_id}").get_data(as_text=True)
    assert "<video" in page and f"/review/files/{video_id}" in page
    resp = client.get(f"/review/files/{video_id}")
    assert resp.status_code == 200 and resp.mimetype == "video/mp4"
    assert resp.get_data() == demo_seed.DEMO_VIDEO.read_bytes()
