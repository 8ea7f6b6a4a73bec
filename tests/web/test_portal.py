"""The 推荐单位 portal through the Flask test client: draft, submit with every 形式审查 check beside its
field, quota and deadline (and an extension), 退回修改 → resubmit → 受理, isolation between units, the
CSRF and method rules, and the mail each step writes."""

from __future__ import annotations

import io
import os
import re
from datetime import timedelta

from sqlalchemy import func, select

from app.core import storage
from app.extensions import db
from app.intake import form_check
from app.models import Attachment, AuditEvent, FormFinding, Nomination, Nominator, OutboxMessage, Round
from tests import portal_fixtures
from tests.portal_fixtures import (
    client_for,
    new_draft,
    post_form,
    ready,
    today,
    token,
    upload_photos,
)

portal_app = portal_fixtures.portal_app


def _flat(html: str) -> str:
    return re.sub(r">\s+<", "><", html)


def _nom(app, nid) -> Nomination:
    with app.app_context():
        nom = db.session.get(Nomination, nid)
        db.session.expunge(nom)
        return nom


def _audit(app, action) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


def _mails(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        for r in rows:
            db.session.expunge(r)
        return rows


def _set_round(app, **values):
    with app.app_context():
        rnd = db.session.scalar(select(Round))
        for k, v in values.items():
            setattr(rnd, k, v)
        db.session.commit()


def _admin_post(client, path, **data):
    return client.post(path, data={**data, "csrf_token": token(client, "/intake/")})


# --- home and drafts ---------------------------------------------------------------------------------


def test_home_shows_rules_quota_deadline_and_own_items(portal_app):
    cs = client_for(portal_app, "cs")
    nid = new_draft(cs, title="我的草稿")
    html = cs.get("/portal/").get_data(as_text=True)
    assert "长沙市科协" in html and "我的草稿" in html and "草稿" in html
    assert "500 字" in html and "3–5 张" in html and "MB" in html
    assert "还剩 20 天" in html or "还剩 21 天" in html  # no-JS countdown text
    assert 'data-deadline="' in html
    # city quotas: 8 units, 6 activities; drafts do not use them
    assert "<td>6 个</td><td>0 个</td><td>6 个</td>" in _flat(html)
    assert f"/portal/nominations/{nid}" in html
    # another unit sees none of it
    zz = client_for(portal_app, "zz")
    assert "我的草稿" not in zz.get("/portal/").get_data(as_text=True)


def test_draft_saves_partial_data_and_is_not_shown_to_the_admin(portal_app):
    cs = client_for(portal_app, "cs")
    nid = new_draft(cs, summary="", recommendation="", event_count="", people_served="", recommendation_date="")
    nom = _nom(portal_app, nid)
    assert (nom.status, nom.origin, nom.summary, nom.event_count) == ("draft", "portal", "", 0)
    resp = post_form(cs, nid, "save", summary="只写了一半")
    assert resp.status_code == 303
    assert _nom(portal_app, nid).summary == "只写了一半"
    assert _audit(portal_app, "nomination.portal_save") == 2
    admin = client_for(portal_app, "admin")
    assert "科普进社区" not in admin.get("/intake/?category=activity&status=all").get_data(as_text=True)
    assert admin.get(f"/intake/{nid}").status_code == 404


def test_draft_without_a_name_is_refused_beside_the_field(portal_app):
    cs = client_for(portal_app, "cs")
    resp = cs.post("/portal/new/activity", data={"title": "  ", "op": "save", "csrf_token": token(cs)})
    assert resp.status_code == 422
    assert 'id="err-title"' in resp.get_data(as_text=True)
    with portal_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Nomination)) == 0


# --- submit checks -------------------------------------------------------------------------------------


def test_submit_with_two_photos_is_refused_beside_the_photo_field_and_changes_nothing(portal_app):
    cs = client_for(portal_app, "cs")
    nid = new_draft(cs)
    assert upload_photos(cs, nid, 2).status_code == 303
    resp = post_form(cs, nid, "submit", title="改过的名称")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'id="err-photos"' in html and "只有 2 张活动照片，应附 3–5 张" in html
    nom = _nom(portal_app, nid)
    assert nom.status == "draft" and nom.title == "科普进社区" and nom.submitted_at is None  # nothing changed
    assert _audit(portal_app, "nomination.submit") == 0


def test_summary_over_500_is_refused(portal_app):
    cs = client_for(portal_app, "cs")
    nid = ready(cs)
    resp = post_form(cs, nid, "submit", summary="字" * 501)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'id="err-summary"' in html and "不能超过 500 字（当前 501 字）" in html
    assert _nom(portal_app, nid).status == "draft"


def test_submit_names_every_missing_field(portal_app):
    cs = client_for(portal_app, "cs")
    nid = ready(cs)
    resp = post_form(cs, nid, "submit", recommendation="", recommendation_date="", people_served="0")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    for key in ("recommendation", "recommendation_date", "people_served"):
        assert f'id="err-{key}"' in html, key
    assert "请填写推荐意见" in html


def test_submit_then_mail_to_admins_and_the_item_uses_the_quota(portal_app):
    cs = client_for(portal_app, "cs")
    nid = ready(cs)
    resp = post_form(cs, nid, "submit")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/portal/")
    nom = _nom(portal_app, nid)
    assert nom.status == "submitted" and nom.submitted_at is not None and nom.received_at == nom.submitted_at
    mails = _mails(portal_app)
    assert [m.to_addr for m in mails] == ["admin@example.org"]
    assert "长沙市科协" in mails[0].subject and "科普进社区" in mails[0].subject
    html = _flat(cs.get("/portal/").get_data(as_text=True))
    assert "<td>6 个</td><td>1 个</td><td>5 个</td>" in html and "已提交" in html
    # submitted: the unit can no longer change it
    resp = post_form(cs, nid, "save", title="再改")
    assert resp.status_code == 409 and _nom(portal_app, nid).title == "科普进社区"
    # and the admin sees it in the intake list
    admin = client_for(portal_app, "admin")
    for query in ("", "&status=submitted"):
        listing = admin.get("/intake/?category=activity" + query).get_data(as_text=True)
        assert "科普进社区" in listing and "已提交" in listing, query
    assert "科普进社区" not in admin.get("/intake/?category=activity&status=active").get_data(as_text=True)


def test_over_quota_submit_is_refused_with_the_numbers(portal_app):
    xh = client_for(portal_app, "xh")  # 省级学会: 1 activity
    first = ready(xh, title="第一项")
    assert post_form(xh, first, "submit", title="第一项").status_code == 303
    second = ready(xh, title="第二项")
    resp = post_form(xh, second, "submit", title="第二项")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "名额已满：优秀活动 名额 1 个，已提交 1 个" in html and 'id="err-quota"' in html
    assert _nom(portal_app, second).status == "draft"
    # withdrawing the first frees the place
    assert xh.post(f"/portal/nominations/{first}/withdraw", data={"csrf_token": token(xh)}).status_code == 303
    assert _nom(portal_app, first).status == "withdrawn"
    assert post_form(xh, second, "submit", title="第二项").status_code == 303


def test_submit_after_the_deadline_is_refused_then_allowed_after_an_extension_and_flagged_late(portal_app):
    cs = client_for(portal_app, "cs")
    nid = ready(cs)
    past = today() - timedelta(days=1)
    _set_round(portal_app, deadline=past)
    resp = post_form(cs, nid, "submit")
    assert resp.status_code == 409
    assert f"已过报送截止时间（{past.year}年{past.month}月{past.day}日 24:00）" in resp.get_data(as_text=True)
    assert _nom(portal_app, nid).status == "draft"

    admin = client_for(portal_app, "admin")
    with portal_app.app_context():
        unit_id = db.session.scalar(select(Nominator.id).where(Nominator.name == "长沙市科协"))
    # the reason is required
    resp = admin.post("/portal/admin/extensions", data={"nominator_id": unit_id, "until": (today() + timedelta(days=3)).isoformat(),
                                                        "reason": "", "csrf_token": token(admin, "/portal/admin/extensions")})
    assert resp.status_code == 422 and _audit(portal_app, "deadline.extend") == 0
    resp = admin.post("/portal/admin/extensions", data={"nominator_id": unit_id, "until": (today() + timedelta(days=3)).isoformat(),
                                                        "reason": "暴雨停电", "csrf_token": token(admin, "/portal/admin/extensions")})
    assert resp.status_code == 303 and _audit(portal_app, "deadline.extend") == 1
    assert "已获延期" in cs.get("/portal/").get_data(as_text=True)

    assert post_form(cs, nid, "submit").status_code == 303
    assert _admin_post(admin, f"/portal/admin/nominations/{nid}/accept").status_code == 303
    with portal_app.app_context():
        form_check.run(db.session.scalar(select(Round.id)))
        rules = set(db.session.scalars(select(FormFinding.rule).where(FormFinding.nomination_id == nid,
                                                                      FormFinding.status == "open")))
    assert "late" in rules  # arrived after the round's deadline: flagged, never lost
    assert "no_stamped" in rules  # portal item without its 盖章件


def test_returned_fixed_resubmitted_accepted_keeps_received_at_and_mails_the_unit(portal_app):
    cs = client_for(portal_app, "cs")
    admin = client_for(portal_app, "admin")
    nid = ready(cs)
    assert post_form(cs, nid, "submit").status_code == 303
    received = _nom(portal_app, nid).received_at
    # the note is required
    assert _admin_post(admin, f"/portal/admin/nominations/{nid}/return", note="").status_code == 422
    assert _admin_post(admin, f"/portal/admin/nominations/{nid}/return", note="请补充服务人数的依据").status_code == 303
    nom = _nom(portal_app, nid)
    assert nom.status == "returned" and nom.return_note == "请补充服务人数的依据"
    home = cs.get("/portal/").get_data(as_text=True)
    assert "退回修改" in home and "请补充服务人数的依据" in home
    unit_mail = [m for m in _mails(portal_app) if m.to_addr == "cs@example.org"]
    assert len(unit_mail) == 1
    assert unit_mail[0].subject == "【科普日评选】推荐材料退回修改：科普进社区"
    assert "请补充服务人数的依据" in unit_mail[0].body
    # even after the deadline a returned item may be fixed and resubmitted
    _set_round(portal_app, deadline=today() - timedelta(days=1))
    assert post_form(cs, nid, "submit", people_served="3500").status_code == 303
    nom = _nom(portal_app, nid)
    assert nom.status == "submitted" and nom.people_served == 3500
    assert nom.received_at == received and nom.submitted_at > received
    assert _admin_post(admin, f"/portal/admin/nominations/{nid}/accept").status_code == 303
    nom = _nom(portal_app, nid)
    assert nom.status == "active" and nom.accepted_at is not None
    accepted = [m for m in _mails(portal_app) if m.to_addr == "cs@example.org"][-1]
    assert accepted.subject == "【科普日评选】推荐材料已受理：科普进社区"
    # no mail ever went to another unit
    assert not [m for m in _mails(portal_app) if m.to_addr in ("zz@example.org", "xh@example.org")]
    # accepting twice is a conflict
    assert _admin_post(admin, f"/portal/admin/nominations/{nid}/accept").status_code == 409


def test_accept_only_while_collecting(portal_app):
    cs = client_for(portal_app, "cs")
    admin = client_for(portal_app, "admin")
    nid = ready(cs)
    assert post_form(cs, nid, "submit").status_code == 303
    _set_round(portal_app, phase="reviewing")
    assert _admin_post(admin, f"/portal/admin/nominations/{nid}/accept").status_code == 409
    assert _nom(portal_app, nid).status == "submitted"


def test_accepted_item_reaches_the_reviewer_queue_when_review_opens(portal_app):
    from app.review import assignments
    from app.rounds import moves

    cs = client_for(portal_app, "cs")
    admin = client_for(portal_app, "admin")
    accepted = ready(cs, title="受理的活动")
    assert post_form(cs, accepted, "submit", title="受理的活动").status_code == 303
    assert _admin_post(admin, f"/portal/admin/nominations/{accepted}/accept").status_code == 303
    waiting = ready(cs, title="待受理的活动")
    assert post_form(cs, waiting, "submit", title="待受理的活动").status_code == 303
    draft = new_draft(cs, title="还是草稿的活动")
    with portal_app.app_context():
        rnd_id = db.session.scalar(select(Round.id))
        assignments.assign_all(rnd_id)
        # the pre-flight names the submitted item nobody accepted
        from app.rounds import preflight

        pf = preflight.check(db.session.get(Round, rnd_id), "reviewing")
        assert [g.code for g in pf.gaps] == ["unaccepted"] and pf.gaps[0].count == 1
        db.session.remove()
    with portal_app.app_context():
        # the 形式审查 guard is not what this test is about (the warnings are not blocking anyway)
        import pytest

        mp = pytest.MonkeyPatch()
        mp.setattr(moves, "_form_check_guard", lambda: None)
        try:
            resp = admin.post("/admin/phase", data={"target": "reviewing", "csrf_token": token(admin, "/admin/")})
            assert resp.status_code == 422  # the gap must be confirmed
            resp = admin.post("/admin/phase", data={"target": "reviewing", "accept_gaps": "y", "reason": "逾期不候",
                                                    "csrf_token": token(admin, "/admin/")})
            assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
        finally:
            mp.undo()
    expert = client_for(portal_app, "expert")
    queue = expert.get("/review/").get_data(as_text=True)
    assert "受理的活动" in queue
    assert "待受理的活动" not in queue and "还是草稿的活动" not in queue
    assert _nom(portal_app, draft).status == "draft"


# --- photos, 盖章件, PDF ------------------------------------------------------------------------------------


def test_photo_reorder_and_delete(portal_app):
    cs = client_for(portal_app, "cs")
    nid = ready(cs)
    with portal_app.app_context():
        ids = [a.id for a in db.session.get(Nomination, nid).photos]
    resp = cs.post(f"/portal/nominations/{nid}/photos/{ids[2]}/move", data={"step": "-1", "csrf_token": token(cs)})
    assert resp.status_code == 303
    with portal_app.app_context():
        assert [a.id for a in db.session.get(Nomination, nid).photos] == [ids[0], ids[2], ids[1]]
    assert cs.post(f"/portal/nominations/{nid}/photos/{ids[0]}/move",
                   data={"step": "-1", "csrf_token": token(cs)}).status_code == 409
    assert cs.post(f"/portal/nominations/{nid}/attachments/{ids[1]}/delete",
                   data={"csrf_token": token(cs)}).status_code == 303
    with portal_app.app_context():
        assert [a.id for a in db.session.get(Nomination, nid).photos] == [ids[0], ids[2]]
    # own thumbnails are served to the unit
    assert cs.get(f"/review/files/{ids[0]}?thumb=1").status_code == 200


def test_photo_changes_over_htmx_swap_the_photo_block_in_place(portal_app):
    """With htmx the photo forms answer with the photo block alone (status and message inside it); a
    refusal comes back the same way, beside the photos, and changes nothing."""
    cs = client_for(portal_app, "cs")
    nid = ready(cs)
    with portal_app.app_context():
        ids = [a.id for a in db.session.get(Nomination, nid).photos]
    hx = {"HX-Request": "true"}
    moved = cs.post(f"/portal/nominations/{nid}/photos/{ids[2]}/move", data={"step": "-1", "csrf_token": token(cs)},
                    headers=hx)
    html = moved.get_data(as_text=True)
    assert moved.status_code == 200 and html.lstrip().startswith('<div id="photos-block">')
    assert "已调整照片顺序。" in html and "<html" not in html and 'id="nomination-form"' not in html
    assert html.index(f"/photos/{ids[2]}/move") < html.index(f"/photos/{ids[1]}/move")  # the new order shown
    refused = cs.post(f"/portal/nominations/{nid}/photos/{ids[0]}/move", data={"step": "-1", "csrf_token": token(cs)},
                      headers=hx)
    assert refused.status_code == 409 and 'id="err-photos"' in refused.get_data(as_text=True)
    deleted = cs.post(f"/portal/nominations/{nid}/attachments/{ids[1]}/delete", data={"csrf_token": token(cs)},
                      headers=hx)
    assert deleted.status_code == 200 and "已删除。" in deleted.get_data(as_text=True)
    with portal_app.app_context():
        assert [a.id for a in db.session.get(Nomination, nid).photos] == [ids[0], ids[2]]
    page = cs.get(f"/portal/nominations/{nid}").get_data(as_text=True)
    assert 'hx-target="#photos-block"' in page and 'hx-confirm="删除这张照片？"' in page


def _pdf_bytes() -> bytes:
    from pypdf import PdfWriter

    buf = io.BytesIO()
    w = PdfWriter()
    w.add_blank_page(595, 842)
    w.write(buf)
    return buf.getvalue()


def test_form_pdf_and_stamped_scan(portal_app):
    from pypdf import PdfReader

    from tests.intake_fixtures import make_image

    cs = client_for(portal_app, "cs")
    nid = ready(cs, recommendation="同意推荐该活动-推荐意见标记")
    resp = cs.get(f"/portal/nominations/{nid}/form.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(resp.data)).pages)
    assert "推荐意见标记" in text.replace("\n", "")

    def up(data, name):
        return cs.post(f"/portal/nominations/{nid}/stamped", data={"stamped": (io.BytesIO(data), name),
                                                                   "csrf_token": token(cs)},
                       content_type="multipart/form-data")

    resp = up(b"MZ\x90\x00 not a scan", "盖章件.pdf")
    assert resp.status_code == 422 and "不是 PDF、JPG 或 PNG 文件" in resp.get_data(as_text=True)
    resp = up(b"%PDF-1.4\n garbage without an end", "坏的.pdf")
    assert resp.status_code == 422 and 'id="err-stamped"' in resp.get_data(as_text=True)
    assert up(_pdf_bytes(), "盖章件.pdf").status_code == 303
    assert up(make_image("PNG"), "盖章件.png").status_code == 303  # a new one replaces the old
    with portal_app.app_context():
        scans = list(db.session.scalars(select(Attachment).where(Attachment.nomination_id == nid,
                                                                 Attachment.kind == "stamped")))
        assert len(scans) == 1 and scans[0].mime == "image/png"
        png_path = storage.path_of(scans[0].stored_name)
        assert os.path.isfile(png_path)
    assert _audit(portal_app, "attachment.stamped") == 2
    # the scan may still be added after 提交
    assert post_form(cs, nid, "submit").status_code == 303
    assert up(_pdf_bytes(), "盖章件2.pdf").status_code == 303
    admin = client_for(portal_app, "admin")
    detail = admin.get(f"/intake/{nid}").get_data(as_text=True)
    assert "盖章件2.pdf" in detail and "受理" in detail and "退回修改" in detail
    assert not os.path.exists(png_path)  # the replaced scan's file is gone
    with portal_app.app_context():
        scan = db.session.scalar(select(Attachment).where(Attachment.nomination_id == nid, Attachment.kind == "stamped"))
        assert scan.original_name == "盖章件2.pdf"
        scan_id = scan.id
    assert cs.get(f"/review/files/{scan_id}").status_code == 200
    assert client_for(portal_app, "zz").get(f"/review/files/{scan_id}").status_code == 404


# --- isolation, CSRF, methods ------------------------------------------------------------------------------


def test_another_units_objects_are_not_found(portal_app):
    cs = client_for(portal_app, "cs")
    zz = client_for(portal_app, "zz")
    nid = ready(cs, title="长沙的活动-MARKER")
    with portal_app.app_context():
        photo = db.session.get(Nomination, nid).photos[0].id
    t = token(zz)
    for method, path, data in (
        ("get", f"/portal/nominations/{nid}", None),
        ("get", f"/portal/nominations/{nid}/form.pdf", None),
        ("get", f"/review/files/{photo}", None),
        ("get", f"/review/files/{photo}?thumb=1", None),
        ("post", f"/portal/nominations/{nid}", {"op": "save", "title": "x", "version": "x"}),
        ("post", f"/portal/nominations/{nid}/withdraw", {}),
        ("post", f"/portal/nominations/{nid}/photos/{photo}/move", {"step": "1"}),
        ("post", f"/portal/nominations/{nid}/attachments/{photo}/delete", {}),
    ):
        resp = getattr(zz, method)(path, data={**data, "csrf_token": t} if data is not None else None)
        assert resp.status_code == 404, (path, resp.status_code)
        assert "MARKER" not in resp.get_data(as_text=True)
    resp = zz.post(f"/portal/nominations/{nid}/photos", data={"photos": (io.BytesIO(b"x"), "a.jpg"), "csrf_token": t},
                   content_type="multipart/form-data")
    assert resp.status_code == 404
    with portal_app.app_context():
        assert len(db.session.get(Nomination, nid).photos) == 3
    # other roles have no portal at all, and a nominator has no admin or review pages
    assert client_for(portal_app, "expert").get("/portal/").status_code == 403
    assert client_for(portal_app, "admin").get("/portal/").status_code == 403
    for path in ("/intake/", f"/review/nominations/{nid}", "/rankings/", f"/reports/forms/{nid}.pdf",
                 "/portal/admin/extensions"):
        assert cs.get(path).status_code in (403, 404), path
    assert cs.post(f"/portal/admin/nominations/{nid}/accept", data={"csrf_token": token(cs)}).status_code == 403


def test_missing_csrf_is_400_and_wrong_method_is_405(portal_app):
    cs = client_for(portal_app, "cs")
    nid = new_draft(cs)
    resp = cs.post("/portal/new/activity", data={"title": "无令牌", "op": "save"})
    assert resp.status_code == 400
    resp = cs.post(f"/portal/nominations/{nid}", data={"title": "无令牌", "op": "save", "version": "x"})
    assert resp.status_code in (400, 422) and _nom(portal_app, nid).title == "科普进社区"
    assert cs.post(f"/portal/nominations/{nid}/withdraw").status_code == 400
    assert cs.get(f"/portal/nominations/{nid}/withdraw").status_code == 405
    assert cs.get(f"/portal/nominations/{nid}/photos").status_code == 405
    assert cs.put(f"/portal/nominations/{nid}").status_code == 405
    admin = client_for(portal_app, "admin")
    assert admin.post(f"/portal/admin/nominations/{nid}/accept").status_code == 400
    assert admin.get(f"/portal/admin/nominations/{nid}/accept").status_code == 405


def test_home_endpoint_of_a_nominator_is_the_portal(portal_app):
    client = portal_app.test_client()
    from tests.conftest import login

    resp = login(client, "cs")
    assert resp.status_code == 303
    assert client.get("/").headers.get("Location", "").endswith("/portal/")


def test_the_units_form_pdf_never_shows_a_decision(portal_app):
    from pypdf import PdfReader

    from app.models import Decision, User

    cs = client_for(portal_app, "cs")
    nid = ready(cs)
    with portal_app.app_context():
        admin_id = db.session.scalar(select(User.id).where(User.username == "admin"))
        db.session.add(Decision(nomination_id=nid, outcome="approve", opinion="审定意见-DECISION-MARKER",
                                decided_by_id=admin_id))
        db.session.commit()
    admin = client_for(portal_app, "admin")
    assert admin.get(f"/reports/forms/{nid}.pdf").status_code == 404  # a draft is the unit's own
    assert post_form(cs, nid, "submit").status_code == 303
    staff_pdf = admin.get(f"/reports/forms/{nid}.pdf")
    # staff do see the decision: this test can fail
    assert "DECISION-MARKER" in "".join(p.extract_text() for p in PdfReader(io.BytesIO(staff_pdf.data)).pages)
    resp = cs.get(f"/portal/nominations/{nid}/form.pdf")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(resp.data)).pages)
    assert "DECISION-MARKER" not in text and "科普进社区" in text.replace("\n", "")
