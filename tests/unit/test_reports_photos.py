"""The 活动照片 page after each 推荐表: the nomination's own photos (full images in a single form,
thumbnails in the batch), captions, the video's file name, and no page for a nomination without any."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ContentStream

from app.core import storage
from app.deliberation import operations as decisions
from app.extensions import db
from app.models import Attachment
from app.reports import documents
from tests.chair_fixtures import build_small_round

COLOURS = [(200, 30, 30), (30, 160, 40), (30, 60, 200)]


def _jpeg(colour, size=(1600, 1200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _add_photos(nomination_id: int, count: int = 3) -> list[Attachment]:
    photos = []
    for i, colour in enumerate(COLOURS[:count]):
        data = _jpeg(colour)
        stored = storage.save_bytes(data, "jpg")
        thumb = storage.save_thumbnail(Image.open(io.BytesIO(data)))
        photos.append(Attachment(nomination_id=nomination_id, kind="photo", stored_name=stored, thumb_name=thumb,
                                 original_name=f"现场{i + 1}.jpg", mime="image/jpeg", size_bytes=len(data),
                                 width=1600, height=1200, position=i))
    db.session.add_all(photos)
    db.session.commit()
    return photos


def _add_video(nomination_id: int, name: str = "科普日活动视频.mp4") -> None:
    stored = storage.save_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "mp4")
    db.session.add(Attachment(nomination_id=nomination_id, kind="video", stored_name=stored, original_name=name,
                              mime="video/mp4", size_bytes=80, position=9))
    db.session.commit()


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _drawn_images(resources, content) -> list[int]:
    """Widths of the image XObjects a content stream actually paints (`Do`), following form XObjects:
    WeasyPrint shares one resource dictionary between pages, so page.images over-counts."""
    xobjects = resources.get("/XObject", {}) if resources else {}
    widths = []
    for operands, operator in ContentStream(content, None).operations:
        if operator != b"Do" or operands[0] not in xobjects:
            continue
        xobj = xobjects[operands[0]].get_object()
        if xobj["/Subtype"] == "/Image":
            widths.append(int(xobj["/Width"]))
        elif xobj["/Subtype"] == "/Form":
            widths += _drawn_images(xobj.get("/Resources"), xobj)
    return widths


def _photo_pages(pdf: bytes):
    """(flattened text, [widths of the images painted]) of every page headed 活动照片."""
    out = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        text = _flat(page.extract_text() or "")
        if text.startswith("活动照片"):
            out.append((text, _drawn_images(page["/Resources"], page.get_contents())))
    return out


def _image_count(pdf: bytes) -> int:
    return sum(len(_drawn_images(p["/Resources"], p.get_contents())) for p in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def small(app):
    with app.app_context():
        small = build_small_round()
        decisions.prefill_from_cut_line(small.round_id, "activity")  # approves A1 and A2
        yield small


def test_single_form_embeds_full_photos_with_captions_and_video_name(small):
    _add_photos(small.noms["A1"])
    _add_video(small.noms["A1"])
    doc = documents.nomination_form_pdf(small.noms["A1"])
    pages = _photo_pages(doc.content)
    assert len(pages) == 1
    text, widths = pages[0]
    assert len(widths) >= 3
    # Full images (capped by the renderer at 300 dpi), not the 320-pixel thumbnails.
    assert all(w > 360 for w in widths), widths
    for caption in ("照片1", "照片2", "照片3", _flat(small.nom("A1").title), "活动视频：科普日活动视频.mp4（另附）"):
        assert caption in text, caption
    assert "照片4" not in text and "未提交照片" not in text
    # The form itself still comes first, on its own page.
    first = PdfReader(io.BytesIO(doc.content)).pages[0]
    assert _flat(first.extract_text()).startswith("附件2")
    assert _drawn_images(first["/Resources"], first.get_contents()) == []


def test_batch_uses_thumbnails_and_skips_forms_without_photos(small):
    _add_photos(small.noms["A1"])
    doc = documents.batch_forms_pdf(small.round_id, "activity")
    pages = _photo_pages(doc.content)
    assert len(pages) == 1  # A2 has neither photos nor video: no photo page
    text, widths = pages[0]
    assert len(widths) == 3 and all(w <= 360 for w in widths), widths
    assert _flat(small.nom("A1").title) in text and "活动视频：未提交" in text
    assert _image_count(doc.content) == 3  # not final: no seal, only the photos
    full = documents.nomination_form_pdf(small.noms["A1"])
    assert len(doc.content) < len(full.content) + 200_000


def test_nomination_without_photos_renders_without_photo_page(small):
    doc = documents.nomination_form_pdf(small.noms["A2"])
    assert _photo_pages(doc.content) == [] and _image_count(doc.content) == 0
    _add_video(small.noms["A2"], "only-video.webm")
    text, widths = _photo_pages(documents.nomination_form_pdf(small.noms["A2"]).content)[0]
    assert widths == [] and "未提交照片" in text and "活动视频：only-video.webm（另附）" in text


def test_missing_photo_file_is_left_out(small):
    photos = _add_photos(small.noms["A1"])
    storage.remove(photos[1].stored_name)
    text, widths = _photo_pages(documents.nomination_form_pdf(small.noms["A1"]).content)[0]
    assert len(widths) == 2 and "照片2" in text and "照片3" not in text
