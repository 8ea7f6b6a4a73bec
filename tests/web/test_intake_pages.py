"""The intake pages through the Flask test client: forms with field errors (422, nothing stored), uploads,
the import preview → confirm flow, 形式审查 decisions, and who may see any of it."""

import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.intake import nominations
from app.models import Attachment, AuditEvent, FormFinding, Nomination, Round
from tests import intake_fixtures
from tests.conftest import csrf_token_from, login
from tests.factories import make_user
from tests.intake_fixtures import make_form_docx, make_image, make_mp4, nominator

intake_app = intake_fixtures.intake_app

FORM = {"title": "科普进社区", "host": "长沙市科协", "contact_name": "张三", "contact_title": "部长",
        "contact_phone": "13812345678", "address": "长沙市芙蓉区", "event_count": "10", "people_served": "2000",
        "summary": "活动简介。", "recommendation": "同意推荐。", "recommendation_date": "2024-09-30",
        "received_date": "2024-10-01"}


@pytest.fixture
def admin(intake_app):
    client = intake_app.test_client()
    login(client, "admin")
    return client


def _token(client, path="/intake/new?category=activity"):
    return csrf_token_from(client.get(path).get_data(as_text=True))


def _count(app, model=Nomination):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _ids(app):
    with app.app_context():
        return {n.name: n.id for n in nominations.nominators()}


def _create(app, client, **overrides):
    data = {**FORM, "category": "activity", "nominator_id": _ids(app)["长沙市科协"], "csrf_token": _token(client),
            **overrides}
    return client.post("/intake/new", data=data)


def _no_inline_code(html: str) -> None:
    assert 'style="' not in html and not re.search(r"<script>(?!</script>)", html)
    assert not re.search(r"\son[a-z]+=", html)


def test_only_admins_see_intake(intake_app):
    client = intake_app.test_client()
    assert client.get("/intake/").status_code in (302, 401)
    with intake_app.app_context():
        make_user("expert", role="reviewer")
    login(client, "expert")
    assert client.get("/intake/").status_code == 403
    assert client.get("/intake/import").status_code == 403


def test_create_with_errors_shows_them_beside_the_fields_and_stores_nothing(intake_app, admin):
    resp = _create(intake_app, admin, summary="字" * 501, event_count="-3", title="")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="err-summary">情况简介不能超过 500 字（当前 501 字）' in html.replace("活动情况简介", "情况简介")
    assert 'id="err-event_count">' in html and "不小于 0 的整数" in html
    assert 'id="err-title">请填写活动名称' in html
    assert "字" * 501 in html  # the admin's text is kept in the form
    assert _count(intake_app) == 0
    _no_inline_code(html)


def test_create_then_detail_shows_every_field(intake_app, admin):
    resp = _create(intake_app, admin)
    assert resp.status_code == 303
    detail = admin.get(resp.headers["Location"]).get_data(as_text=True)
    for text in ("科普进社区", "长沙市科协", "张三", "13812345678", "长沙市芙蓉区", "2,000", "活动简介。", "同意推荐。",
                 "2024年9月30日", "2024年10月1日"):
        assert text in detail
    _no_inline_code(detail)


def test_a_stale_edit_gets_409_and_keeps_the_other_change(intake_app, admin):
    location = _create(intake_app, admin).headers["Location"]
    nid = int(location.rstrip("/").split("/")[-1])
    page = admin.get(f"/intake/{nid}/edit").get_data(as_text=True)
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    token = csrf_token_from(page)
    base = {**FORM, "nominator_id": _ids(intake_app)["长沙市科协"], "csrf_token": token, "version": version}
    assert admin.post(f"/intake/{nid}/edit", data={**base, "title": "第一次修改"}).status_code == 303
    stale = admin.post(f"/intake/{nid}/edit", data={**base, "title": "过期的修改"})
    assert stale.status_code == 409 and "已被他人修改" in stale.get_data(as_text=True)
    with intake_app.app_context():
        assert db.session.get(Nomination, nid).title == "第一次修改"


def test_withdraw_needs_a_reason(intake_app, admin):
    nid = int(_create(intake_app, admin).headers["Location"].split("/")[-1])
    token = _token(admin, f"/intake/{nid}")
    resp = admin.post(f"/intake/{nid}/withdraw", data={"csrf_token": token, "reason": ""})
    assert resp.status_code == 422 and "撤回必须填写理由" in resp.get_data(as_text=True)
    assert admin.post(f"/intake/{nid}/withdraw", data={"csrf_token": token, "reason": "来函撤回"}).status_code == 303
    with intake_app.app_context():
        assert db.session.get(Nomination, nid).status == "withdrawn"
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "nomination.withdraw")).reason == "来函撤回"
    listing = admin.get("/intake/?category=activity&status=withdrawn").get_data(as_text=True)
    assert "科普进社区" in listing and "已撤回" in listing


def test_photo_and_video_uploads_with_refusals(intake_app, admin):
    nid = int(_create(intake_app, admin).headers["Location"].split("/")[-1])
    token = _token(admin, f"/intake/{nid}")
    bad = admin.post(f"/intake/{nid}/photos", data={"csrf_token": token,
                                                    "photos": (io.BytesIO(b"plain text" * 50), "假照片.jpg")},
                     content_type="multipart/form-data")
    assert bad.status_code == 422 and "不是有效的 JPEG 或 PNG" in bad.get_data(as_text=True)
    assert _count(intake_app, Attachment) == 0
    ok = admin.post(f"/intake/{nid}/photos", content_type="multipart/form-data", data={
        "csrf_token": token, "photos": [(io.BytesIO(make_image("PNG", color=(i, 0, 0))), f"{i}.png") for i in range(3)]})
    assert ok.status_code == 303 and _count(intake_app, Attachment) == 3
    video = admin.post(f"/intake/{nid}/video", content_type="multipart/form-data",
                       data={"csrf_token": token, "video": (io.BytesIO(make_mp4()), "现场.mp4")})
    assert video.status_code == 303
    detail = admin.get(f"/intake/{nid}").get_data(as_text=True)
    with intake_app.app_context():
        photo = db.session.scalars(select(Attachment).where(Attachment.kind == "photo")).first()
    assert f"/review/files/{photo.id}?thumb=1" in detail and "现场.mp4" in detail
    # htmx delete answers with the media fragment only
    frag = admin.post(f"/intake/{nid}/attachments/{photo.id}/delete", data={"csrf_token": token},
                      headers={"HX-Request": "true"})
    body = frag.get_data(as_text=True)
    assert frag.status_code == 200 and 'id="media-block"' in body and "<html" not in body
    assert _count(intake_app, Attachment) == 3


def test_the_xlsx_template_downloads(intake_app, admin):
    resp = admin.get("/intake/template.xlsx")
    disposition = resp.headers["Content-Disposition"]
    assert resp.status_code == 200 and "attachment" in disposition and "%E6%A8%A1%E6%9D%BF.xlsx" in disposition
    wb = load_workbook(io.BytesIO(resp.data))
    assert wb["推荐对象"]["C1"].value == "单位名称/活动名称"
    assert wb["推荐单位名单"]["A1"].value == "长沙市科协"


def test_import_preview_saves_nothing_until_confirmed(intake_app, admin):
    token = _token(admin, "/intake/import")
    resp = admin.post("/intake/import", content_type="multipart/form-data", data={
        "csrf_token": token, "received_date": "2024-10-02",
        "files": [(io.BytesIO(make_form_docx("activity")), "推荐表.docx")]})
    assert resp.status_code == 303
    preview_url = resp.headers["Location"]
    page = admin.get(preview_url).get_data(as_text=True)
    assert "尚未保存" in page and "“科普进社区”系列活动" in page and "株洲市科学技术协会" in page
    assert "无法确定推荐单位" in page  # the form does not name its nominator: the admin picks one
    assert _count(intake_app) == 0
    _no_inline_code(page)
    ids = _ids(intake_app)
    done = admin.post(preview_url, data={"csrf_token": token, "op": "confirm", "include-0": "1",
                                         "nominator-0": ids["株洲市科协"]})
    assert done.status_code == 303
    result = admin.get(preview_url).get_data(as_text=True)
    assert "导入结果" in result and "新增 1 项" in result
    with intake_app.app_context():
        nom = db.session.scalar(select(Nomination))
        assert nom.nominator_id == ids["株洲市科协"] and nom.people_served == 3000
    again = admin.post(preview_url, data={"csrf_token": token, "op": "confirm", "include-0": "1",
                                          "nominator-0": ids["株洲市科协"]})
    assert again.status_code == 409 and _count(intake_app) == 1


def test_import_refresh_and_discard(intake_app, admin):
    token = _token(admin, "/intake/import")
    url = admin.post("/intake/import", content_type="multipart/form-data", data={
        "csrf_token": token, "files": [(io.BytesIO(make_form_docx("unit")), "表.docx")]}).headers["Location"]
    ids = _ids(intake_app)
    assert admin.post(url, data={"csrf_token": token, "op": "refresh", "include-0": "1",
                                 "nominator-0": ids["湖南省教育厅"]}).status_code == 303
    page = admin.get(url).get_data(as_text=True)
    assert f'value="{ids["湖南省教育厅"]}" selected' in page and "由管理员选择" in page
    assert admin.post(url, data={"csrf_token": token, "op": "discard"}).status_code == 303
    assert admin.get(url).status_code == 404 and _count(intake_app) == 0


def test_previews_belong_to_their_uploader(intake_app, admin):
    token = _token(admin, "/intake/import")
    url = admin.post("/intake/import", content_type="multipart/form-data", data={
        "csrf_token": token, "files": [(io.BytesIO(make_form_docx("unit")), "表.docx")]}).headers["Location"]
    with intake_app.app_context():
        make_user("admin2", role="admin")
    other = intake_app.test_client()
    login(other, "admin2")
    assert other.get(url).status_code == 404
    assert other.get("/intake/import/..%2F..%2Fetc").status_code == 404


def test_import_without_files_is_a_field_error(intake_app, admin):
    token = _token(admin, "/intake/import")
    resp = admin.post("/intake/import", data={"csrf_token": token}, content_type="multipart/form-data")
    assert resp.status_code == 422 and "请选择要导入的文件" in resp.get_data(as_text=True)


def test_a_files_part_without_a_file_name_is_a_field_error_not_a_500(intake_app, admin):
    # A hand-made multipart body whose `files` part carries no filename reaches the form as text.
    token = _token(admin, "/intake/import")
    before = _count(intake_app)
    for fields in ({"files": "not a file"}, {"files": ["a", "b"]}):
        resp = admin.post("/intake/import", data={"csrf_token": token, **fields},
                          content_type="multipart/form-data")
        assert resp.status_code == 422 and "请选择要导入的文件" in resp.get_data(as_text=True)
    assert _count(intake_app) == before
    resp = _create(intake_app, admin)
    nom_id = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    for name, message in (("photos", "请选择照片"), ("video", "请选择视频文件")):
        resp = admin.post(f"/intake/{nom_id}/{name}", data={"csrf_token": token, name: "text"},
                          content_type="multipart/form-data")
        assert resp.status_code == 422 and message in resp.get_data(as_text=True), (name, resp.status_code)
    with intake_app.app_context():
        assert db.session.get(Nomination, nom_id).attachments == []
    # A nameless part among real files: the real ones are taken, the text part is ignored.
    photos = [(io.BytesIO(make_image("JPEG", size=(320, 240))), f"{i}.jpg") for i in range(2)]
    mixed = admin.post(f"/intake/{nom_id}/photos", content_type="multipart/form-data",
                       data={"csrf_token": token, "photos": [photos[0], "text", photos[1]]})
    assert mixed.status_code == 303, mixed.status_code
    with intake_app.app_context():
        assert [a.original_name for a in db.session.get(Nomination, nom_id).photos] == ["0.jpg", "1.jpg"]


def test_check_page_and_finding_decisions(intake_app, admin):
    nid = int(_create(intake_app, admin, recommendation="").headers["Location"].split("/")[-1])
    page = admin.get("/intake/check").get_data(as_text=True)
    assert "缺少推荐意见" in page and "暂不能进入专家评审阶段" in page
    _no_inline_code(page)
    with intake_app.app_context():
        finding = db.session.scalar(select(FormFinding).where(FormFinding.rule == "no_recommendation"))
    token = csrf_token_from(page)
    htmx = {"HX-Request": "true"}
    missing = admin.post(f"/intake/findings/{finding.id}/waive", data={"csrf_token": token, "note": "", "ctx": "check"},
                         headers=htmx)
    assert missing.status_code == 422 and "请填写说明" in missing.get_data(as_text=True)
    ok = admin.post(f"/intake/findings/{finding.id}/waive", data={"csrf_token": token, "note": "原件已补交",
                                                                  "ctx": "check"}, headers=htmx)
    body = ok.get_data(as_text=True)
    assert ok.status_code == 200 and "已豁免" in body and "<html" not in body and f"#{nid}" in body
    listing = admin.get("/intake/?category=activity&findings=blocking").get_data(as_text=True)
    assert "科普进社区" in listing  # photo count is still a blocking finding
    run = admin.post("/intake/check/run", data={"csrf_token": token})
    assert run.status_code == 303
    with intake_app.app_context():
        assert db.session.get(FormFinding, finding.id).status == "waived"


def test_list_counts_against_quota(intake_app, admin):
    ids = _ids(intake_app)
    for title in ("学会活动一", "学会活动二"):
        _create(intake_app, admin, title=title, nominator_id=ids["湖南省科普作家协会"])
    page = admin.get("/intake/?category=activity").get_data(as_text=True)
    assert "超出名额：湖南省科普作家协会 2/1" in page
    frag = admin.get("/intake/?category=activity&nominator=%d" % ids["长沙市科协"], headers={"HX-Request": "true"})
    assert "<html" not in frag.get_data(as_text=True) and "没有符合条件的推荐对象" in frag.get_data(as_text=True)


def test_pages_answer_404_for_another_rounds_nomination(intake_app, admin):
    with intake_app.app_context():
        other = Round(year=2023, name="2023年评选", phase="final")
        db.session.add(other)
        db.session.commit()
        nom = Nomination(round_id=other.id, nominator_id=nominator("长沙市科协").id, category="unit", title="旧的")
        db.session.add(nom)
        db.session.commit()
        nid = nom.id
    assert admin.get(f"/intake/{nid}").status_code == 404


def test_a_round_loaded_without_checks_says_so_until_checked(demo_app, demo_client):
    # The demo seed runs the check; forget that run, as for data loaded straight into the database.
    with demo_app.app_context():
        db.session.execute(AuditEvent.__table__.delete().where(AuditEvent.action == "form_check.run"))
        db.session.execute(FormFinding.__table__.delete())
        db.session.commit()
    login(demo_client, "admin")
    listing = demo_client.get("/intake/?category=unit").get_data(as_text=True)
    assert "还没有做过形式审查" in listing and "未检查" in listing
    token = csrf_token_from(listing)
    assert demo_client.post("/intake/check/run", data={"csrf_token": token}).status_code == 303
    listing = demo_client.get("/intake/?category=unit").get_data(as_text=True)
    assert "还没有做过形式审查" not in listing and "未检查" not in listing
    check = demo_client.get("/intake/check?status=open").get_data(as_text=True)
    assert "上次检查" in check and "缺少活动视频" in check


def test_the_form_strips_control_characters_and_renders_limits_from_its_declarations(intake_app, admin):
    from app.intake import forms

    page = admin.get("/intake/new?category=activity").get_data(as_text=True)
    declared = forms.maxlengths(forms.ActivityFields())
    assert declared["summary"] == 500 and declared["title"] == 100
    assert f'name="summary" maxlength="{declared["summary"]}"' in page and 'data-maxchars="500"' in page
    assert f'name="title" maxlength="{declared["title"]}"' in page
    resp = _create(intake_app, admin, title="科普\x00进\u200b社区\x07", contact_name="张\x1b三")
    assert resp.status_code == 303
    with intake_app.app_context():
        nom = db.session.scalar(select(Nomination))
        assert (nom.title, nom.contact_name) == ("科普进社区", "张三")


def test_an_over_long_field_is_422_beside_the_field_and_writes_nothing(intake_app, admin):
    resp = _create(intake_app, admin, title="名" * 101, contact_phone="打电话")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="err-title">活动名称不能超过 100 字（当前 101 字）' in html
    assert 'id="err-contact_phone">联系电话应为数字' in html
    assert _count(intake_app) == 0
    with intake_app.app_context():
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "nomination.create")) is None


def test_writes_answer_405_to_other_methods_and_write_nothing(intake_app, admin):
    token = _token(admin)
    data = {**FORM, "category": "activity", "nominator_id": _ids(intake_app)["长沙市科协"], "csrf_token": token}
    for method in (admin.put, admin.patch, admin.delete):
        assert method("/intake/new", data=data).status_code == 405
    nid = int(_create(intake_app, admin).headers["Location"].split("/")[-1])
    assert admin.get(f"/intake/{nid}/withdraw").status_code == 405
    assert admin.put(f"/intake/{nid}/edit", data={**data, "title": "PUT 修改"}).status_code == 405
    assert _count(intake_app) == 1
    with intake_app.app_context():
        nom = db.session.get(Nomination, nid)
        assert nom.title == "科普进社区" and nom.status == "active"


def test_an_edit_without_its_version_is_refused(intake_app, admin):
    nid = int(_create(intake_app, admin).headers["Location"].split("/")[-1])
    page = admin.get(f"/intake/{nid}/edit").get_data(as_text=True)
    data = {**FORM, "nominator_id": _ids(intake_app)["长沙市科协"], "csrf_token": csrf_token_from(page),
            "title": "没有版本号的修改"}
    for version in (None, "", "   "):
        sent = data if version is None else {**data, "version": version}
        resp = admin.post(f"/intake/{nid}/edit", data=sent)
        assert resp.status_code == 422 and "缺少版本号" in resp.get_data(as_text=True)
    with intake_app.app_context():
        assert db.session.get(Nomination, nid).title == "科普进社区"
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "nomination.update")) is None


def test_import_preview_says_why_a_unit_form_went_to_its_nominator(intake_app, admin):
    token = _token(admin, "/intake/import")
    resp = admin.post("/intake/import", content_type="multipart/form-data", data={
        "csrf_token": token, "files": [(io.BytesIO(make_form_docx("unit")), "推荐表.docx")]})
    assert resp.status_code == 303
    page = admin.get(resp.headers["Location"]).get_data(as_text=True)
    assert "根据单位名称和通讯地址，位于株洲市" in page
    with intake_app.app_context():
        zhuzhou = nominator("株洲市科协").id
    assert f'<option value="{zhuzhou}" selected>' in page  # preselected, and the admin can pick another
    _no_inline_code(page)


def test_damaged_files_get_chinese_messages_never_a_500(intake_app, admin):
    docx_bytes = make_form_docx("unit")
    token = _token(admin, "/intake/import")
    resp = admin.post("/intake/import", content_type="multipart/form-data", data={
        "csrf_token": token, "files": [(io.BytesIO(docx_bytes[: len(docx_bytes) // 2]), "半截.docx"),
                                       (io.BytesIO(b"PK\x03\x04" + b"\x00" * 300), "坏包.zip")]})
    assert resp.status_code in (303, 422)
    page = (admin.get(resp.headers["Location"]) if resp.status_code == 303 else resp).get_data(as_text=True)
    assert "半截.docx" in page and "坏包.zip" in page
    nid = int(_create(intake_app, admin).headers["Location"].split("/")[-1])
    token = _token(admin, f"/intake/{nid}")
    photo = make_image("JPEG", size=(320, 240))
    cut = admin.post(f"/intake/{nid}/photos", content_type="multipart/form-data",
                     data={"csrf_token": token, "photos": (io.BytesIO(photo[: len(photo) * 2 // 3]), "半张.jpg")})
    assert cut.status_code == 422 and "半张.jpg" in cut.get_data(as_text=True)
    mp4 = make_mp4()[:20]
    video = admin.post(f"/intake/{nid}/video", content_type="multipart/form-data",
                       data={"csrf_token": token, "video": (io.BytesIO(mp4), "半段.mp4")})
    assert video.status_code == 422 and "半段.mp4" in video.get_data(as_text=True)
    assert _count(intake_app, Attachment) == 0
