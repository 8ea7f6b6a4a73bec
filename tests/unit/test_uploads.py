"""Photos and videos: judged by content, re-encoded clean, limits enforced, stored under uploads only."""

import io
import os

import pytest
from PIL import Image
from sqlalchemy import select

from app.core import storage
from app.core.errors import Conflict, UserError
from app.extensions import db
from app.intake import nominations, uploads
from app.models import Attachment, AuditEvent, Round
from tests import intake_fixtures
from tests.intake_fixtures import make_image, make_mp4, make_webm, nominator

intake_app = intake_fixtures.intake_app

PNG_END = b"IEND\xaeB`\x82"


def _nom():
    rnd = db.session.scalar(select(Round))
    return nominations.create(rnd.id, nominator("长沙市科协").id, "activity", {"title": "科普进社区"})


def _files(app):
    folder = app.config["UPLOAD_FOLDER"]
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_png_with_trailing_garbage_is_stored_clean(intake_app):
    with intake_app.app_context():
        nom = _nom()
        dirty = make_image("PNG", (120, 80)) + b"<?php system($_GET['c']); ?>" * 20
        [att] = uploads.add_photos(nom.id, [("活动.png", dirty)])
        with open(storage.path_of(att.stored_name), "rb") as fh:
            stored = fh.read()
        assert stored.endswith(PNG_END) and b"<?php" not in stored
        assert (att.mime, att.width, att.height) == ("image/png", 120, 80)
        assert att.stored_name.endswith(".png") and att.original_name == "活动.png"
        assert att.thumb_name and os.path.isfile(storage.path_of(att.thumb_name))
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "attachment.add")).object_id == att.id


def test_jpeg_loses_its_exif_and_is_turned_upright(intake_app):
    with intake_app.app_context():
        nom = _nom()
        image = Image.new("RGB", (80, 40), (10, 120, 200))
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90° on display
        exif[0x010F] = "SecretCam"  # Make
        buf = io.BytesIO()
        image.save(buf, "JPEG", exif=exif.tobytes())
        [att] = uploads.add_photos(nom.id, [("photo.jpg", buf.getvalue())])
        with open(storage.path_of(att.stored_name), "rb") as fh:
            stored = fh.read()
        assert b"SecretCam" not in stored and b"Exif" not in stored
        assert (att.width, att.height) == (40, 80)
        assert stored.endswith(b"\xff\xd9")


def test_a_text_file_renamed_jpg_is_refused(intake_app):
    with intake_app.app_context():
        nom = _nom()
        with pytest.raises(UserError, match="不是有效的 JPEG 或 PNG"):
            uploads.add_photos(nom.id, [("照片.jpg", "这不是图片，是一段文字。".encode() * 10)])
        assert _files(intake_app) == []
        assert db.session.scalar(select(Attachment)) is None


def test_a_gif_is_refused_even_named_png(intake_app):
    with intake_app.app_context():
        nom = _nom()
        with pytest.raises(UserError, match="不是 JPEG 或 PNG"):
            uploads.add_photos(nom.id, [("a.png", make_image("GIF"))])


def test_an_image_over_the_pixel_limit_is_refused(app_factory):
    app = app_factory({"UPLOAD_MAX_PHOTO_PIXELS": 100 * 100})
    with app.app_context():
        with pytest.raises(UserError, match="尺寸过大"):
            uploads.check_photo(make_image("PNG", (101, 100)), "big.png")
        assert uploads.check_photo(make_image("PNG", (100, 100)), "ok.png").width == 100


def test_an_image_over_the_byte_limit_is_refused(app_factory):
    app = app_factory({"UPLOAD_MAX_PHOTO_BYTES": 10_000})
    with app.app_context():
        noisy = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))
        buf = io.BytesIO()
        noisy.save(buf, "PNG")
        assert len(buf.getvalue()) > 10_000
        with pytest.raises(UserError, match="超过"):
            uploads.check_photo(buf.getvalue(), "noise.png")


def test_one_bad_photo_in_a_batch_stores_none(intake_app):
    with intake_app.app_context():
        nom = _nom()
        with pytest.raises(UserError):
            uploads.add_photos(nom.id, [("a.png", make_image()), ("b.jpg", b"not an image at all")])
        assert _files(intake_app) == [] and db.session.scalar(select(Attachment)) is None


def test_at_most_five_photos_from_the_admin_page(intake_app):
    with intake_app.app_context():
        nom = _nom()
        uploads.add_photos(nom.id, [(f"{i}.png", make_image()) for i in range(4)])
        with pytest.raises(Conflict, match="最多 5 张"):
            uploads.add_photos(nom.id, [("5.png", make_image()), ("6.png", make_image())])
        assert len(db.session.scalars(select(Attachment)).all()) == 4
        assert len(_files(intake_app)) == 8  # four photos and their thumbnails, nothing left over


def test_videos_by_signature_one_per_nomination(intake_app):
    with intake_app.app_context():
        nom = _nom()
        att = uploads.add_video(nom.id, io.BytesIO(make_mp4()), "活动视频.mov")
        assert (att.mime, att.stored_name[-4:]) == ("video/mp4", ".mp4")
        with pytest.raises(Conflict, match="只能有一个视频"):
            uploads.add_video(nom.id, io.BytesIO(make_webm()), "b.webm")
        uploads.delete_attachment(att.id)
        assert not os.path.exists(storage.path_of(att.stored_name))
        webm = uploads.add_video(nom.id, io.BytesIO(make_webm()), "b.webm")
        assert webm.mime == "video/webm"


@pytest.mark.parametrize("data,message", [(b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 64, "只接受 MP4 或 WebM"),
                                          (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "QuickTime"),
                                          (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska" + b"\x00" * 64, "MKV")])
def test_other_videos_are_refused_by_content(intake_app, data, message):
    with intake_app.app_context():
        nom = _nom()
        with pytest.raises(UserError, match=message):
            uploads.add_video(nom.id, io.BytesIO(data), "video.mp4")
        assert _files(intake_app) == []


def test_an_oversized_video_leaves_nothing_behind(app_factory):
    app = app_factory({"UPLOAD_MAX_VIDEO_BYTES": 10_000})
    with app.app_context():
        with pytest.raises(UserError, match="超过"):
            uploads.save_video_stream(io.BytesIO(make_mp4(20_000)), "big.mp4")
        assert _files(app) == []


def test_deleting_an_attachment_removes_its_files_and_is_audited(intake_app):
    with intake_app.app_context():
        nom = _nom()
        [att] = uploads.add_photos(nom.id, [("a.png", make_image())])
        uploads.delete_attachment(att.id)
        assert _files(intake_app) == []
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "attachment.delete"))
        assert event.before["original_name"] == "a.png"
