"""The tus 1.0 server driven by tuspy (an independent client) against a real threaded server: chunked,
interrupted and resumed uploads end as the nomination's video byte for byte; the protocol's refusals."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from app.core import storage
from app.extensions import db
from app.models import AuditEvent, User
from tests.e2e.conftest import serving
from tests.tus_fixtures import (  # noqa: F401 — fixtures
    TUS,
    VIDEO_LIMIT,
    Browser,
    file_sha256,
    mp4,
    nomination,
    sha256,
    tus_app,
    tus_files,
    world,
)

CHUNK = 256 * 1024
BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@pytest.fixture
def server(tus_app, world):  # noqa: F811 — the fixtures imported above
    with serving(tus_app) as live:
        yield live


def _client(browser: Browser) -> tus_client.TusClient:
    return tus_client.TusClient(browser.base + "/portal/uploads", headers=browser.headers)


def _uploader(browser, data: bytes, nomination_id: int, **kwargs):
    import io

    return _client(browser).uploader(file_stream=io.BytesIO(data), chunk_size=CHUNK,
                                     metadata={"filename": "社区科普.mp4", "nomination_id": str(nomination_id)},
                                     **kwargs)


def _video_sha(app, nomination_id: int) -> str | None:
    with app.app_context():
        video = nomination(app, nomination_id).video
        return file_sha256(storage.path_of(video.stored_name)) if video else None


def _head(browser, url) -> requests.Response:
    return requests.head(url, headers={**browser.headers, **TUS})


def _wait_for(predicate, timeout: float = 10.0):
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_options_lists_version_extensions_and_limit(server):
    resp = requests.options(server.url + "/portal/uploads")
    assert resp.status_code == 204
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Max-Size"] == str(VIDEO_LIMIT)
    assert set(resp.headers["Tus-Extension"].split(",")) >= {"creation", "termination", "checksum", "expiration"}
    assert "sha1" in resp.headers["Tus-Checksum-Algorithm"].split(",")


@BOTH
def test_a_chunked_upload_becomes_the_nominations_video_with_the_same_bytes(server, tus_app, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    data = mp4(1024 * 1024 + 12345)
    uploader = _uploader(browser, data, world.nom_a)
    chunks = 0
    uploader.set_url(uploader.create_url())
    while uploader.offset < len(data):
        uploader.upload_chunk()
        chunks += 1
    assert chunks == -(-len(data) // CHUNK) > 1
    assert _video_sha(tus_app, world.nom_a) == sha256(data)
    with tus_app.app_context():
        video = nomination(tus_app, world.nom_a).video
        assert (video.original_name, video.mime, video.size_bytes) == ("社区科普.mp4", "video/mp4", len(data))
        actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "attachment")).all()
        assert actions == ["attachment.add"]
    assert tus_files(tus_app) == []  # the finished upload's .part and .json are gone
    assert _head(browser, uploader.url).status_code == 404


def test_an_upload_stopped_halfway_resumes_from_the_servers_offset(server, tus_app, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    data = mp4(2 * 1024 * 1024)
    first = _uploader(browser, data, world.nom_a)
    first.upload(stop_at=3 * CHUNK)  # the office connection goes after three chunks
    url = first.url
    head = _head(browser, url)
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (str(3 * CHUNK), str(len(data)))
    assert head.headers["Cache-Control"] == "no-store"
    expires = parsedate_to_datetime(head.headers["Upload-Expires"])  # the expiration extension: 24 h idle
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    assert _video_sha(tus_app, world.nom_a) is None

    # Later, another client (a new page load) resumes the same upload URL: HEAD → offset, then PATCHes.
    browser2 = Browser(server.url, "unit_a")
    import io

    second = tus_client.TusClient(server.url + "/portal/uploads", headers=browser2.headers).uploader(
        file_stream=io.BytesIO(data), url=url, chunk_size=CHUNK)
    assert second.offset == 3 * CHUNK
    second.upload()
    assert _video_sha(tus_app, world.nom_a) == sha256(data)


def test_a_connection_dropped_mid_chunk_keeps_what_arrived_and_resumes(server, tus_app, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    data = mp4(1024 * 1024)
    url = browser.url(browser.create(len(data), world.nom_a).headers["Location"])
    sent = 300_000
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    head = (f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {len(data)}\r\nCookie: {browser.headers['Cookie']}\r\n"
            f"X-CSRFToken: {browser.token}\r\n\r\n").encode()
    sock.sendall(head + data[:sent])
    sock.close()  # the connection drops with most of the chunk unsent

    _wait_for(lambda: _head(browser, url).headers.get("Upload-Offset") == str(sent))
    import io

    resumed = _client(browser).uploader(file_stream=io.BytesIO(data), url=url, chunk_size=CHUNK, retries=3,
                                        retry_delay=0)
    assert resumed.offset == sent
    resumed.upload()
    assert _video_sha(tus_app, world.nom_a) == sha256(data)


def test_checksummed_chunks_are_verified(server, tus_app, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    data = mp4(600_000)
    _uploader(browser, data, world.nom_a, upload_checksum=True).upload()
    assert _video_sha(tus_app, world.nom_a) == sha256(data)

    url = browser.url(browser.create(len(data), world.nom_a).headers["Location"])
    wrong = base64.b64encode(hashlib.sha1(b"something else", usedforsecurity=False).digest()).decode()
    resp = requests.patch(url, data=data[:CHUNK], headers={
        **browser.headers, **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
        "Upload-Checksum": f"sha1 {wrong}"})
    assert resp.status_code == 460
    assert _head(browser, url).headers["Upload-Offset"] == "0"  # the damaged chunk was not kept


def test_a_wrong_offset_is_409_and_nothing_is_written(server, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    data = mp4(400_000)
    url = browser.url(browser.create(len(data), world.nom_a).headers["Location"])
    resp = requests.patch(url, data=data[100:CHUNK], headers={
        **browser.headers, **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "100"})
    assert resp.status_code == 409
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert "已收到 0 字节" in resp.text
    assert _head(browser, url).headers["Upload-Offset"] == "0"


def test_two_patches_at_the_same_offset_one_wins(server, tus_app, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    data = mp4(400_000)
    url = browser.url(browser.create(len(data), world.nom_a).headers["Location"])
    headers = {**browser.headers, **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    release = threading.Event()
    results: dict[str, int] = {}

    def slow_body():
        yield data[:1000]
        release.wait(10)  # hold the upload while the second PATCH arrives
        yield data[1000:CHUNK]

    def first():
        results["slow"] = requests.patch(url, data=slow_body(), headers=headers).status_code

    thread = threading.Thread(target=first)
    thread.start()
    try:
        results["fast"] = requests.patch(url, data=data[:CHUNK], headers=headers).status_code
    finally:
        release.set()
        thread.join(15)
    assert sorted(results.values()) == [204, 409]
    assert _head(browser, url).headers["Upload-Offset"] == str(CHUNK)


def test_over_the_video_limit_is_413(server, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    resp = browser.create(VIDEO_LIMIT + 1, world.nom_a)
    assert resp.status_code == 413
    assert "超过 3 MB" in resp.text
    assert "Location" not in resp.headers

    # A body longer than the length declared at creation is refused as well, and not kept.
    url = browser.url(browser.create(1000, world.nom_a).headers["Location"])
    resp = requests.patch(url, data=b"\0" * 1001, headers={
        **browser.headers, **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert resp.status_code == 413
    assert _head(browser, url).headers["Upload-Offset"] == "0"


def test_another_users_upload_url_is_404(server, world):  # noqa: F811
    owner = Browser(server.url, "unit_a")
    data = mp4(400_000)
    url = owner.url(owner.create(len(data), world.nom_a).headers["Location"])
    for username in ("unit_a2", "unit_b"):  # the same unit's second account too: uploads belong to a user
        other = Browser(server.url, username)
        assert _head(other, url).status_code == 404
        resp = requests.patch(url, data=data[:CHUNK], headers={
            **other.headers, **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
        assert resp.status_code == 404
        assert requests.delete(url, headers={**other.headers, **TUS}).status_code == 404
    assert _head(owner, url).headers["Upload-Offset"] == "0"
    # Another unit's nomination cannot be the target of an upload either.
    assert Browser(server.url, "unit_b").create(len(data), world.nom_a).status_code == 404
    assert owner.create(len(data), world.nom_b).status_code == 404


def test_the_admin_uploads_a_submitted_nominations_video_resumably_but_never_into_a_units_draft(
        server, tus_app, world):  # noqa: F811
    """The intake page's video part uses the same endpoints: the admin may give a (non-draft) nomination
    of the current round its video, stopping and resuming; a unit's draft is the unit's own (404), and
    the admin's upload is not the unit's to resume (404)."""
    admin = Browser(server.url, "admin")
    assert admin.create(1000, world.nom_a).status_code == 404  # a unit's draft
    data = mp4(1024 * 1024)
    first = _uploader(admin, data, world.submitted_a)
    first.upload(stop_at=2 * CHUNK)
    assert _head(Browser(server.url, "unit_a"), first.url).status_code == 404
    import io

    again = _client(Browser(server.url, "admin")).uploader(file_stream=io.BytesIO(data), url=first.url,
                                                          chunk_size=CHUNK)
    assert again.offset == 2 * CHUNK
    again.upload()
    assert _video_sha(tus_app, world.submitted_a) == sha256(data)
    with tus_app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "attachment.add")).one()
        assert event.actor_id == db.session.scalar(select(User.id).where(User.username == "admin"))
    # the intake page offers the resumable part (and reloads just its media block afterwards)
    page = admin.http.get(f"{server.url}/intake/{world.submitted_a}").text
    assert 'data-tus-endpoint="/portal/uploads"' in page and "video-upload.js" in page
    assert f'data-part-url="/intake/{world.submitted_a}/media"' in page
    block = admin.http.get(f"{server.url}/intake/{world.submitted_a}/media", headers={"HX-Request": "true"})
    assert block.status_code == 200 and block.text.lstrip().startswith('<div id="media-block">')
    assert "社区科普.mp4" in block.text


def test_anonymous_cannot_use_the_upload_endpoints(server, world):  # noqa: F811
    resp = requests.post(server.url + "/portal/uploads", headers={**TUS, "Upload-Length": "1000"},
                         allow_redirects=False)
    assert resp.status_code == 400  # no session, no CSRF token
    assert resp.headers["Tus-Resumable"] == "1.0.0"


def test_a_submitted_nomination_takes_no_upload(server, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    resp = browser.create(1000, world.submitted_a)
    assert resp.status_code == 409
    assert "已提交" in resp.text


def test_termination_deletes_the_upload_and_its_bytes(server, tus_app, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    data = mp4(800_000)
    uploader = _uploader(browser, data, world.nom_a)
    uploader.upload(stop_at=CHUNK)
    assert len(tus_files(tus_app)) == 2
    resp = requests.delete(uploader.url, headers={**browser.headers, **TUS})
    assert resp.status_code == 204
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert tus_files(tus_app) == []
    assert _head(browser, uploader.url).status_code == 404
    resp = requests.patch(uploader.url, data=data[CHUNK:2 * CHUNK], headers={
        **browser.headers, **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(CHUNK)})
    assert resp.status_code == 404
    assert _video_sha(tus_app, world.nom_a) is None


@BOTH
def test_a_file_that_is_not_a_video_is_refused_and_the_old_video_stays(server, tus_app, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    old = mp4(300_000, seed=b"old")
    _uploader(browser, old, world.nom_a).upload()
    assert _video_sha(tus_app, world.nom_a) == sha256(old)

    fake = b"%PDF-1.7\n" + b"\0" * 600_000
    with pytest.raises(TusUploadFailed) as refused:
        _uploader(browser, fake, world.nom_a).upload()
    assert refused.value.status_code == 422
    assert "视频只接受 MP4 或 WebM 格式" in refused.value.response_content.decode()
    assert _video_sha(tus_app, world.nom_a) == sha256(old)

    cut = mp4(300_000, seed=b"cut")[:-1000]  # an MP4 whose last box runs past the end
    with pytest.raises(TusUploadFailed) as refused:
        _uploader(browser, cut, world.nom_a).upload()
    assert refused.value.status_code == 422
    assert "不完整" in refused.value.response_content.decode()
    assert _video_sha(tus_app, world.nom_a) == sha256(old)
    assert tus_files(tus_app) == []

    new = mp4(500_000, seed=b"new")
    _uploader(browser, new, world.nom_a).upload()
    assert _video_sha(tus_app, world.nom_a) == sha256(new)  # a valid one replaces the old video
    with tus_app.app_context():
        db.session.remove()
        videos = [a for a in nomination(tus_app, world.nom_a).attachments if a.kind == "video"]
        assert len(videos) == 1
        assert sum(1 for _ in storage_files(tus_app)) == 1  # the old video's file went with its row


def storage_files(app):
    import os

    folder = app.config["UPLOAD_FOLDER"]
    return [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))]


def test_a_wrong_tus_resumable_is_412(server, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    url = browser.url(browser.create(1000, world.nom_a).headers["Location"])
    for version in ("0.2.2", None):
        headers = {**browser.headers, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        if version:
            headers["Tus-Resumable"] = version
        resp = requests.patch(url, data=b"\0" * 10, headers=headers)
        assert resp.status_code == 412
        assert resp.headers["Tus-Version"] == "1.0.0"
        assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert browser.create(1000, world.nom_a, **{"Tus-Resumable": "2.0.0"}).status_code == 412


def test_bad_headers_are_refused_in_chinese(server, world):  # noqa: F811
    browser = Browser(server.url, "unit_a")
    url = browser.url(browser.create(1000, world.nom_a).headers["Location"])
    base = {**browser.headers, **TUS, "Upload-Offset": "0"}
    assert requests.patch(url, data=b"x", headers={**base, "Content-Type": "text/plain"}).status_code == 415
    for offset in ("-1", "²", "1e3", ""):
        resp = requests.patch(url, data=b"x", headers={
            **base, "Content-Type": "application/offset+octet-stream", "Upload-Offset": offset})
        assert resp.status_code == 400, offset
        assert "Upload-Offset" in resp.text
    resp = requests.post(server.url + "/portal/uploads", headers={**browser.headers, **TUS, "Upload-Length": "10",
                                                                   "Upload-Metadata": "filename !!!"})
    assert resp.status_code == 400
    resp = requests.post(server.url + "/portal/uploads", headers={**browser.headers, **TUS, "Upload-Length": "10"})
    assert resp.status_code == 400  # no nomination named
    missing_csrf = {"Cookie": browser.headers["Cookie"], **TUS, "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": "0"}
    resp = requests.patch(url, data=b"x", headers=missing_csrf)
    assert resp.status_code == 400
    assert "CSRF" in resp.text
    assert _head(browser, url).headers["Upload-Offset"] == "0"


def test_tuspy_reports_a_refused_creation(server, world):  # noqa: F811
    browser = Browser(server.url, "unit_b")
    with pytest.raises(TusCommunicationError) as refused:
        _uploader(browser, mp4(1000), world.nom_a).upload()
    assert refused.value.status_code == 404
