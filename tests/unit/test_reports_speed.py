"""What makes the 推荐表 fast must not change them (docs/benchmarks.md §4, §7.3).

* The 推荐表 templates are written as XML so app/reports/pdf.py can parse them with expat instead of
  WeasyPrint's pure-Python HTML parser: every such document must take that path and come out byte for byte
  as the HTML parser would make it — a single form (with the seal, photos, a unit's form, the unit's blank
  copy), the one-piece batch with its linked 目录, a batch's cover part and a run of forms. Anything else
  (plain-HTML templates, a tree the HTML parser would build differently) keeps the HTML parser.
* The seal is scaled once per process the way WeasyPrint scales it in every document: same PDF."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.core import storage
from app.deliberation import operations as decisions
from app.demo.final import make_seal_png
from app.extensions import db
from app.models import Attachment, Round
from app.reports import documents, pdf
from tests.chair_fixtures import build_small_round


@pytest.fixture
def final_round(app):
    with app.app_context():
        small = build_small_round()
        for category in ("activity", "unit"):
            decisions.prefill_from_cut_line(small.round_id, category)
        decisions.save_seal(small.round_id, make_seal_png())  # 600 px: more than 36 mm needs at 300 dpi
        nom = small.nom("A1")
        for i in range(3):
            buf = io.BytesIO()
            Image.new("RGB", (400, 300), (60 * i, 120, 200)).save(buf, "JPEG")
            stored = storage.save_bytes(buf.getvalue(), "jpg")
            db.session.add(Attachment(nomination_id=nom.id, kind="photo", stored_name=stored,
                                      thumb_name=storage.save_thumbnail(Image.open(io.BytesIO(buf.getvalue()))),
                                      original_name=f"现场{i + 1}.jpg", mime="image/jpeg",
                                      size_bytes=len(buf.getvalue()), width=400, height=300, position=i))
        db.session.commit()
        decisions.publicize(small.round_id)
        decisions.finalize(small.round_id)
        yield small


def _sources(small) -> dict[str, documents.Source]:
    noms = documents.queries.approved_nominations(small.round_id, "activity")
    numbers = {n.id: 3 + i for i, n in enumerate(noms)}
    return {
        "form with seal and photos": documents.nomination_form_source(small.nom("A1").id),
        "unit form": documents.nomination_form_source(small.nom("U1").id),
        "blank copy": documents.nomination_form_source(small.nom("A2").id, blank_opinion=True),
        "whole batch": documents.batch_forms_source(small.round_id, "activity"),
        "cover part": documents.batch_forms_part_source(small.round_id, "activity", ids=[], toc_numbers=numbers,
                                                        page_total=9),
        "forms part": documents.batch_forms_part_source(small.round_id, "activity", ids=[n.id for n in noms],
                                                        cover=False, page_first=3, page_total=9),
    }


def test_form_documents_take_the_xml_parser_and_render_the_same(final_round, monkeypatch):
    for name, source in _sources(final_round).items():  # the fixture's app context is still open
        assert source.xhtml and pdf._xhtml_tree(source.html) is not None, name
        fast = source.render().content
        with monkeypatch.context() as m:
            m.setattr(pdf, "_xhtml_tree", lambda html: None)
            slow = source.render().content
        assert fast == slow, name


@pytest.mark.parametrize("markup", [
    "<p>plain <br> HTML</p>",  # a void element left open: not XML
    "<table><tr><td>行</td></tr></table>",  # the HTML parser adds a <tbody>
    "<table><col/><tbody><tr><td>行</td></tr></tbody></table>",  # … a <colgroup>
    "<p>段落<div>块</div></p>",  # … closes the paragraph before the block
    "<p>&nbsp;</p>",  # an HTML entity
])
def test_markup_the_html_parser_reads_otherwise_keeps_the_html_parser(markup):
    html = f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"/></head><body>{markup}</body></html>'
    assert pdf._xhtml_tree(html) is None
    assert pdf._xhtml_tree(html.replace(markup, "<p>段落</p>")) is not None
    assert pdf.render_pdf(html, xhtml=True)[:5] == b"%PDF-"  # rendered all the same, by the HTML parser


def test_the_seal_scaled_once_makes_the_same_pdf(final_round, monkeypatch):
    source = documents.nomination_form_source(final_round.nom("A1").id)
    raw = decisions.seal_bytes(db.session.get(Round, final_round.round_id))
    prepared = source.extra_files[documents.SEAL_NAME]
    assert prepared != raw and Image.open(io.BytesIO(prepared)).size == (425, 425)  # 36 mm at 300 dpi
    assert documents._seal_at(raw, documents.SEAL_FORM_MM) is prepared  # kept for the next document
    as_uploaded = documents.Source(source.html, {**source.extra_files, documents.SEAL_NAME: raw}, source.filename,
                                   xhtml=True)
    assert source.render().content == as_uploaded.render().content
    assert documents._seal_at(b"not an image", 36) == b"not an image"


def test_a_consumer_loads_the_pdf_fonts_before_its_first_task(app, monkeypatch):
    """`flask jobs worker` calls each task module's on_worker_start: the reports' one renders once, so a
    renderer with its fonts loaded waits in the pool, and WeasyPrint's per-page progress stays out of
    the consumer's log."""
    import logging

    from app.reports import tasks

    progress = logging.getLogger("weasyprint.progress")
    monkeypatch.setattr(pdf, "_idle", [])
    monkeypatch.setattr(progress, "level", progress.level)  # put back afterwards
    tasks.on_worker_start(app)
    assert len(pdf._idle) == 1 and pdf._idle[0]._css is not None
    assert progress.getEffectiveLevel() >= logging.WARNING


def test_the_xml_path_builds_the_document_weasyprint_would():
    """pdf._HTML._from_tree sets what weasyprint.HTML.__init__ sets; a WeasyPrint that keeps more turns
    the expat path off (and this test says so)."""
    assert pdf._builds_like_weasyprint()
