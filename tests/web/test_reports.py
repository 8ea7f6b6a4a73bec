"""Downloads over HTTP: staff get everything, a reviewer only their own 专家评分表; the job flow
(htmx fragment that polls, the no-JS redirect, the download); file names and headers."""

from __future__ import annotations

import io
import time
from urllib.parse import unquote

import pytest
from pypdf import PdfReader

from tests.chair_fixtures import build_decided_round
from tests.conftest import csrf_token_from, signed_in

HX = {"HX-Request": "true"}


@pytest.fixture
def small(app):
    with app.app_context():
        return build_decided_round()


_client = signed_in


def _text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    return "".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages).replace("\n", "")


def _filename(resp) -> str:
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    return unquote(disposition.split("filename*=UTF-8''")[1])


def test_reviewer_gets_only_their_own_sheet(app, small):
    r1 = _client(app, "r1")
    page = r1.get("/reports/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "我的专家评分表" in html
    assert "生成 PDF" not in html and "/reports/forms/" not in html

    mine = r1.get("/reports/sheets/mine/activity.pdf")
    assert mine.status_code == 200 and mine.mimetype == "application/pdf"
    assert mine.headers["Cache-Control"] == "private, no-store"
    text = _text(mine.data)
    assert "r1对A1的评审意见" in text and "r2对A1" not in text
    assert _filename(mine) == "2024年全国科普日优秀活动专家评分表-r1姓名.pdf"
    assert r1.get(f"/reports/sheets/{small.users['r1']}/unit.pdf").status_code == 200

    for url in [f"/reports/sheets/{small.users['r2']}/activity.pdf", f"/reports/forms/{small.noms['A1']}.pdf",
                "/reports/xlsx/ranking/activity.xlsx", "/reports/xlsx/list.xlsx", "/reports/jobs/0123456789abcdef",
                "/reports/jobs/0123456789abcdef/download"]:
        assert r1.get(url).status_code == 403, url
    token = csrf_token_from(html)
    assert r1.post("/reports/jobs", data={"kind": "list", "format": "pdf", "category": "unit",
                                          "csrf_token": token}).status_code == 403


def test_staff_direct_downloads(app, small):
    chair = _client(app, "chair")
    form = chair.get(f"/reports/forms/{small.noms['A2']}.pdf")
    assert form.status_code == 200 and "株洲“追梦航天”科普进校园活动" in _text(form.data)
    assert _filename(form).startswith("优秀活动推荐表-")
    other = chair.get(f"/reports/sheets/{small.users['r2']}/unit.pdf")
    assert other.status_code == 200 and "r2对U1的评审意见" in _text(other.data)
    assert chair.get(f"/reports/sheets/{small.users['chair']}/unit.pdf").status_code == 404
    assert chair.get("/reports/sheets/mine/unit.pdf").status_code == 403
    assert chair.get("/reports/forms/999999.pdf").status_code == 404
    for url, name in [("/reports/xlsx/ranking/unit.xlsx", "2024年全国科普日优秀组织单位评审排名.xlsx"),
                      ("/reports/xlsx/list/activity.xlsx", "2024年全国科普日优秀活动名单.xlsx"),
                      ("/reports/xlsx/list.xlsx", "2024年全国科普日审定通过名单.xlsx")]:
        resp = chair.get(url)
        assert resp.status_code == 200 and resp.data[:2] == b"PK", url
        assert _filename(resp) == name
    page = chair.get("/reports/").get_data(as_text=True)
    assert "生成 PDF" in page and "讨论稿" in page and "r3姓名" in page


def _wait_done(client, job_id: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = client.get(f"/reports/jobs/{job_id}", headers=HX).get_data(as_text=True)
        if 'data-status="done"' in body or 'data-status="failed"' in body:
            return body
        assert 'hx-trigger="load delay:1s"' in body  # still polling
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def test_job_flow_with_htmx_and_without(app, small):
    admin = _client(app, "admin")
    token = csrf_token_from(admin.get("/reports/").get_data(as_text=True))
    resp = admin.post("/reports/jobs", data={"kind": "forms", "format": "pdf", "category": "activity",
                                             "csrf_token": token}, headers=HX)
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "<html" not in body and 'id="jobs-region"' in body and "优秀活动推荐表（审定通过，合订本）（PDF）" in body
    job_id = body.split('id="job-')[1].split('"')[0]
    done = _wait_done(admin, job_id)
    assert "下载" in done and "hx-trigger" not in done
    download = admin.get(f"/reports/jobs/{job_id}/download")
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert "2024年全国科普日优秀活动推荐表" in _text(download.data)
    assert _filename(download) == "2024年全国科普日优秀活动推荐表（审定通过，共2份）.pdf"

    # Without JavaScript: 303 to the job's own page, which refreshes itself while the job runs.
    resp = admin.post("/reports/jobs", data={"kind": "list", "format": "pdf", "category": "unit",
                                             "csrf_token": token})
    assert resp.status_code == 303 and "/reports/jobs/" in resp.headers["Location"]
    job_id = resp.headers["Location"].rsplit("/", 1)[1]
    page = admin.get(f"/reports/jobs/{job_id}").get_data(as_text=True)
    assert "<html" in page and "生成文档" in page
    _wait_done(admin, job_id)
    assert "2024年全国科普日优秀组织单位名单" in _text(admin.get(f"/reports/jobs/{job_id}/download").data)

    for bad in [{"kind": "nope", "format": "pdf"}, {"kind": "forms", "format": "xlsx", "category": "unit"},
                {"kind": "list", "format": "pdf", "category": "x"}]:
        assert admin.post("/reports/jobs", data={**bad, "csrf_token": token}).status_code == 404
    assert admin.get("/reports/jobs/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert admin.get("/reports/jobs/0123456789abcdef/download").status_code == 404


def _publicize(round_id: int) -> None:
    from app.extensions import db
    from app.models import Round

    rnd = db.session.get(Round, round_id)
    rnd.phase = "publicizing"
    db.session.commit()


def test_generation_record_names_drafts_apart_in_beijing_time(app, small):
    """The 生成记录 says which files are 讨论稿 and which 公示稿, with when each was made (Beijing time);
    a file made in 公示 is never deduplicated into one asked for in another phase."""
    admin = _client(app, "admin")
    token = csrf_token_from(admin.get("/reports/").get_data(as_text=True))
    data = {"kind": "list", "format": "pdf", "category": "unit", "csrf_token": token}
    first = admin.post("/reports/jobs", data=data).headers["Location"].rsplit("/", 1)[1]
    body = _wait_done(admin, first)
    assert 'data-draft="讨论稿"' in body and "生成于" in body and "（北京时间）" in body
    with app.app_context():
        from app.reports import jobs

        job = jobs.get(first)
        made = job.made_at
    from datetime import UTC, datetime, timedelta

    beijing = datetime.fromtimestamp(job.finished_at, UTC) + timedelta(hours=8)
    assert made == beijing.strftime("%Y-%m-%d %H:%M") and made in body

    with app.app_context():
        _publicize(small.round_id)
    second = admin.post("/reports/jobs", data=data).headers["Location"].rsplit("/", 1)[1]
    assert second != first
    body = _wait_done(admin, second)
    assert 'data-draft="公示稿"' in body
    download = admin.get(f"/reports/jobs/{second}/download")
    assert _filename(download).endswith("（公示稿）.pdf")
    page = admin.get("/reports/").get_data(as_text=True)
    assert page.count('data-draft="公示稿"') == 1 and page.count('data-draft="讨论稿"') == 1

    xlsx = admin.get("/reports/xlsx/list/unit.xlsx")
    assert xlsx.status_code == 200 and _filename(xlsx).endswith("（公示稿）.xlsx")
