"""公示: the public page and its PDF, objections from filing to 撤销推荐, 定稿 waiting for them, the
表扬通报 as .docx and PDF, the objections register."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from docx import Document as DocxDocument
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, Decision, Objection, Round
from app.publicity import operations as publicity
from app.reports import notice
from tests.chair_fixtures import build_decided_round
from tests.conftest import csrf_token_from, signed_in
from tests.publicity_fixtures import build_publicized_round, closed_period_start, publicize

YEAR = 2024


@pytest.fixture
def world(app):
    with app.app_context():
        return build_publicized_round()


def _pdf_text(content: bytes) -> str:
    text = "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(content)).pages)
    return text.replace(" ", "").replace("\n", "")


def _file(client, world_or_id, **overrides):
    page = client.get(f"/gongshi/{YEAR}/objection")
    assert page.status_code == 200, page.status_code
    if 'name="csrf_token"' not in page.get_data(as_text=True):  # no form outside the period: a forged post
        page = client.get("/login")
    data = {"nomination_id": str(world_or_id), "name": "王实名", "unit": "长沙市某中学", "phone": "139 0000 1234",
            "email": "wang@example.cn", "facts": "该活动实际举办场次与申报材料不符，附现场照片为证。", "pledge": "y",
            "csrf_token": csrf_token_from(page.get_data(as_text=True))}
    data.update(overrides)
    return client.post(f"/gongshi/{YEAR}/objection", data=data, content_type="multipart/form-data")


def _audit(app, action: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == action))


# ----------------------------------------------------------------------------- the public page


def test_public_page_lists_the_approved_in_official_order_without_personal_data(app, world):
    client = app.test_client()
    resp = client.get(f"/gongshi/{YEAR}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    with app.app_context():
        a1, a2, a3, u1 = (world.nom(k) for k in ("A1", "A2", "A3", "U1"))
        assert a1.title in html and a2.title in html and u1.title in html
        assert a3.title not in html  # declined: not on the list
        for nom in (a1, a2, u1):
            assert nom.contact_name not in html and nom.contact_phone not in html and nom.address not in html
    for word in ("得分", "评分", "分数", "联系人", "联系电话", "88.0", "90.0"):
        assert word not in html
    # 市州 before 省直 before 学会
    assert html.index("长沙市科协") < html.index("株洲市科协")
    assert "公示时间" in html and "如何提出异议" in html and "工作日" in html
    # cacheable, same security headers, no session cookie
    assert resp.headers["Cache-Control"].startswith("public, max-age=")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in resp.headers and "csrf_token" not in html
    again = client.get(f"/gongshi/{YEAR}", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    # a signed-in visitor's copy (it may refresh their session cookie) is never for a shared cache
    mine = signed_in(app, "chair").get(f"/gongshi/{YEAR}")
    assert mine.status_code == 200 and mine.headers["Cache-Control"].startswith("private")


def test_public_pdf_has_the_list_and_period_but_no_personal_data(app, world):
    resp = app.test_client().get(f"/gongshi/{YEAR}/gongshi.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.headers["Cache-Control"].startswith("public")
    text = _pdf_text(resp.data)
    with app.app_context():
        for key in ("A1", "A2", "U1"):
            nom = world.nom(key)
            assert nom.title.replace(" ", "") in text
            assert nom.contact_name not in text and nom.contact_phone not in text
        rnd = world.round()
        assert f"{rnd.publicity_start.month}月{rnd.publicity_start.day}日" in text
    assert "公示时间" in text and "实名" in text


def test_only_rounds_that_reached_publicity_are_public(app):
    with app.app_context():
        small = build_decided_round()  # deliberating
        round_id = small.round_id
    client = app.test_client()
    for url in (f"/gongshi/{YEAR}", f"/gongshi/{YEAR}/objection", f"/gongshi/{YEAR}/gongshi.pdf", "/gongshi/2031"):
        assert client.get(url).status_code == 404, url
    assert "2024" not in client.get("/gongshi/").get_data(as_text=True)
    with app.app_context():
        publicize(round_id)
    assert client.get(f"/gongshi/{YEAR}").status_code == 200
    # nothing else opens without signing in
    for url in ("/chair/objections", "/admin/publicity", "/admin/objections.xlsx", "/admin/publicity/notice-preview"):
        resp = client.get(url)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], url


def test_after_final_the_page_shows_the_published_list(app, world):
    with app.app_context():
        from app.deliberation import operations as decisions

        decisions.finalize(world.round_id, confirm=True, reason="测试")
    html = app.test_client().get(f"/gongshi/{YEAR}").get_data(as_text=True)
    assert "现予公布" in html and "拟表扬名单公示" not in html and "提出异议" not in html
    form = app.test_client().get(f"/gongshi/{YEAR}/objection").get_data(as_text=True)
    assert "不再受理异议" in form and 'name="facts"' not in form


# ----------------------------------------------------------------------------- filing


def test_an_objection_in_the_period_is_received_without_personal_data_in_the_log(app, world):
    client = app.test_client()
    resp = _file(client, world.noms["A1"])
    assert resp.status_code == 303
    follow = client.get(resp.headers["Location"])
    assert "已收到您的异议" in follow.get_data(as_text=True)
    with app.app_context():
        obj = db.session.scalar(select(Objection))
        assert (obj.status, obj.name, obj.nomination_id) == ("received", "王实名", world.noms["A1"])
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "objection.file"))
        assert "王实名" not in str(event.after) and "1234" not in str(event.after)
        assert obj.address_hash and "127.0.0.1" not in obj.address_hash


def test_an_objection_outside_the_period_is_refused(app):
    with app.app_context():
        small = build_publicized_round(start=closed_period_start(), days=1)
        a1 = small.noms["A1"]
    resp = _file(app.test_client(), a1)
    assert resp.status_code == 409
    assert "逾期" in resp.get_data(as_text=True) or "结束" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Objection.id))) == 0
    # and before it begins
    with app.app_context():
        publicity.set_period(small.round_id, publicity.today() + timedelta(days=20), 5, None)
    resp = _file(app.test_client(), a1)
    assert resp.status_code == 409 and "开始" in resp.get_data(as_text=True)


def test_the_page_says_the_period_is_over(app):
    with app.app_context():
        build_publicized_round(start=closed_period_start(), days=1)
    html = app.test_client().get(f"/gongshi/{YEAR}/objection").get_data(as_text=True)
    assert "逾期" in html and 'name="facts"' not in html


def test_bad_objections_are_refused_and_nothing_is_written(app, world):
    client = app.test_client()
    cases = [
        {"name": ""},  # anonymous
        {"phone": "abc"},
        {"facts": "太短"},
        {"pledge": ""},
        {"nomination_id": str(world.noms["A3"])},  # declined: not on the list
        {"nomination_id": "99999999"},
        {"nomination_id": "²"},
        {"facts": "长" * 3001},
    ]
    for overrides in cases:
        resp = _file(client, world.noms["A1"], **overrides)
        assert resp.status_code == 422, overrides
        assert "提交" in resp.get_data(as_text=True) or "请" in resp.get_data(as_text=True)
    resp = _file(client, world.noms["A1"], csrf_token="forged")
    assert resp.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(Objection.id))) == 0


def test_attachment_is_checked_by_content(app, world):
    client = app.test_client()
    fake = (io.BytesIO(b"MZ\x90\x00 not a pdf at all" * 20), "证明.pdf")
    resp = _file(client, world.noms["A1"], attachment=fake)
    assert resp.status_code == 422 and "PDF、JPG 或 PNG" in resp.get_data(as_text=True)
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    resp = _file(client, world.noms["A1"], attachment=(io.BytesIO(pdf), "../../etc/passwd.pdf"))
    assert resp.status_code == 303
    with app.app_context():
        obj = db.session.scalar(select(Objection))
        assert obj.attachment_mime == "application/pdf" and obj.attachment_name.endswith(".pdf")
        assert "passwd" not in obj.attachment_name
        obj_id = obj.id
    admin = signed_in(app, "admin")
    got = admin.get(f"/chair/objections/{obj_id}/attachment")
    assert got.status_code == 200 and got.data == pdf and got.headers["Cache-Control"] == "private, no-store"
    assert app.test_client().get(f"/chair/objections/{obj_id}/attachment").status_code == 302


def test_rate_limit_per_address(app_factory, reset_limiter):
    app = app_factory({"RATELIMIT_ENABLED": True, "OBJECTION_RATE_LIMIT": "2 per hour"})
    with app.app_context():
        small = build_publicized_round()
    client = app.test_client()
    assert _file(client, small.noms["A1"]).status_code == 303
    # a refused objection (not on the list) gives its unit back
    assert _file(client, small.noms["A3"]).status_code == 422
    assert _file(client, small.noms["A2"]).status_code == 303
    third = _file(client, small.noms["U1"])
    assert third.status_code == 429 and "过于频繁" in third.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Objection.id))) == 2


# ----------------------------------------------------------------------------- handling


def _post(client, url: str, data: dict):
    page = client.get(url.rsplit("/", 1)[0])
    return client.post(url, data={**data, "csrf_token": csrf_token_from(page.get_data(as_text=True))})


def _version(app, obj_id: int) -> str:
    with app.app_context():
        return str(db.session.get(Objection, obj_id).version)


def test_accepted_objection_ending_in_revocation_removes_the_nomination_everywhere(app, world):
    assert _file(app.test_client(), world.noms["A1"]).status_code == 303
    with app.app_context():
        obj_id = db.session.scalar(select(Objection.id))
        a1_title = world.nom("A1").title
    staff = signed_in(app, "chair")
    base = f"/chair/objections/{obj_id}"
    page = staff.get(base).get_data(as_text=True)
    assert "王实名" in page and "139 0000 1234" in page  # the chair sees who objected
    assert _post(staff, f"{base}/accept", {"version": _version(app, obj_id)}).status_code == 303
    assert _post(staff, f"{base}/note", {"note": "已电话联系推荐单位核实，情况属实。",
                                          "version": _version(app, obj_id)}).status_code == 303
    # 定稿 is refused while it is open
    with app.app_context():
        from app.core.errors import UserError
        from app.deliberation import operations as decisions

        with pytest.raises(UserError) as refused:
            decisions.finalize(world.round_id, confirm=True, reason="测试")
        assert refused.value.status == 409 and "公示异议" in refused.value.message
    resp = _post(staff, f"{base}/conclude", {"result": "revoked", "note": "经核实，申报材料与实际不符，撤销推荐。",
                                             "version": _version(app, obj_id)})
    assert resp.status_code == 303
    with app.app_context():
        dec = db.session.scalar(select(Decision).where(Decision.nomination_id == world.noms["A1"]))
        assert dec.outcome == "decline" and "撤销推荐" in dec.opinion and f"编号 {obj_id}" in dec.override_reason
        actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.round_id == world.round_id)))
        assert {"objection.file", "objection.accept", "objection.note", "objection.conclude",
                "decision.revoke"} <= actions
        docx = DocxDocument(io.BytesIO(notice.notice_docx(world.round_id).content))
        assert a1_title not in "\n".join(p.text for p in docx.paragraphs)
        assert world.nom("A2").title in "\n".join(p.text for p in docx.paragraphs)
    html = app.test_client().get(f"/gongshi/{YEAR}").get_data(as_text=True)
    assert a1_title not in html
    assert a1_title not in _pdf_text(app.test_client().get(f"/gongshi/{YEAR}/gongshi.pdf").data)
    # settled: 定稿 now passes
    with app.app_context():
        from app.deliberation import operations as decisions

        decisions.finalize(world.round_id, confirm=True, reason="测试")
        assert db.session.get(Round, world.round_id).phase == "final"


def test_finalize_is_refused_on_the_chairs_page_while_an_objection_is_open(app, world):
    assert _file(app.test_client(), world.noms["A2"]).status_code == 303
    chair = signed_in(app, "chair")
    page = chair.get("/chair/preflight/final?category=activity")
    assert "尚未处理完毕的公示异议" in page.get_data(as_text=True)
    resp = chair.post("/chair/finalize", data={"category": "activity", "reason": "x", "accept_gaps": "1",
                                               "confirm": "1",
                                               "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert resp.status_code == 409 and "公示异议" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Round, world.round_id).phase == "publicizing"


def test_reject_and_uphold_keep_the_nomination(app, world):
    client = app.test_client()
    _file(client, world.noms["A1"])
    _file(client, world.noms["A2"])
    with app.app_context():
        first, second = db.session.scalars(select(Objection.id).order_by(Objection.id)).all()
    admin = signed_in(app, "admin")
    resp = _post(admin, f"/chair/objections/{first}/reject", {"reason": "", "version": _version(app, first)})
    assert resp.status_code == 422
    assert _post(admin, f"/chair/objections/{first}/reject", {"reason": "与公示名单无关。",
                                                               "version": _version(app, first)}).status_code == 303
    # a stale version is a conflict, nothing written
    assert _post(admin, f"/chair/objections/{second}/accept", {"version": "0"}).status_code == 409
    assert _post(admin, f"/chair/objections/{second}/accept", {"version": _version(app, second)}).status_code == 303
    assert _post(admin, f"/chair/objections/{second}/conclude", {"result": "upheld", "note": "经核实，情况不属实。",
                                                                  "version": _version(app, second)}).status_code == 303
    with app.app_context():
        assert {o.status for o in db.session.scalars(select(Objection))} == {"rejected", "closed"}
        assert db.session.scalar(select(Decision.outcome).where(Decision.nomination_id == world.noms["A1"])) == "approve"
    assert _audit(app, "decision.revoke") == 0


def test_who_may_handle_objections(app, world):
    _file(app.test_client(), world.noms["A1"])
    with app.app_context():
        obj_id = db.session.scalar(select(Objection.id))
    reviewer = signed_in(app, "r1")
    for url in ("/chair/objections", f"/chair/objections/{obj_id}", "/admin/objections.xlsx", "/admin/publicity"):
        assert reviewer.get(url).status_code == 403, url
    chair = signed_in(app, "chair")
    assert chair.get(f"/chair/objections/{obj_id}").status_code == 200
    assert chair.get("/admin/objections.xlsx").status_code == 403  # the register is the admin's
    assert signed_in(app, "admin").get("/chair/objections/999999").status_code == 404


def test_register_xlsx_neutralises_formulas(app, world):
    _file(app.test_client(), world.noms["A1"], name="=HYPERLINK(\"http://x\")", facts="=1+1 并非公式，而是事实描述。")
    resp = signed_in(app, "admin").get("/admin/objections.xlsx")
    assert resp.status_code == 200
    ws = load_workbook(io.BytesIO(resp.data)).active
    row = [c for c in ws[2]]
    names = {c.value for c in row}
    assert "=HYPERLINK(\"http://x\")" in names
    assert all(c.data_type == "s" for c in row if isinstance(c.value, str) and c.value.startswith("="))


# ----------------------------------------------------------------------------- 表扬通报


def _approved_titles(app, world) -> list[str]:
    with app.app_context():
        return [world.nom(k).title for k in ("A1", "A2", "U1")]


def test_notice_docx_has_title_number_names_and_office_fonts(app, world):
    admin = signed_in(app, "admin")
    page = admin.get("/admin/publicity")
    assert page.status_code == 200
    resp = admin.post("/admin/publicity/notice", data={
        "number": "湘科协通〔2024〕18号", "recipients": "各市州科协：", "version": "0",
        "body_template": "经评审，对{unit_count}个单位和{activity_count}项活动予以表扬（{year}年）。",
        "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert resp.status_code == 303
    preview = admin.get("/admin/publicity/notice-preview").get_data(as_text=True)
    assert "湘科协通〔2024〕18号" in preview and "对1个单位和2项活动予以表扬（2024年）" in preview
    docx_resp = admin.get("/admin/publicity/notice.docx")
    assert docx_resp.status_code == 200
    doc = DocxDocument(io.BytesIO(docx_resp.data))
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "关于表扬2024年全国科普日优秀组织单位和优秀活动的通报" in text and "湘科协通〔2024〕18号" in text
    for title in _approved_titles(app, world):
        assert title in text
    fonts = {r.font.name for p in doc.paragraphs for r in p.runs}
    assert {"方正小标宋简体", "仿宋_GB2312", "黑体"} <= fonts
    title_run = next(r for p in doc.paragraphs for r in p.runs if r.text.startswith("关于表扬"))
    assert title_run.font.name == "方正小标宋简体"
    issuer = next(r for p in doc.paragraphs for r in p.runs if r.text == notice.ISSUER)
    assert str(issuer.font.color.rgb) == "E60012"


def test_notice_body_template_refuses_unknown_placeholders(app, world):
    admin = signed_in(app, "admin")
    page = admin.get("/admin/publicity")
    resp = admin.post("/admin/publicity/notice", data={
        "number": "x", "recipients": "y", "version": "0", "body_template": "{secret.__class__}",
        "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert resp.status_code == 422 and "占位符" in resp.get_data(as_text=True)
    assert _audit(app, "notice.settings") == 0


def test_notice_pdf_text_has_title_number_and_every_name(app, world):
    with app.app_context():
        publicity.save_notice(world.round_id, "湘科协通〔2024〕18号", "各市州科协：", "表扬{year}年。")
        from app.deliberation import operations as decisions

        decisions.finalize(world.round_id, confirm=True, reason="测试")
        text = _pdf_text(notice.notice_pdf(world.round_id).content)
    assert "关于表扬2024年全国科普日优秀组织单位和优秀活动的通报" in text and "湘科协通〔2024〕18号" in text
    for title in _approved_titles(app, world):
        assert title.replace(" ", "") in text
    assert "附件1" in text and "附件2" in text


def test_cli_writes_the_notice_by_extension(app, world, tmp_path):
    runner = app.test_cli_runner()
    for ext in ("docx", "pdf"):
        out = tmp_path / f"notice.{ext}"
        result = runner.invoke(args=["reports", "notice", "--round", "2024", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:4] == (b"PK\x03\x04" if ext == "docx" else b"%PDF")
    bad = runner.invoke(args=["reports", "notice", "--round", "2024", "--out", str(tmp_path / "x.txt")])
    assert bad.exit_code != 0 and ".docx" in bad.output


def test_period_settings_compute_the_end_and_ask_for_a_manual_one_when_needed(app, world):
    admin = signed_in(app, "admin")

    def save(**data):
        page = admin.get("/admin/publicity")
        with app.app_context():
            version = str(db.session.get(Round, world.round_id).version)
        return admin.post("/admin/publicity/period", data={"version": version, "days": "5", "start": "",
                                                           "manual_end": "", **data,
                                                           "csrf_token": csrf_token_from(page.get_data(as_text=True))})

    assert save(start="2024-09-27").status_code == 303
    assert "2024年10月9日" in admin.get("/admin/publicity").get_data(as_text=True)
    assert "2024年10月9日" in admin.get("/chair/activity").get_data(as_text=True)
    assert "2024年10月9日" in admin.get("/admin/").get_data(as_text=True)
    missing = save(start="2099-09-27")
    assert missing.status_code == 422 and "手工填写" in missing.get_data(as_text=True)
    assert save(start="2099-09-27", manual_end="2099-10-10").status_code == 303
    assert save(start="2024-09-27", manual_end="2024-10-10").status_code == 422  # the calendar knows 2024
    assert save(start="2024-09-27", days="0").status_code == 422
    with app.app_context():
        rnd = db.session.get(Round, world.round_id)
        assert (rnd.publicity_start.isoformat(), rnd.publicity_end.isoformat()) == ("2099-09-27", "2099-10-10")
    assert _audit(app, "round.publicity") >= 3


def test_the_downloads_page_builds_the_notice_and_the_publicity_list(app, world):
    chair = signed_in(app, "chair")
    page = chair.get("/reports/")
    html = page.get_data(as_text=True)
    assert 'data-job="notice-docx-all"' in html and 'data-job="publicity-pdf-all"' in html
    token = csrf_token_from(html)
    for kind, fmt, magic in (("notice", "docx", b"PK\x03\x04"), ("publicity", "pdf", b"%PDF")):
        resp = chair.post("/reports/jobs", data={"kind": kind, "format": fmt, "csrf_token": token})
        assert resp.status_code == 303
        job_page = chair.get(resp.headers["Location"]).get_data(as_text=True)
        link = re.search(r'href="(/reports/jobs/[^"]+/download)"', job_page)
        assert link, job_page[:500]
        assert chair.get(link.group(1)).data[:4] == magic


def test_a_notice_made_again_after_its_settings_change_has_the_new_number(app, world):
    """The rendered-once store must not hand back a notice made before the 文号 was changed."""
    chair = signed_in(app, "chair")

    def made_number() -> str:
        token = csrf_token_from(chair.get("/reports/").get_data(as_text=True))
        resp = chair.post("/reports/jobs", data={"kind": "notice", "format": "docx", "csrf_token": token})
        page = chair.get(resp.headers["Location"]).get_data(as_text=True)
        link = re.search(r'href="(/reports/jobs/[^"]+/download)"', page)
        doc = DocxDocument(io.BytesIO(chair.get(link.group(1)).data))
        return "\n".join(p.text for p in doc.paragraphs)

    with app.app_context():
        publicity.save_notice(world.round_id, "湘科协通〔2024〕1号", "各市州科协：", "表扬{year}年。")
    assert "湘科协通〔2024〕1号" in made_number()
    with app.app_context():
        publicity.save_notice(world.round_id, "湘科协通〔2024〕2号", "各市州科协：", "表扬{year}年。")
    assert "湘科协通〔2024〕2号" in made_number()


def test_public_pdf_is_rendered_once_and_then_served_from_storage(app, world, monkeypatch):
    """Anonymous visitors never make a web process render the 公示 PDF again: the first request's job
    keeps it in the document store, which the downloads page shares."""
    from app.publicity import documents as publicity_documents
    from app.reports import jobs

    renders: list[int] = []
    real = publicity_documents.publicity_pdf
    monkeypatch.setattr(publicity_documents, "publicity_pdf", lambda rid: (renders.append(rid), real(rid))[1])
    client = app.test_client()
    first = client.get(f"/gongshi/{YEAR}/gongshi.pdf")
    second = client.get(f"/gongshi/{YEAR}/gongshi.pdf")
    assert first.status_code == second.status_code == 200 and first.data == second.data
    assert renders == [world.round_id]
    assert first.headers["ETag"] == second.headers["ETag"]
    assert client.get(f"/gongshi/{YEAR}/gongshi.pdf",
                      headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    with app.app_context():
        made = [j for j in jobs.recent(None) if j.kind == "publicity"]
        assert len(made) == 1 and made[0].status == "done" and "公示页面" in made[0].label
        # the chair's 公示名单 from the downloads page is the same stored file: nothing is rendered
        job = jobs.submit("publicity", "pdf", world.round_id, None, label="公示名单")
        assert job.status == "done" and job.worker == "storage"
    assert renders == [world.round_id]


def test_public_pdf_still_rendering_answers_503_with_a_retry(app_factory, tmp_path, monkeypatch):
    from app.publicity import views as publicity_views

    app = app_factory({"JOBS_IMMEDIATE": False, "JOBS_FOLDER": str(tmp_path / "jobs")})
    with app.app_context():
        build_publicized_round()
    monkeypatch.setattr(publicity_views, "PUBLIC_PDF_WAIT_SECONDS", 0.2)
    resp = app.test_client().get(f"/gongshi/{YEAR}/gongshi.pdf")  # no consumer runs the job
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "10"
    assert resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    assert "正在生成" in html and 'http-equiv="refresh"' in html and "<script" not in html
