"""Playwright, the portal end to end: the admin creates a 推荐单位 account with a one-time password in the
users page; the unit signs in with it, is made to set its own password, fills every field of a 附件2
form, uploads 3 photos and a video (the vendored tus-js-client, chunked and resumable), downloads its
推荐表 PDF, uploads the stamped scan, and submits; the admin (a second browser) returns it with a note;
the unit sees the note, fixes it and resubmits; the admin accepts it, assigns reviewers and opens 专家评审
from the dashboard; the reviewer's queue lists it. The mails (提交 to the admin, 退回修改 and 受理 to the
unit) arrive at a real SMTP server (aiosmtpd) and carry nothing of the other unit. At phone width
(375 px) the unit's home and form never scroll sideways."""

from __future__ import annotations

import io
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import select

from app.core import storage
from app.core.time import beijing
from app.extensions import db
from app.models import Assignment, Nomination, Nominator, Round, User
from tests import mail_fixtures
from tests.e2e.conftest import serving, sign_in
from tests.e2e.test_phone_e2e import _no_horizontal_scroll
from tests.factories import make_nomination, make_round
from tests.tus_fixtures import _password_hash, file_sha256

pytestmark = pytest.mark.e2e
smtp_server = mail_fixtures.smtp_server

DEMO_VIDEO = Path(__file__).resolve().parents[2] / "app" / "demo" / "media" / "activity-demo.mp4"
UNIT = "长沙市科协"
OTHER_UNIT = "株洲市科协"
OTHER_TITLE = "株洲科普进校园（他单位草稿）"
UNIT_EMAIL = "lianluo@cs-kexie.example"
OTHER_EMAIL = "lianluo@zz-kexie.example"
ADMIN_EMAIL = "kepubu@hnast.example"
NEW_PASSWORD = "Changsha#2024kp"
PHONE = {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
# Every field of the notice's 附件2 form.
FORM = {
    "title": "“科技点亮生活”社区科普嘉年华", "host": "长沙市科协、芙蓉区科协", "contact_name": "刘敏",
    "contact_title": "科普部部长", "contact_phone": "0731-84123456", "address": "长沙市芙蓉区五一大道 123 号",
    "event_count": "18", "people_served": "26000",
    "summary": ("活动以“科技点亮生活”为主题，在 12 个社区开展科普展览、科学实验秀和健康讲座，"
                "组织科技志愿者 260 名，线上直播观看 3 万人次，居民满意度 98%。") * 3,
    "recommendation": "该活动主题鲜明、形式多样、覆盖面广，群众反映良好，同意推荐。",
    "recommendation_date": "2024-09-28",
}
RETURN_NOTE = "第 2 张照片看不清活动现场，请更换；活动场数请按实际核对后重新提交。"


def _jpeg(path: Path, color, size=(640, 480)) -> Path:
    buf = io.BytesIO()
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 40):  # some structure, so it is a believable photo and not one flat colour
        image.paste(tuple(255 - c for c in color), (x, 0, x + 8, size[1]))
    image.save(buf, "JPEG", quality=85)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def portal(app_factory, smtp_server, tmp_path):
    """A round collecting materials (deadline 20 days ahead), two units, an admin with an e-mail address,
    a reviewer and — for the other unit — an account and a draft the first unit must never see."""
    app = app_factory(smtp_server.config())
    with app.app_context():
        rnd = make_round("collecting")
        rnd.deadline = beijing().date() + timedelta(days=20)
        cs = Nominator(name=UNIT, short_name="长沙", kind="city", position=1)
        zz = Nominator(name=OTHER_UNIT, short_name="株洲", kind="city", position=2)
        db.session.add_all([cs, zz])
        db.session.commit()
        pw = _password_hash()
        db.session.add_all([
            User(username="admin", display_name="龙婷", role="admin", password_hash=pw, email=ADMIN_EMAIL),
            User(username="expert", display_name="王建国 教授", role="reviewer", password_hash=pw),
            User(username="zhuzhou", display_name=OTHER_UNIT, role="nominator", password_hash=pw,
                 email=OTHER_EMAIL, affiliation_id=zz.id),
        ])
        db.session.commit()
        make_nomination(rnd, zz, OTHER_TITLE, status="draft", origin="portal", host=OTHER_UNIT)
        db.session.remove()
    files = tmp_path / "files"
    files.mkdir()
    with serving(app) as server:
        yield server, files


def _problems(page) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return problems


def _create_unit_account(page, server) -> str:
    """The admin's users page: a 推荐单位 account with a one-time password, shown once."""
    page.goto(server.url + "/admin/users")
    form = page.locator("#create form")
    form.locator("input[name=username]").fill("changsha")
    form.locator("input[name=display_name]").fill("长沙市科协 刘敏")
    form.locator("select[name=role]").select_option("nominator")
    form.locator("select[name=affiliation_id]").select_option(label=UNIT)
    form.locator("input[name=email]").fill(UNIT_EMAIL)
    form.locator("input[name=phone]").fill("0731-84123456")
    form.locator("input[name=credential][value=otp]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator(".credentials-sheet h1")).to_contain_text("已创建账号 changsha")
    secret = page.locator(".credentials-sheet code.secret").inner_text().strip()
    assert re.fullmatch(r"[A-Za-z2-9]{4}-[A-Za-z2-9]{4}-[A-Za-z2-9]{4}", secret), secret
    return secret


def _fill_form(page, values: dict) -> None:
    for name, value in values.items():
        page.fill(f"#nomination-form [name={name}]", value)


def _nomination_id(page) -> int:
    return int(re.search(r"/portal/nominations/(\d+)", page.url).group(1))


def _stored(server, nid: int) -> Nomination:
    db.session.remove()
    return db.session.get(Nomination, nid)


def test_a_unit_submits_online_and_its_nomination_reaches_the_reviewers(portal, browser_context, smtp_server):
    server, files = portal
    app = server.app
    admin = browser_context().new_page()
    unit = browser_context().new_page()
    problems_admin, problems_unit = _problems(admin), _problems(unit)

    # --- the account: a one-time password, then the unit's own password -----------------------------------
    sign_in(admin, server, "admin")
    admin.wait_for_url("**/admin/**")
    otp = _create_unit_account(admin, server)

    sign_in(unit, server, "changsha", otp)
    unit.wait_for_url("**/account/set-password")
    unit.goto(server.url + "/portal/")  # every page leads back to 设置新密码 until it is done
    assert unit.url.endswith("/account/set-password")
    unit.fill("input[name=new]", NEW_PASSWORD)
    unit.fill("input[name=confirm]", NEW_PASSWORD)
    unit.click("form[action$='/account/set-password'] button[type=submit]")
    unit.wait_for_url("**/portal/")
    expect(unit.locator("h1")).to_contain_text(f"{UNIT} · 推荐材料报送")
    expect(unit.locator(".quota-table")).to_be_visible()
    expect(unit.locator(".countdown")).to_contain_text("距截止还有")  # the live countdown took over
    assert OTHER_TITLE not in unit.content()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "changsha"))
        assert user.role == "nominator" and user.affiliation.name == UNIT and not user.must_change_password
        db.session.remove()

    # --- the 附件2 form: every field, saved as a draft -------------------------------------------------------
    unit.click("text=填报优秀活动（附件2）")
    unit.wait_for_url("**/portal/new/activity")
    _fill_form(unit, FORM)
    counter = unit.locator("textarea[name=summary] ~ .char-count")
    expect(counter).to_contain_text(f"{len(FORM['summary'])} / 500 字")
    unit.click("#nomination-form button[name=op][value=save]")
    unit.wait_for_url(re.compile(r".*/portal/nominations/\d+"))
    nid = _nomination_id(unit)
    for name, value in FORM.items():
        assert unit.input_value(f"#nomination-form [name={name}]") == value, name

    # --- 3 photos, the video over tus, the stamped scan ------------------------------------------------------
    photos = [_jpeg(files / f"现场照片{i}.jpg", (40 * i, 120, 200 - 30 * i)) for i in range(1, 4)]
    unit.set_input_files("#media input[name=photos]", [str(p) for p in photos])
    expect(unit.locator(".photo-previews img")).to_have_count(3)
    unit.wait_for_function("""() => Array.from(document.querySelectorAll('.photo-previews img'))
        .every(img => img.complete && img.naturalWidth > 0)""", timeout=10_000)  # the previews really show
    unit.click("#media form.upload-form button[type=submit]")
    expect(unit.locator(".portal-photos li")).to_have_count(3)

    video = files / "社区科普嘉年华.mp4"
    shutil.copy(DEMO_VIDEO, video)
    unit.wait_for_selector(".tus-upload:not([hidden])")
    unit.set_input_files("[data-tus-file]", str(video))
    unit.click("[data-tus-start]")
    unit.wait_for_selector(f"#video-part-{nid} >> text=当前视频：社区科普嘉年华.mp4", timeout=60_000)
    with app.app_context():
        stored = _stored(server, nid).video
        assert stored.size_bytes == video.stat().st_size
        assert file_sha256(storage.path_of(stored.stored_name)) == file_sha256(str(video))
        db.session.remove()

    # The 推荐表 to print and stamp: the system's own PDF, with the unit's 推荐意见 in it.
    with unit.expect_download(timeout=60_000) as download:
        unit.click("#stamped a[href$='/form.pdf']")
    pdf = PdfReader(download.value.path())
    text = re.sub(r"\s+", "", "".join(page.extract_text() for page in pdf.pages))
    assert re.sub(r"\s+", "", FORM["title"]) in text and FORM["recommendation"][:12] in text

    scan = _jpeg(files / "推荐表盖章件.jpg", (250, 250, 250), size=(1240, 1754))
    unit.set_input_files("#stamped input[name=stamped]", str(scan))
    unit.click("#stamped button[type=submit]")
    expect(unit.locator("#stamped")).to_contain_text("已上传盖章件：推荐表盖章件.jpg")

    # --- at phone width the home and the form fit the screen --------------------------------------------------
    phone = browser_context(**PHONE).new_page()
    sign_in(phone, server, "changsha", NEW_PASSWORD)
    phone.wait_for_url("**/portal/")
    _no_horizontal_scroll(phone)
    for path in (f"/portal/nominations/{nid}", "/portal/new/unit"):
        phone.goto(server.url + path)
        phone.wait_for_load_state("load")
        _no_horizontal_scroll(phone)

    # --- 提交: the admin is told by mail ------------------------------------------------------------------
    unit.goto(f"{server.url}/portal/nominations/{nid}")
    unit.click("#nomination-form button[name=op][value=submit]")
    unit.wait_for_url("**/portal/")
    expect(unit.locator("#flash-region, .flash").first).to_contain_text("已提交")
    expect(unit.locator(f".portal-item:has(a[href$='/portal/nominations/{nid}']) .status-badge")).to_have_text("已提交")
    [submitted] = smtp_server.wait_for(1)
    assert submitted.envelope_to == [ADMIN_EMAIL] and "新提交的推荐材料" in submitted.subject
    assert UNIT in submitted.subject and FORM["title"] in submitted.subject

    # --- the admin returns it with a note ------------------------------------------------------------------------
    admin.goto(f"{server.url}/intake/{nid}")
    section = admin.locator("#portal")
    expect(section).to_contain_text("已提交")
    expect(section).to_contain_text("推荐表盖章件.jpg")
    section.locator("textarea[name=note]").fill(RETURN_NOTE)
    section.locator("button:has-text('退回修改')").click()
    expect(admin.locator("#portal")).to_contain_text("退回修改")
    returned = smtp_server.wait_for(2)[1]
    assert returned.envelope_to == [UNIT_EMAIL] and "退回修改" in returned.subject
    assert RETURN_NOTE in returned.body

    # --- the unit sees the note, fixes the photo and the count, resubmits ---------------------------------------
    unit.reload()
    expect(unit.locator(".portal-item .return-note")).to_contain_text(RETURN_NOTE)
    unit.click(f"a[href$='/portal/nominations/{nid}']")
    expect(unit.locator(".return-note")).to_contain_text(RETURN_NOTE)
    unit.fill("#nomination-form [name=event_count]", "16")  # typed, not saved yet
    unit.once("dialog", lambda d: d.accept())  # 删除这张照片？ (hx-confirm; htmx swaps the photo block in place)
    unit.locator(".portal-photos li").nth(1).locator("button.danger:has-text('删除')").click()
    expect(unit.locator(".portal-photos li")).to_have_count(2)
    expect(unit.locator("#photos-block .flash-success")).to_have_text("已删除。")
    better = _jpeg(files / "现场照片-更换.jpg", (200, 90, 30))
    unit.set_input_files("#media input[name=photos]", str(better))
    unit.click("#media form.upload-form button[type=submit]")
    expect(unit.locator(".portal-photos li")).to_have_count(3)
    expect(unit.locator(".portal-photos")).to_contain_text("现场照片-更换.jpg")
    # the photo changes swapped their block only: what was typed in the form is still there
    assert unit.input_value("#nomination-form [name=event_count]") == "16"
    unit.click("#nomination-form button[name=op][value=submit]")
    unit.wait_for_url("**/portal/")
    expect(unit.locator(f".portal-item:has(a[href$='/portal/nominations/{nid}']) .status-badge")).to_have_text("已提交")
    resubmitted = smtp_server.wait_for(3)[2]
    assert resubmitted.envelope_to == [ADMIN_EMAIL] and "退回后重新提交" in resubmitted.subject

    # --- the admin accepts it ---------------------------------------------------------------------------------------
    admin.goto(f"{server.url}/intake/{nid}")
    admin.locator("#portal button:has-text('受理')").click()
    expect(admin.locator("#portal")).to_contain_text("已受理")
    accepted = smtp_server.wait_for(4)[3]
    assert accepted.envelope_to == [UNIT_EMAIL] and "已受理" in accepted.subject and FORM["title"] in accepted.subject
    unit.reload()
    expect(unit.locator(f".portal-item:has(a[href$='/portal/nominations/{nid}']) .status-badge")).to_have_text("已受理")
    with app.app_context():
        nom = _stored(server, nid)
        assert (nom.status, nom.origin, nom.event_count, nom.return_note) == ("active", "portal", 16, RETURN_NOTE)
        assert [p.original_name for p in nom.photos] == ["现场照片1.jpg", "现场照片3.jpg", "现场照片-更换.jpg"]
        assert nom.submitted_at and nom.accepted_at and nom.stamped is not None
        db.session.remove()

    # --- review opens: assign everyone, move the round on from the dashboard, the reviewer sees it -------------
    admin.goto(server.url + "/admin/assignments")
    admin.click("details.run-box summary")
    admin.locator("details.run-box select[name=mode]").select_option("all")
    admin.click("details.run-box button[type=submit]")
    expect(admin.locator("body")).to_contain_text("均已分配")
    admin.goto(server.url + "/admin/")
    admin.locator("form.phase-forward button[type=submit]").click()
    expect(admin.locator(".badge", has_text="当前阶段：专家评审")).to_be_visible(timeout=30_000)
    with app.app_context():
        assert db.session.scalar(select(Round.phase)) == "reviewing"
        assert db.session.scalar(select(Assignment.id).where(Assignment.nomination_id == nid)) is not None
        db.session.remove()

    reviewer = browser_context().new_page()
    sign_in(reviewer, server, "expert")
    reviewer.wait_for_url("**/review/")
    expect(reviewer.locator(f".queue-table a[href$='/review/nominations/{nid}']")).to_contain_text(FORM["title"])
    assert OTHER_TITLE not in reviewer.content()  # a draft never reaches a reviewer

    # --- the mails: exactly these four, none to the other unit, none about it ----------------------------------
    assert len(smtp_server.messages) == 4
    for message in smtp_server.messages:
        assert OTHER_EMAIL not in message.envelope_to
        assert OTHER_UNIT not in message.subject + message.body and OTHER_TITLE not in message.body
    problems = problems_admin + problems_unit
    assert not [p for p in problems if "Content Security Policy" in p or "Uncaught" in p], problems
