"""A visitor without an account reads the 公示 page and files an objection; the admin accepts it,
records the 核实 and ends it in 撤销推荐; the public page then lacks that nomination."""

from __future__ import annotations

import pytest

from app import create_app
from app.extensions import db
from tests.e2e.conftest import serving, sign_in
from tests.publicity_fixtures import build_publicized_round

pytestmark = pytest.mark.e2e


@pytest.fixture
def publicized_server(tmp_path):
    app = create_app({
        "TESTING": True, "SECRET_KEY": "e2e-secret", "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(tmp_path / "k.db"),
        "UPLOAD_FOLDER": str(tmp_path / "uploads"), "RATELIMIT_ENABLED": False,
    })
    with app.app_context():
        db.create_all()
        small = build_publicized_round()
        titles = {k: small.nom(k).title for k in ("A1", "A2", "U1")}
        target = small.noms["A1"]
    with serving(app) as server:
        yield server, titles, target


def test_visitor_objects_and_admin_revokes(publicized_server, browser_context):
    server, titles, target = publicized_server
    visitor = browser_context().new_page()
    visitor.goto(server.url + "/gongshi/2024")
    for title in titles.values():
        assert visitor.get_by_text(title, exact=True).count() == 1
    assert visitor.locator("#publicity-period").inner_text().endswith("（5个工作日）")
    visitor.click("#file-objection")
    visitor.select_option("select[name=nomination_id]", str(target))
    visitor.fill("input[name=name]", "王实名")
    visitor.fill("input[name=phone]", "13900001234")
    visitor.fill("textarea[name=facts]", "该活动实际举办场次与申报材料不符，特此实名反映。")
    visitor.check("input[name=pledge]")
    visitor.click("button[type=submit]")
    visitor.wait_for_selector("text=已收到您的异议")

    admin = browser_context().new_page()
    sign_in(admin, server, "admin")
    admin.goto(server.url + "/chair/objections")
    admin.click("table.data a >> nth=0")
    assert admin.get_by_text("王实名").count() >= 1
    admin.click("#accept")
    admin.wait_for_selector("text=已受理，请核实后作出处理结果")
    admin.fill("textarea[name=note]", "已电话联系推荐单位，情况属实。")
    admin.click("#add-note")
    admin.wait_for_selector("text=核实情况已记录")
    admin.check("input[name=result][value=revoked]")
    admin.locator("form:has(#conclude) textarea[name=note]").fill("经核实，申报材料与实际不符，撤销推荐。")
    admin.click("#conclude")
    admin.wait_for_selector("#objection-result")
    assert admin.locator("#objection-result").inner_text() == "撤销推荐"

    visitor.goto(server.url + "/gongshi/2024")
    assert visitor.get_by_text(titles["A1"], exact=True).count() == 0
    assert visitor.get_by_text(titles["A2"], exact=True).count() == 1
