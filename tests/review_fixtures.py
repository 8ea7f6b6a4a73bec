"""A small round for the scoring workspace tests: two nominators, three nominations, four reviewers
(rev2 belongs to 长沙市科协, so the 长沙 nominations are recused for them by affiliation), a chair and
an admin; everyone who reviews is assigned everything. Plus helpers that speak to the panel as htmx
and as a plain browser would."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

from PIL import Image
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app.core import storage
from app.extensions import db
from app.models import Assignment, Attachment, Criterion, ReviewSheet, Score, User
from tests.conftest import DEMO_PASSWORD, csrf_token_from, login
from tests.factories import make_nomination, make_nominator, make_round

HX = {"HX-Request": "true"}


_password_hash: list[str] = []


def quick_user(username: str, role: str = "reviewer", affiliation_id: int | None = None) -> User:
    """Like factories.make_user, without paying for a fresh scrypt hash per user and per test."""
    if not _password_hash:
        _password_hash.append(generate_password_hash(DEMO_PASSWORD))
    user = User(username=username, display_name=username.upper(), role=role, password_hash=_password_hash[0],
                affiliation_id=affiliation_id)
    db.session.add(user)
    db.session.flush()
    return user


def build_world(with_files: bool = True) -> SimpleNamespace:
    rnd = make_round("reviewing")
    changsha = make_nominator("长沙市科协", "city", 1)
    zhuzhou = make_nominator("株洲市科协", "city", 2)
    unit_a = make_nomination(rnd, changsha, "长沙市第一中学", category="unit", host=None,
                             contact_phone="13812345678", summary="组织情况简介：开展科普讲座十二场。")
    act_b = make_nomination(rnd, zhuzhou, "株洲科普嘉年华", category="activity", host="株洲市科技馆",
                            contact_phone="0731-22334455")
    act_c = make_nomination(rnd, changsha, "长沙社区科学之夜", category="activity", host="岳麓区科协")
    rev1, rev2, rev3, rev4 = (quick_user("rev1"), quick_user("rev2", affiliation_id=changsha.id), quick_user("rev3"),
                              quick_user("rev4"))
    chair, admin = quick_user("chair1", role="chair"), quick_user("admin1", role="admin")
    noms = (unit_a, act_b, act_c)
    db.session.add_all(Assignment(reviewer_id=r.id, nomination_id=n.id)
                       for r in (rev1, rev2, rev3, rev4) for n in noms)
    db.session.commit()
    criteria = {cat: [c.id for c in db.session.scalars(
        select(Criterion).where(Criterion.round_id == rnd.id, Criterion.category == cat)
        .order_by(Criterion.position))] for cat in ("unit", "activity")}
    world = SimpleNamespace(
        round_id=rnd.id, changsha=changsha.id, zhuzhou=zhuzhou.id, unit_a=unit_a.id, act_b=act_b.id,
        act_c=act_c.id, rev1=rev1.id, rev2=rev2.id, rev3=rev3.id, rev4=rev4.id, chair=chair.id,
        admin=admin.id, criteria=criteria, photo=None, video=None,
    )
    if with_files:
        world.photo, world.video = _attach_files(unit_a.id)
    return world


def _attach_files(nomination_id: int) -> tuple[int, int]:
    image = Image.new("RGB", (800, 600), (180, 40, 40))
    buf = io.BytesIO()
    image.save(buf, "JPEG")
    data = buf.getvalue()
    photo = Attachment(nomination_id=nomination_id, kind="photo", stored_name=storage.save_bytes(data, "jpg"),
                       thumb_name=storage.save_thumbnail(image), original_name="活动照片1.jpg",
                       mime="image/jpeg", size_bytes=len(data), width=800, height=600, position=0)
    video_bytes = bytes(range(256)) * 400  # 102,400 bytes: enough to ask for a range of it
    video = Attachment(nomination_id=nomination_id, kind="video", stored_name=storage.save_bytes(video_bytes, "mp4"),
                       original_name="活动视频.mp4", mime="video/mp4", size_bytes=len(video_bytes), position=1)
    db.session.add_all([photo, video])
    db.session.commit()
    return photo.id, video.id


def signed_in(app, username: str):
    client = app.test_client()
    resp = login(client, username)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    return client


def page_token(client, nomination_id: int) -> str:
    page = client.get(f"/review/nominations/{nomination_id}")
    assert page.status_code == 200, page.status_code
    return csrf_token_from(page.get_data(as_text=True))


def form_data(token: str, criteria: list[int], values, *, version: int = 0, comment: str = "",
              action: str | None = None) -> dict:
    data = {"csrf_token": token, "version": str(version), "comment": comment}
    for cid, value in zip(criteria, values, strict=True):
        data[f"score-{cid}"] = "" if value is None else str(value)
    if action:
        data["action"] = action
    return data


def post_sheet(client, nomination_id: int, data: dict, *, htmx: bool = True):
    return client.post(f"/review/nominations/{nomination_id}/sheet", data=data, headers=HX if htmx else {})


def version_in(html: str) -> int:
    m = re.search(r'name="version" value="(\d+)"', html)
    assert m, "no version in the response"
    return int(m.group(1))


def stored_sheet(reviewer_id: int, nomination_id: int):
    """(sheet or None, {criterion_id: value}) straight from the database."""
    sheet = db.session.scalar(select(ReviewSheet).where(ReviewSheet.reviewer_id == reviewer_id,
                                                        ReviewSheet.nomination_id == nomination_id)
                              .execution_options(populate_existing=True))
    if sheet is None:
        return None, {}
    values = dict(db.session.execute(select(Score.criterion_id, Score.value).where(Score.sheet_id == sheet.id)).all())
    return sheet, values
