"""The PDF documents, read back with pypdf: every field, the right 审定意见 on the right form, the
public list without personal data in the official order, subset CJK fonts, sane page counts, and
hostile field values that stay text and fetch nothing."""

from __future__ import annotations

import io
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pypdf import PdfReader
from pypdf.generic import ContentStream

from app.core.templating import fmt_score
from app.deliberation import operations as decisions
from app.demo.final import make_seal_png
from app.extensions import db
from app.ranking import engine as ranking
from app.reports import documents
from tests.chair_fixtures import ACTIVITIES, build_small_round

SUBSET_FONT_RE = re.compile(r"^/[A-Z]{6}\+Noto-?Serif-?SC(-Bold)?$")
TIMINGS: dict[str, float] = {}
BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


def _reader(pdf: bytes) -> PdfReader:
    assert pdf.startswith(b"%PDF-")
    return PdfReader(io.BytesIO(pdf))


def _pages(pdf: bytes) -> list[str]:
    return [p.extract_text() or "" for p in _reader(pdf).pages]


def _flat(text: str) -> str:
    """pypdf breaks lines inside table cells: compare without whitespace."""
    return re.sub(r"\s+", "", text)


def _fonts(pdf: bytes) -> set[str]:
    names = set()
    for page in _reader(pdf).pages:
        for ref in page["/Resources"].get("/Font", {}).values():
            names.add(str(ref.get_object()["/BaseFont"]))
    return names


def _drawn(resources, content) -> int:
    """Image XObjects a content stream actually paints (`Do`), following form XObjects."""
    xobjects = resources.get("/XObject", {}) if resources else {}
    count = 0
    for operands, operator in ContentStream(content, None).operations:
        if operator != b"Do" or operands[0] not in xobjects:
            continue
        xobj = xobjects[operands[0]].get_object()
        if xobj["/Subtype"] == "/Image":
            count += 1
        elif xobj["/Subtype"] == "/Form":
            count += _drawn(xobj.get("/Resources"), xobj)
    return count


def _images(pdf: bytes) -> int:
    """Images painted in the document. Not page.images: WeasyPrint shares one resource dictionary
    between pages, so that counts every image once per page (a cover page would "have" the seal)."""
    return sum(_drawn(p["/Resources"], p.get_contents()) for p in _reader(pdf).pages)


def _timed(name: str, fn):
    t0 = time.perf_counter()
    out = fn()
    TIMINGS[name] = round(time.perf_counter() - t0, 2)
    return out


def _finalize(small, *, opinions: dict[str, str] | None = None, seal: bool = True, approve_extra=()):
    chair, admin = small.user("chair"), small.user("admin")
    for category in ("activity", "unit"):
        decisions.prefill_from_cut_line(small.round_id, category, actor=chair)
    for key in approve_extra:
        decisions.decide(small.noms[key], "approve", reason="会议讨论同意", actor=chair)
    for key, text in (opinions or {}).items():
        decisions.set_opinion(small.noms[key], text, actor=chair)
    if seal:
        decisions.save_seal(small.round_id, make_seal_png(size=300), actor=admin)
    decisions.publicize(small.round_id, actor=chair)
    decisions.finalize(small.round_id, actor=chair)


OPINIONS = {"A1": "经专家评审、会议审定，同意推荐。A1的专属审定意见。",
            "A2": "经专家评审、会议审定，同意推荐。A2的专属审定意见。"}


@pytest.fixture
def final_small(app):
    with app.app_context():
        small = build_small_round()
        _finalize(small, opinions=OPINIONS, approve_extra=("A4", "A5"))
        yield small


# ----------------------------------------------------------------------------- 推荐表


def test_activity_form_has_every_field_and_its_own_opinion(final_small):
    nom = final_small.nom("A1")
    doc = _timed("form_single", lambda: documents.nomination_form_pdf(nom.id))
    assert doc.mimetype == "application/pdf" and doc.filename.endswith(".pdf")
    pages = _pages(doc.content)
    assert 1 <= len(pages) <= 3
    text = _flat("\n".join(pages))
    for expected in (
        "附件2", "2024年全国科普日优秀活动推荐表", "活动名称", nom.title, "主办单位", nom.host, "联系人", nom.contact_name,
        "职务", nom.contact_title, "联系电话", nom.contact_phone, "通讯地址", nom.address, "活动场数",
        str(nom.event_count), "服务人数", str(nom.people_served), "活动情况简介", nom.summary, "推荐意见",
        nom.recommendation, "长沙市科协（盖章）", "2024年9月21日", "湖南省科协", "审定意见", OPINIONS["A1"],
        "湖南省科学技术协会", "2024年11月20日",
    ):
        assert _flat(expected) in text, expected
    assert OPINIONS["A2"] not in text and "A2的专属" not in text
    assert _images(doc.content) == 1  # the seal, over the date
    for font in _fonts(doc.content):
        assert SUBSET_FONT_RE.match(font), font


def test_unit_form_is_attachment_1(final_small):
    nom = final_small.nom("U1")
    text = _flat("\n".join(_pages(documents.nomination_form_pdf(nom.id).content)))
    for expected in ("附件1", "2024年全国科普日优秀组织单位推荐表", "单位名称", nom.title, "组织开展的活动场数",
                     "组织情况简介", nom.summary, nom.contact_phone, "同意推荐为2024年全国科普日优秀组织单位"):
        assert _flat(expected) in text, expected
    assert "主办单位" not in text


def test_declined_form_shows_the_decline_opinion_without_seal(final_small):
    nom = final_small.nom("A3")
    doc = documents.nomination_form_pdf(nom.id)
    text = _flat("\n".join(_pages(doc.content)))
    assert "经审定，不予推荐。" in text and "同意推荐为" not in text
    assert _images(doc.content) == 0


def test_batch_forms_put_each_opinion_on_its_own_form(final_small):
    doc = _timed("forms_batch_4", lambda: documents.batch_forms_pdf(final_small.round_id, "activity"))
    pages = _pages(doc.content)
    approved = ["A1", "A2", "A4", "A5"]
    assert len(approved) <= len(pages) <= 3 * len(approved)
    assert _images(doc.content) == len(approved)
    # Split the document into forms at each title, then check each form's own texts.
    starts = [i for i, p in enumerate(pages) if "附件2" in p]
    assert len(starts) == len(approved)
    forms = ["".join(_flat(p) for p in pages[s:e]) for s, e in zip(starts, [*starts[1:], len(pages)], strict=True)]
    titles = {k: t for k, t, *_ in ACTIVITIES}
    for key, form in zip(approved, forms, strict=True):
        nom = final_small.nom(key)
        assert _flat(titles[key]) in form
        assert _flat(nom.summary) in form and nom.contact_phone in form
        expected_opinion = OPINIONS.get(key, "经专家评审、会议审定，同意推荐为2024年全国科普日优秀活动。")
        assert _flat(expected_opinion) in form, key
        others = [o for k, o in OPINIONS.items() if k != key]
        assert not any(_flat(o) in form for o in others), key
    assert "A3" not in "".join(forms) and _flat(titles["A3"]) not in "".join(forms)


# ----------------------------------------------------------------------------- public list


@BOTH
def test_public_list_groups_in_official_order_without_personal_data(final_small, backend):
    doc = _timed("list_small", lambda: documents.public_list_pdf(final_small.round_id, "activity"))
    assert doc.filename == "2024年全国科普日优秀活动名单.pdf"
    text = _flat("\n".join(_pages(doc.content)))
    assert "2024年全国科普日优秀活动名单" in text and "（排名不分先后）" in text
    order = ["一、市州", "长沙市科协", _flat(ACTIVITIES[0][1]), "株洲市科协", _flat(ACTIVITIES[1][1]),
             "二、省直单位", "湖南省教育厅", _flat(ACTIVITIES[3][1]), "三、省级学会", "湖南省气象学会",
             _flat(ACTIVITIES[4][1])]
    positions = [text.find(s) for s in order]
    assert -1 not in positions, dict(zip(order, positions, strict=True))
    assert positions == sorted(positions)
    assert _flat(ACTIVITIES[2][1]) not in text  # declined
    for key in ("A1", "A2", "A4", "A5"):
        nom = final_small.nom(key)
        assert nom.contact_name not in text and nom.contact_phone not in text and nom.address not in text
        assert "联系人" not in text and "电话" not in text
    assert _images(doc.content) == 1  # the seal at the end of a final list


def test_list_ordering_note_follows_the_round_setting(app):
    with app.app_context():
        small = build_small_round()
        rnd = small.round()
        rnd.list_unordered = False
        db.session.commit()
        decisions.prefill_from_cut_line(small.round_id, "activity")
        text = _flat("\n".join(_pages(documents.public_list_pdf(small.round_id, "activity").content)))
        assert "排名不分先后" not in text
        assert "（讨论稿）" in text  # not final yet: marked, and no seal
        decisions.prefill_from_cut_line(small.round_id, "unit")
        decisions.publicize(small.round_id)
        doc = documents.public_list_pdf(small.round_id, "activity")
        assert "（公示稿）" in _flat("\n".join(_pages(doc.content)))
        # The file says so too: a 公示稿 downloaded during 公示 is never mistaken for the 定稿.
        assert doc.filename == "2024年全国科普日优秀活动名单（公示稿）.pdf"
        batch = documents.batch_forms_pdf(small.round_id, "activity")
        assert batch.filename == "2024年全国科普日优秀活动推荐表（审定通过，共2份）（公示稿）.pdf"
        assert "（公示稿）" in _pages(batch.content)[0]


# ----------------------------------------------------------------------------- internal report


def test_result_report_has_ranks_aggregates_method_and_signatures(final_small):
    doc = _timed("report_small", lambda: documents.result_report_pdf(final_small.round_id, "activity"))
    pages = _pages(doc.content)
    assert 1 <= len(pages) <= 3
    text = _flat("\n".join(pages))
    rnd = final_small.round()
    rows = ranking.compute(rnd.id, "activity")
    assert "2024年全国科普日优秀活动评审结果报告" in text
    assert "评分方法：去掉最高最低分后平均" in text and "评审专家：3人" in text and "推荐名额：2个" in text
    for row in rows:
        assert _flat(row.title) in text
        assert fmt_score(row.aggregate) in text
        for value in row.criterion_means.values():
            assert fmt_score(value) in text
    assert "评审委员会主任（签字）" in text and "日期" in text
    assert "活动内容" in text and "群众反映" in text


# ----------------------------------------------------------------------------- 专家评分表


@BOTH
def test_reviewer_sheet_shows_only_that_reviewers_scores_and_comments(final_small, backend):
    r2 = final_small.user("r2")
    doc = _timed("sheet_one", lambda: documents.reviewer_sheets_pdf(final_small.round_id, "activity", [r2.id]))
    text = _flat("\n".join(_pages(doc.content)))
    assert "2024年全国科普日优秀活动专家评分表" in text and _flat(r2.display_name) in text
    for key, title, _nominator, _base in ACTIVITIES:
        assert _flat(title) in text
        assert f"r2对{key}的评审意见" in text
        assert f"r1对{key}的评审意见" not in text and f"r3对{key}的评审意见" not in text
        assert fmt_score(final_small.totals[("r2", key)]) in text
    assert "评审专家（签字）" in text


def test_all_reviewers_sheets_start_each_on_a_new_page(final_small):
    doc = documents.reviewer_sheets_pdf(final_small.round_id, "unit")
    pages = _pages(doc.content)
    assert len(pages) == 3
    for page, who in zip(pages, ("r1", "r2", "r3"), strict=True):
        assert f"{who}对U1的评审意见" in _flat(page)


# ----------------------------------------------------------------------------- hostile input


@pytest.fixture
def recording_server():
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(make_seal_png(size=150))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_hostile_fields_stay_text_and_fetch_nothing(app, recording_server):
    port, requests = recording_server
    base = f"http://127.0.0.1:{port}"
    hostile = {
        "A1": {
            "title": f'<img src="{base}/title.png">活动',
            "summary": '<img src="file:///etc/passwd">简介' + f'<link rel="stylesheet" href="{base}/x.css">',
            "recommendation": f'<object data="{base}/obj"></object><style>@import url({base}/i.css);</style>推荐',
            "address": f"{base}/address.png",
            "host": '<iframe src="file:///etc/passwd"></iframe>',
        },
    }
    with app.app_context():
        small = build_small_round(nomination_fields=hostile)
        _finalize(small, opinions={"A1": f'<img src="{base}/opinion.png">同意'})
        nom = small.nom("A1")
        outputs = {
            "form": documents.nomination_form_pdf(nom.id).content,
            "batch": documents.batch_forms_pdf(small.round_id, "activity").content,
            "list": documents.public_list_pdf(small.round_id, "activity").content,
            "report": documents.result_report_pdf(small.round_id, "activity").content,
            "sheet": documents.reviewer_sheets_pdf(small.round_id, "activity").content,
        }
    assert requests == [], f"the renderer fetched {requests}"
    for name, pdf in outputs.items():
        assert b"root:x:0:0" not in pdf, name
        text = _flat("\n".join(_pages(pdf)))
        assert _flat(f'<img src="{base}/title.png">活动') in text, name  # autoescaped: the tag is text
    form_text = _flat("\n".join(_pages(outputs["form"])))
    assert _flat('<img src="file:///etc/passwd">简介') in form_text
    assert _flat(f'<img src="{base}/opinion.png">同意') in form_text
    assert _images(outputs["form"]) == 1  # only the seal


# ----------------------------------------------------------------------------- scale


def test_demo_scale_documents_render_with_sane_page_counts(demo_app):
    """The demo round (150 nominations, 7 reviewers) decided from the cut line: the full-size
    documents render, with page counts in proportion to their content."""
    from app.rounds import phases as rounds

    with demo_app.app_context():
        rnd = rounds.require_current_round()
        rounds.change_phase(rnd.id, "deliberating")
        for category in ("unit", "activity"):
            decisions.prefill_from_cut_line(rnd.id, category)
        approved = decisions.approved_count(rnd.id, "unit")
        assert approved == rnd.slots("unit")
        lst = _timed("list_demo_unit", lambda: documents.public_list_pdf(rnd.id, "unit"))
        forms = _timed("forms_demo_unit", lambda: documents.batch_forms_pdf(rnd.id, "unit"))
        report = _timed("report_demo_unit", lambda: documents.result_report_pdf(rnd.id, "unit"))
        n_list, n_forms, n_report = (len(_reader(d.content).pages) for d in (lst, forms, report))
    assert 1 <= n_list <= 5
    assert approved <= n_forms <= 3 * approved
    assert 2 <= n_report <= 12
    assert f"第 {n_forms} 页 共 {n_forms} 页" in _pages(forms.content)[-1]
    print("\nrender timings (s):", TIMINGS)
