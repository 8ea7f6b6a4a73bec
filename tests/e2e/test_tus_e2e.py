"""The browser side of the resumable video upload: vendored tus-js-client in Chromium against the real
server. A chunk lost to a dropped connection is retried; a page reloaded mid-upload resumes the same
upload (findPreviousUploads) instead of starting over; the stored video has the file's exact bytes."""

from __future__ import annotations

import pytest

from app.core import storage
from tests.e2e.conftest import serving, sign_in
from tests.tus_fixtures import build_world, file_sha256, mp4, nomination, sha256

MB = 1024 * 1024


@pytest.fixture
def portal_server(app_factory):
    app = app_factory({"UPLOAD_MAX_VIDEO_BYTES": 20 * MB})
    world = build_world(app)
    with serving(app) as server:
        yield server, world


def _video_sha(app, nomination_id):
    with app.app_context():
        video = nomination(app, nomination_id).video
        return file_sha256(storage.path_of(video.stored_name)) if video else None


def _dropping_the_second_patch(patches: list):
    """A route handler that records each PATCH's offset and resets the connection of the second one."""

    def handle(route):
        if route.request.method == "PATCH":
            patches.append(route.request.headers.get("upload-offset"))
            if len(patches) == 2:
                route.abort("connectionreset")
                return
        route.continue_()

    return handle


def _open_video_part(page, server, world):
    page.goto(f"{server.url}/portal/nominations/{world.nom_a}")
    page.wait_for_selector(".tus-upload:not([hidden])")
    assert page.is_hidden("[data-tus-fallback]")  # the plain form gives way to the resumable control


def test_a_dropped_chunk_is_retried_and_the_video_arrives_whole(portal_server, browser_context, tmp_path):
    server, world = portal_server
    data = mp4(11 * MB)  # three 5 MB chunks
    path = tmp_path / "社区科普活动.mp4"
    path.write_bytes(data)
    page = browser_context().new_page()
    patches: list = []
    drop_second_patch = _dropping_the_second_patch(patches)
    sign_in(page, server, "unit_a")
    page.route("**/portal/uploads/*", drop_second_patch)
    _open_video_part(page, server, world)
    page.set_input_files("[data-tus-file]", str(path))
    page.click("[data-tus-start]")
    page.wait_for_selector(f"#video-part-{world.nom_a} >> text=当前视频：社区科普活动.mp4", timeout=60_000)
    assert _video_sha(server.app, world.nom_a) == sha256(data)
    assert patches[1] == patches[2]  # the lost chunk was sent again from the same offset
    assert page.is_visible(".tus-upload")  # the part was reloaded by htmx and set up again


def test_a_reloaded_page_resumes_the_previous_upload(portal_server, browser_context, tmp_path):
    server, world = portal_server
    data = mp4(11 * MB)
    path = tmp_path / "活动视频.mp4"
    path.write_bytes(data)
    page = browser_context().new_page()
    seen = {"patch": 0, "post": 0, "offline": False, "cut": 0, "offsets": []}

    def cut_after_first_chunk(route):
        method = route.request.method
        if method == "POST":
            seen["post"] += 1
        if method == "PATCH":
            seen["patch"] += 1
            if not seen["offline"]:
                seen["offsets"].append(route.request.headers.get("upload-offset"))
            if seen["patch"] >= 2 and seen["offline"]:
                seen["cut"] += 1
                route.abort("internetdisconnected")
                return
        route.continue_()

    sign_in(page, server, "unit_a")
    page.route("**/portal/uploads**", cut_after_first_chunk)
    _open_video_part(page, server, world)
    seen["offline"] = True
    page.set_input_files("[data-tus-file]", str(path))
    page.click("[data-tus-start]")
    for _ in range(600):  # bounded: until the second chunk has been cut off (route handlers run in waits)
        if seen["cut"]:
            break
        page.wait_for_timeout(50)
    assert seen["cut"] and seen["post"] == 1

    # The office's connection is back; the nominator reloads the page and picks the same file again.
    seen["offline"] = False
    page.reload()
    page.wait_for_selector(".tus-upload:not([hidden])")
    page.set_input_files("[data-tus-file]", str(path))
    page.click("[data-tus-start]")
    page.wait_for_selector(f"#video-part-{world.nom_a} >> text=当前视频：活动视频.mp4", timeout=60_000)
    assert seen["post"] == 1  # no new upload was created: the previous one was resumed …
    assert seen["offsets"][0] == str(5 * MB)  # … from the first chunk's end, not from the start
    assert _video_sha(server.app, world.nom_a) == sha256(data)


def test_a_file_that_is_not_a_video_is_refused_in_chinese(portal_server, browser_context, tmp_path):
    server, world = portal_server
    path = tmp_path / "报告.mp4"
    path.write_bytes(b"%PDF-1.7\n" + b"\0" * 100_000)
    page = browser_context().new_page()
    sign_in(page, server, "unit_a")
    _open_video_part(page, server, world)
    page.set_input_files("[data-tus-file]", str(path))
    page.click("[data-tus-start]")
    page.wait_for_selector("[data-tus-status] >> text=视频只接受 MP4 或 WebM 格式", timeout=30_000)
    assert _video_sha(server.app, world.nom_a) is None


def test_the_video_part_fits_a_phone(portal_server, browser_context, tmp_path):
    server, world = portal_server
    path = tmp_path / "手机上传.mp4"
    data = mp4(300_000)
    path.write_bytes(data)
    page = browser_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True).new_page()
    sign_in(page, server, "unit_a")
    _open_video_part(page, server, world)
    page.set_input_files("[data-tus-file]", str(path))
    for selector in ("[data-tus-file]", "[data-tus-start]"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, selector
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.click("[data-tus-start]")
    page.wait_for_selector(f"#video-part-{world.nom_a} >> text=当前视频：手机上传.mp4", timeout=60_000)
    assert _video_sha(server.app, world.nom_a) == sha256(data)


def test_the_admin_replaces_a_video_on_the_intake_page_with_a_resumable_upload(portal_server, browser_context,
                                                                               tmp_path):
    """The intake page's video part is the portal's control: a dropped chunk is retried, the video is
    replaced once the new one arrived whole, and the media block is reloaded in place."""
    server, world = portal_server
    first, second = mp4(300_000, seed=b"first"), mp4(6 * MB, seed=b"second")  # two 5 MB chunks
    for name, data in (("旧视频.mp4", first), ("新视频.mp4", second)):
        (tmp_path / name).write_bytes(data)
    page = browser_context().new_page()
    patches: list = []
    drop_second_patch = _dropping_the_second_patch(patches)
    sign_in(page, server, "admin")
    page.goto(f"{server.url}/intake/{world.submitted_a}")
    page.wait_for_selector(".tus-upload:not([hidden])")
    assert page.is_hidden("[data-tus-fallback]")
    page.set_input_files("[data-tus-file]", str(tmp_path / "旧视频.mp4"))
    page.click("[data-tus-start]")
    page.wait_for_selector("#media-block >> text=旧视频.mp4", timeout=60_000)
    assert _video_sha(server.app, world.submitted_a) == sha256(first)
    page.route("**/portal/uploads/*", drop_second_patch)
    page.wait_for_selector(".tus-upload:not([hidden]) >> text=替换视频")
    page.set_input_files("[data-tus-file]", str(tmp_path / "新视频.mp4"))
    page.click("[data-tus-start]")
    page.wait_for_selector("#media-block >> text=新视频.mp4", timeout=60_000)
    assert _video_sha(server.app, world.submitted_a) == sha256(second)
    assert len(patches) >= 3 and patches[1] == patches[2]  # the lost chunk was sent again from its offset
    assert "旧视频.mp4" not in page.inner_text("#media-block")
