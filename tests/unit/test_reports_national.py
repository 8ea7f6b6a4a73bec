"""issue 15: documents in parallel and once. A forms batch split into parts (each its own queue task) and
merged with pypdf reads exactly like the one-piece render — page numbers "第 i 页 共 N 页" running on
across the parts, the 目录 pointing at the right pages; a document of a final round is served from
storage the second time and rendered afresh after the round is reopened; a document of a round in
progress is reused while its data version stands."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from app.core.database import write_transaction
from app.extensions import db
from app.models import Round
from app.reports import jobs, pdf
from app.rounds import phases as rounds
from tests.chair_fixtures import build_small_round


@pytest.fixture
def all_approved(app_factory):
    """Five approved activities, forms in parts of two (a cover part and three form parts)."""
    app = app_factory({"JOBS_FORMS_PER_PART": 2})
    from app.deliberation import operations as decisions

    with app.app_context():
        small = build_small_round()
        db.session.get(Round, small.round_id).slots_activity = 5
        db.session.commit()
        decisions.prefill_from_cut_line(small.round_id, "activity")
        app.small = small
    return app


def _texts(content: bytes) -> list[str]:
    return [p.extract_text() or "" for p in PdfReader(io.BytesIO(content)).pages]


def _renders(monkeypatch) -> list[int]:
    """Every WeasyPrint render of a document (with or without its page count)."""
    calls: list[int] = []
    for name in ("render_pdf", "render_pdf_counted"):
        real = getattr(pdf, name)

        def counting(*args, _real=real, **kwargs):
            calls.append(1)
            return _real(*args, **kwargs)

        monkeypatch.setattr(f"app.reports.documents.{name}", counting)
    return calls


def test_a_split_batch_merges_into_the_same_document(all_approved, monkeypatch):
    app, small = all_approved, all_approved.small
    calls = _renders(monkeypatch)
    with app.test_request_context():
        job = jobs.submit("forms", "pdf", small.round_id, "activity", label="推荐表")
        done = jobs.wait(job.id, timeout=120)
        assert done.status == "done", done.error
        assert done.parts == 4  # the cover + 目录, then three runs of at most two forms
        assert len(calls) >= 4
        with open(jobs.output_path(done), "rb") as fh:
            merged = fh.read()
        from app.reports import documents

        whole = documents.batch_forms_pdf(small.round_id, "activity").content
    merged_pages, whole_pages = _texts(merged), _texts(whole)
    assert len(merged_pages) == len(whole_pages)
    total = len(merged_pages)
    for i, text in enumerate(merged_pages[1:], start=2):  # the cover has no page number
        assert f"第 {i} 页 共 {total} 页" in text.replace("\n", " "), (i, text[-80:])
    # The 目录 names, for every form, the page its title heads — as in the one-piece render.
    toc = merged_pages[1]
    for n, title in enumerate(("“科学之夜”长沙青少年科普嘉年华", "全省中小学科学教育成果展")):
        page = next(i for i, t in enumerate(merged_pages[2:], start=3) if title in t)
        assert re.search(rf"{re.escape(title)}.*?\b{page}\b", toc.replace("\n", " ")), (n, title, page)
        assert page == next(i for i, t in enumerate(whole_pages[2:], start=3) if title in t)
    # The parts' files are gone once merged; the job's own file stays.
    with app.test_request_context():
        import os

        leftovers = [n for n in os.listdir(jobs.folder()) if n.startswith(done.id + ".p")]
        assert leftovers == []


def _finalize(round_id: int) -> None:
    for target in ("publicizing", "final"):
        rounds.change_phase(round_id, target)


def test_a_final_document_is_rendered_once_and_again_after_reopening(all_approved, monkeypatch):
    app, small = all_approved, all_approved.small
    calls = _renders(monkeypatch)
    with app.test_request_context():
        _finalize(small.round_id)
        first = jobs.wait(jobs.submit("list", "pdf", small.round_id, "activity", label="名单").id)
        assert first.status == "done" and first.worker != "storage"
        assert len(calls) == 1
        second = jobs.submit("list", "pdf", small.round_id, "activity", label="名单")
        assert second.id != first.id and second.status == "done" and second.worker == "storage"
        assert len(calls) == 1, "the second download must not render again"
        with open(jobs.output_path(first), "rb") as a, open(jobs.output_path(second), "rb") as b:
            assert a.read() == b.read()

        rounds.change_phase(small.round_id, "publicizing", reason="异议核实后重新审定")  # reopened
        reopened = jobs.wait(jobs.submit("list", "pdf", small.round_id, "activity", label="名单").id)
        assert reopened.worker != "storage" and len(calls) == 2
        rounds.change_phase(small.round_id, "final")
        refinal = jobs.wait(jobs.submit("list", "pdf", small.round_id, "activity", label="名单").id)
        assert refinal.worker != "storage" and len(calls) == 3
        again = jobs.submit("list", "pdf", small.round_id, "activity", label="名单")
        assert again.worker == "storage" and len(calls) == 3


def test_an_in_progress_document_is_reused_until_its_data_version_moves(all_approved, monkeypatch):
    app, small = all_approved, all_approved.small
    calls = _renders(monkeypatch)
    with app.test_request_context():
        first = jobs.wait(jobs.submit("report", "pdf", small.round_id, "activity", label="报告").id)
        assert first.status == "done" and len(calls) == 1
        assert jobs.submit("report", "pdf", small.round_id, "activity", label="报告").worker == "storage"
        with write_transaction():
            rounds.bump_ranking(small.round_id, "activity")  # what every score or decision write does
        fresh = jobs.wait(jobs.submit("report", "pdf", small.round_id, "activity", label="报告").id)
        assert fresh.worker != "storage" and len(calls) == 2


def test_downloading_a_stored_document_through_the_page(all_approved):
    from tests.conftest import login

    app, small = all_approved, all_approved.small
    with app.test_request_context():
        _finalize(small.round_id)
    client = app.test_client()
    login(client, "chair")
    page = client.get("/reports/")
    from tests.conftest import csrf_token_from

    token = csrf_token_from(page.get_data(as_text=True))
    bodies = []
    for _ in range(2):
        resp = client.post("/reports/jobs", data={"kind": "list", "format": "pdf", "category": "activity",
                                                  "csrf_token": token})
        assert resp.status_code == 303
        job_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        with app.test_request_context():
            assert jobs.wait(job_id).status == "done"
        got = client.get(f"/reports/jobs/{job_id}/download")
        assert got.status_code == 200 and got.data[:5] == b"%PDF-"
        bodies.append((job_id, got.data))
    with app.test_request_context():
        assert jobs.get(bodies[1][0]).worker == "storage"
    assert bodies[0][1] == bodies[1][1]


# ----------------------------------------------------------------------------- the 目录 predicted, or re-planned


def _entries(count: int, seed: int) -> list:
    """Entries like a batch's: titles of one to five lines, nominators of one to three."""
    import random
    from types import SimpleNamespace

    rng = random.Random(seed)
    words = ["科普", "“科学之夜”", "青少年", "科技馆", "湖南省", "Science Day 2024", "（长沙）", "、", "主题活动",
             "嘉年华", "学会", "0731"]

    def text(limit: int) -> str:
        out = ""
        while len(out) < limit:
            out += rng.choice(words)
        return out[:limit]

    return [SimpleNamespace(id=n, title=text(rng.choice([6, 12, 20, 30, 60, 100])),
                            nominator=SimpleNamespace(name=text(rng.choice([4, 8, 14, 30]))), photos=[], video=None)
            for n in range(1, count + 1)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_contents_length_is_predicted_exactly(all_approved, seed):
    """batch.predicted_toc_pages against WeasyPrint laying out the same 目录: same page count, for rows
    of one to five lines (the prediction lets part 0 render beside the forms instead of before them)."""
    from app.reports import batch, documents

    app, small = all_approved, all_approved.small
    entries = _entries(90, seed)
    with app.app_context():
        job = jobs.Job(id="0" * 16, kind="forms", fmt="pdf", round_id=small.round_id, category="activity",
                       label="推荐表", requested_by=None)
        predicted = batch.predicted_toc_pages(job, entries)
        numbers = {e.id: 1 + predicted + e.id for e in entries}
        html = documents.batch_toc_sample_html(small.round_id, "activity", entries, numbers, 2 + predicted + 90)
        with pdf.laid_out(html) as document:
            actual = len(document.pages) - 1  # the cover
    assert predicted == actual and actual > 3


@pytest.mark.parametrize("wrong_by", [1, 2])
def test_a_wrong_contents_prediction_replans_and_still_numbers_every_page(all_approved, monkeypatch, wrong_by):
    from app.reports import batch

    app, small = all_approved, all_approved.small
    real = batch.predicted_toc_pages
    monkeypatch.setattr(batch, "predicted_toc_pages", lambda job, noms: max(1, real(job, noms) + wrong_by))
    with app.test_request_context():
        job = jobs.submit("forms", "pdf", small.round_id, "activity", label="推荐表")
        done = jobs.wait(job.id, timeout=120)
        assert done.status == "done", done.error
        assert done.generation == 2 and done.parts == 4
        with open(jobs.output_path(done), "rb") as fh:
            merged = _texts(fh.read())
        import os

        assert [n for n in os.listdir(jobs.folder()) if n.startswith(done.id + ".g")] == []
    total = len(merged)
    for i, text in enumerate(merged[1:], start=2):
        assert f"第 {i} 页 共 {total} 页" in text.replace("\n", " "), (i, text[-80:])
    title = "全省中小学科学教育成果展"
    page = next(i for i, t in enumerate(merged[2:], start=3) if title in t)
    assert re.search(rf"{re.escape(title)}.*?\b{page}\b", merged[1].replace("\n", " "))
