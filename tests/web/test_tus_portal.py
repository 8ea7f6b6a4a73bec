"""The portal's video part: the page and its htmx fragment, the no-JavaScript upload (one multipart POST,
303 back to the form) with the same video rules as the resumable path, and who may use them."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from app.core import storage
from app.extensions import db
from app.models import AuditEvent
from tests.conftest import csrf_token_from, signed_in
from tests.tus_fixtures import VIDEO_LIMIT, file_sha256, mp4, nomination, sha256, tus_app, tus_files, world  # noqa: F401


@pytest.fixture
def unit_a(tus_app, world):  # noqa: F811 — fixtures imported above
    return signed_in(tus_app, "unit_a")


def _post_video(client, nomination_id: int, data: bytes, name: str = "活动.mp4", token: str | None = None, **kw):
    if token is None:
        token = csrf_token_from(client.get(f"/portal/nominations/{nomination_id}/video").get_data(as_text=True))
    return client.post(f"/portal/nominations/{nomination_id}/video",
                       data={"csrf_token": token, "video": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", **kw)


def _events(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent))


def _video(app, nomination_id: int):
    with app.app_context():
        v = nomination(app, nomination_id).video
        return (v.original_name, file_sha256(storage.path_of(v.stored_name))) if v else None


def test_the_video_page_offers_the_resumable_control_and_a_plain_form(unit_a, world):  # noqa: F811
    resp = unit_a.get(f"/portal/nominations/{world.nom_a}/video")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'data-tus-endpoint="/portal/uploads"' in html
    assert f'data-nomination-id="{world.nom_a}"' in html
    assert f'data-max-bytes="{VIDEO_LIMIT}"' in html
    assert re.search(r'<script src="/static/vendor/tus-js-client/tus\.min\.js" integrity="sha384-[^"]+"', html)
    assert 'src="/static/js/video-upload.js"' in html
    assert f'action="/portal/nominations/{world.nom_a}/video"' in html and 'enctype="multipart/form-data"' in html
    assert "<script>" not in html and " onclick=" not in html

    fragment = unit_a.get(f"/portal/nominations/{world.nom_a}/video", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert body.lstrip().startswith("<div class=\"video-part\"") and "<html" not in body
    assert "<script" not in body  # the page that swaps it in has them already


def test_the_form_page_includes_the_video_part(unit_a, world):  # noqa: F811
    html = unit_a.get(f"/portal/nominations/{world.nom_a}").get_data(as_text=True)
    assert f'id="video-part-{world.nom_a}"' in html
    assert 'data-tus-endpoint="/portal/uploads"' in html


def test_without_javascript_a_video_is_uploaded_and_replaced(unit_a, tus_app, world):  # noqa: F811
    first = mp4(200_000, seed=b"first")
    resp = _post_video(unit_a, world.nom_a, first, "第一版.mp4")
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith(f"/portal/nominations/{world.nom_a}#video")
    assert _video(tus_app, world.nom_a) == ("第一版.mp4", sha256(first))

    second = mp4(300_000, seed=b"second")
    assert _post_video(unit_a, world.nom_a, second, "第二版.mp4").status_code == 303
    assert _video(tus_app, world.nom_a) == ("第二版.mp4", sha256(second))
    with tus_app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "attachment")
                                     .order_by(AuditEvent.id)).all()
    assert actions == ["attachment.add", "attachment.delete", "attachment.add"]
    assert tus_files(tus_app) == []  # the spooled copy is gone
    page = unit_a.get(f"/portal/nominations/{world.nom_a}/video").get_data(as_text=True)
    assert "第二版.mp4" in page and "0.3 MB" in page


@pytest.mark.parametrize(("data", "status", "message"), [
    (b"%PDF-1.7\n" + b"\0" * 5000, 422, "视频只接受 MP4 或 WebM 格式"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + b"\0" * 100, 422, "QuickTime"),
    (mp4(5000)[:-100], 422, "不完整"),
    (b"", 422, "空文件"),
    (mp4(VIDEO_LIMIT), 413, "超过 3 MB"),
])
def test_without_javascript_a_bad_file_is_refused_and_the_old_video_stays(unit_a, tus_app, world, data, status,  # noqa: F811
                                                                           message):
    old = mp4(100_000, seed=b"old")
    assert _post_video(unit_a, world.nom_a, old, "原视频.mp4").status_code == 303
    before = _events(tus_app)
    resp = _post_video(unit_a, world.nom_a, data, "坏文件.mp4")
    assert resp.status_code == status
    assert message in resp.get_data(as_text=True)
    assert _video(tus_app, world.nom_a) == ("原视频.mp4", sha256(old))
    assert _events(tus_app) == before
    assert tus_files(tus_app) == []


def test_without_javascript_the_refusals_of_the_portal(tus_app, world):  # noqa: F811
    a, b, admin = (signed_in(tus_app, name) for name in ("unit_a", "unit_b", "admin"))
    token = csrf_token_from(a.get(f"/portal/nominations/{world.nom_a}/video").get_data(as_text=True))
    data = mp4(1000)
    before = _events(tus_app)  # after the sign-ins, which are audited
    assert _post_video(a, world.nom_a, data, token="forged").status_code == 400
    assert _post_video(a, world.submitted_a, data, token=token).status_code == 409  # 已提交: not editable
    assert _post_video(a, world.nom_b, data, token=token).status_code == 404  # another unit's
    assert _post_video(b, world.nom_a, data, token=csrf_token_from(b.get("/account").get_data(as_text=True))
                       ).status_code == 404
    assert b.get(f"/portal/nominations/{world.nom_a}/video").status_code == 404
    assert admin.get(f"/portal/nominations/{world.nom_a}/video").status_code == 403
    anonymous = tus_app.test_client()
    assert anonymous.get(f"/portal/nominations/{world.nom_a}/video").status_code == 302
    assert _events(tus_app) == before
    assert _video(tus_app, world.nom_a) is None


def test_a_submitted_nomination_shows_its_video_without_controls(tus_app, world):  # noqa: F811
    a = signed_in(tus_app, "unit_a")
    html = a.get(f"/portal/nominations/{world.submitted_a}/video").get_data(as_text=True)
    assert "尚未上传视频" in html
    assert "data-tus-endpoint" not in html and 'name="video"' not in html


def test_the_delete_button_removes_the_video(unit_a, tus_app, world):  # noqa: F811
    assert _post_video(unit_a, world.nom_a, mp4(1000)).status_code == 303
    html = unit_a.get(f"/portal/nominations/{world.nom_a}/video").get_data(as_text=True)
    action = re.search(r'action="([^"]+/delete)"', html).group(1)
    resp = unit_a.post(action, data={"csrf_token": csrf_token_from(html)})
    assert resp.status_code == 303
    assert _video(tus_app, world.nom_a) is None
