"""The 稳健性 column, filter and panel of the deliberation page (issue 14), over HTTP: shown with the
thresholds and when it was computed, filtered without JS, cached per ranking version, and computed by
the job consumer (the page says 正在计算…) when the category is large."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.jobs import get_huey
from app.models import ReviewSheet, Score
from app.rounds import phases as rounds
from app.stats import cache
from tests.chair_fixtures import build_small_round
from tests.conftest import login

HX = {"HX-Request": "true"}


@pytest.fixture
def small(app):
    with app.app_context():
        return build_small_round()


@pytest.fixture
def chair(app, small):
    client = app.test_client()
    login(client, "chair")
    return client


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr id="nom-(\d+)"', html)


def test_the_page_shows_the_column_the_panel_and_the_thresholds(chair, small):
    html = chair.get("/chair/activity").get_data(as_text=True)
    assert "<th>稳健性</th>" in html
    # A small round whose three reviewers are one point apart on every nomination: nothing is 临界.
    assert html.count("稳定入选") >= 2 and "稳定落选" in html
    assert re.search(r'data-figure="robust-edge">0<', html)
    assert "计算于" in html and "（北京时间），基于排名版本" in html
    assert "≥ 90%" in html and "≤ 10%" in html  # the thresholds in words
    assert "Koo &amp; Li (2016)" in html
    assert "ICC(2,1)" in html and "Krippendorff α" in html and "Kendall W" in html
    assert 'id="sensitivity-counts"' in html
    assert "排名区间（5%–95%）：第 1–1 名" in html


def test_the_filter_works_without_js_and_with_htmx(chair, small):
    only_in = chair.get("/chair/activity?robust=in").get_data(as_text=True)
    assert _rows(only_in) == [str(small.noms["A1"]), str(small.noms["A2"])]
    only_edge = chair.get("/chair/activity?robust=edge")
    assert only_edge.status_code == 200
    assert _rows(only_edge.get_data(as_text=True)) == []
    assert "没有符合筛选条件的推荐对象" in only_edge.get_data(as_text=True)
    partial = chair.get("/chair/activity?robust=out", headers=HX).get_data(as_text=True)
    assert partial.lstrip().startswith("<div id=\"workspace\"") or 'id="workspace"' in partial[:400]
    assert _rows(partial) == [str(small.noms[k]) for k in ("A3", "A4", "A5")]
    # the summary still counts every nomination
    assert re.search(r'data-figure="total">5<', partial)


def test_a_bad_filter_is_explained_and_shows_everything(chair, small):
    resp = chair.get("/chair/activity?robust=bogus")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "未知的筛选条件" in html and len(_rows(html)) == 5


def test_computed_once_per_ranking_version(app, chair, small):
    first = chair.get("/chair/activity").get_data(as_text=True)
    stamp = re.search(r'id="robustness-meta">(.*?)</p>', first).group(1)
    with app.app_context():
        files = sorted(f for f in __import__("os").listdir(cache.folder()) if f.endswith(".json"))
    assert len(files) == 1 and "-activity-" in files[0]
    assert re.search(r"基于排名版本 (\d+)", stamp)
    again = chair.get("/chair/activity").get_data(as_text=True)
    assert re.search(r'id="robustness-meta">(.*?)</p>', again).group(1) == stamp
    # A changed score bumps the ranking version: the figures are computed again for it.
    with app.app_context():
        _change_a_score(small)
    later = chair.get("/chair/activity").get_data(as_text=True)
    v1 = int(re.search(r"基于排名版本 (\d+)", stamp).group(1))
    v2 = int(re.search(r"基于排名版本 (\d+)", later).group(1))
    assert v2 > v1


def test_a_reviewer_cannot_see_it(app, small):
    client = app.test_client()
    login(client, "r1")
    assert client.get("/chair/activity?robust=edge").status_code in (302, 403)


def _large_category(app_factory, tmp_path):
    """An app whose every category is large (computed by the consumer, which runs only when told), the
    small round and a signed-in chair."""
    app = app_factory({"STATS_INLINE_MAX": 0, "JOBS_IMMEDIATE": False, "JOBS_FOLDER": str(tmp_path / "jobs")})
    with app.app_context():
        small = build_small_round()
    client = app.test_client()
    login(client, "chair")
    return app, small, client


def _large_category_computed_once(app_factory, tmp_path):
    app, small, client = _large_category(app_factory, tmp_path)
    client.get("/chair/activity")
    huey = get_huey(app)
    huey.execute(huey.dequeue())
    return app, small, client, huey


def test_large_category_is_computed_by_the_consumer(app_factory, tmp_path):
    app, _small, client = _large_category(app_factory, tmp_path)
    html = client.get("/chair/activity").get_data(as_text=True)
    assert "正在计算…" in html and 'hx-trigger="load delay:2s"' in html
    assert "计算中" in html  # the column waits too
    again = client.get("/chair/activity", headers=HX).get_data(as_text=True)
    assert "正在计算…" in again
    # One task was queued for the two requests; the consumer runs it.
    huey = get_huey(app)
    assert len(huey) == 1
    task = huey.dequeue()
    huey.execute(task)
    assert len(huey) == 0
    done = client.get("/chair/activity", headers=HX).get_data(as_text=True)
    assert "正在计算…" not in done and "计算于" in done and "稳定入选" in done


def test_the_pending_page_shows_the_previous_version_meanwhile(app_factory, tmp_path):
    app, small, client, _huey = _large_category_computed_once(app_factory, tmp_path)
    with app.app_context():
        _change_a_score(small)
    html = client.get("/chair/activity").get_data(as_text=True)
    assert "正在计算…" in html and re.search(r"下面显示的是排名版本 \d+ 的结果", html)
    assert "稳定入选" in html


def _change_a_score(small) -> None:
    sheet = db.session.scalar(select(ReviewSheet).where(ReviewSheet.nomination_id == small.noms["A3"]))
    score = db.session.scalar(select(Score).where(Score.sheet_id == sheet.id).limit(1))
    score.value = score.value + 0.5
    rounds.bump_ranking(small.round_id, "activity")
    db.session.commit()


def test_a_decision_takes_the_figures_over_without_computing(app_factory, tmp_path):
    # A decision bumps the ranking version but changes no score: a large category does not go back to
    # 正在计算… after every click, the figures are stored under the new version as they were.
    app, small, client, huey = _large_category_computed_once(app_factory, tmp_path)
    first = client.get("/chair/activity").get_data(as_text=True)
    meta = re.search(r'id="robustness-meta">(.*?)</p>', first).group(1)
    with app.app_context():
        from app.deliberation import operations as decisions

        decisions.prefill_from_cut_line(small.round_id, "activity")
    after = client.get("/chair/activity").get_data(as_text=True)
    assert "正在计算…" not in after and len(huey) == 0
    meta_after = re.search(r'id="robustness-meta">(.*?)</p>', after).group(1)
    v1, v2 = (int(re.search(r"基于排名版本 (\d+)", m).group(1)) for m in (meta, meta_after))
    assert v2 > v1
    assert meta_after.split("（北京时间）")[0] == meta.split("（北京时间）")[0]  # the same computation
