"""The resumable upload on gunicorn (gthread, two worker processes, SQLite): the whole server killed with
-9 mid-upload loses no acknowledged byte — the upload resumes from the offset it had confirmed and ends
with the file's exact bytes; PATCHes racing for one offset across worker processes: exactly one wins."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess  # nosec B404 — starts our own gunicorn with an argument list
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from tusclient import client as tus_client

from app.extensions import db
from tests.tus_fixtures import TUS, Browser, build_world, file_sha256, mp4, sha256

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 256 * 1024
WSGI = """import sys
sys.path.insert(0, {root!r})
from app import create_app
app = create_app({config!r})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, folder: Path, config: dict):
        self.folder = folder
        (folder / "tus_wsgi.py").write_text(WSGI.format(root=str(ROOT), config=config), encoding="utf-8")
        self.proc = None
        self.url = ""

    def start(self) -> str:
        port = _free_port()
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.proc = subprocess.Popen(  # nosec B603
            [gunicorn, "--chdir", str(self.folder), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
             "--workers", "2", "--threads", "4", "--log-level", "warning", "tus_wsgi:app"],
            cwd=str(self.folder), stdout=subprocess.DEVNULL, stderr=open(self.folder / "gunicorn.log", "ab"),
            start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            assert self.proc.poll() is None, (self.folder / "gunicorn.log").read_text(errors="replace")[-2000:]
            try:
                if requests.get(self.url + "/login", timeout=2).status_code == 200:
                    return self.url
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError("gunicorn did not answer in time")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()


@pytest.fixture
def served(app_factory, tmp_path):
    config = {"SECRET_KEY": "tus-load-secret", "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(tmp_path / "kepu.sqlite3"),
              "UPLOAD_FOLDER": str(tmp_path / "uploads"), "RATELIMIT_ENABLED": False, "JOBS_IMMEDIATE": True,
              "UPLOAD_MAX_VIDEO_BYTES": 8 * 1024 * 1024}
    app = app_factory(config)
    world = build_world(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    server = Gunicorn(tmp_path, config)
    server.start()
    yield server, app, world
    server.stop()


def _video_sha(app, nomination_id):
    from app.core import storage
    from tests.tus_fixtures import nomination

    with app.app_context():
        video = nomination(app, nomination_id).video
        sha = file_sha256(storage.path_of(video.stored_name)) if video else None
        db.session.remove()
        return sha


def test_kill9_mid_upload_loses_no_confirmed_byte(served):
    server, app, world = served
    data = mp4(2 * 1024 * 1024)
    browser = Browser(server.url, "unit_a")
    first = tus_client.TusClient(server.url + "/portal/uploads", headers=browser.headers).uploader(
        file_stream=io.BytesIO(data), chunk_size=CHUNK,
        metadata={"filename": "活动.mp4", "nomination_id": str(world.nom_a)})
    first.upload(stop_at=4 * CHUNK)
    path = first.url.split("/portal/", 1)[1]
    server.kill9()  # every process of the server, at once, right after the fourth chunk was confirmed

    base = server.start()
    browser = Browser(base, "unit_a")
    url = f"{base}/portal/{path}"
    assert requests.head(url, headers={**browser.headers, **TUS}).headers["Upload-Offset"] == str(4 * CHUNK)
    resumed = tus_client.TusClient(base + "/portal/uploads", headers=browser.headers).uploader(
        file_stream=io.BytesIO(data), url=url, chunk_size=CHUNK)
    resumed.upload()
    assert _video_sha(app, world.nom_a) == sha256(data)


def test_patches_racing_across_worker_processes_one_wins(served):
    server, app, world = served
    data = mp4(600_000)
    browser = Browser(server.url, "unit_a")
    created = browser.create(len(data), world.nom_a)
    url = browser.url(created.headers["Location"])
    headers = {**browser.headers, **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
               "Connection": "close"}  # a new connection each: the requests spread over both workers
    start = threading.Barrier(8)
    statuses: list[int] = []

    def racer():
        start.wait(30)
        statuses.append(requests.patch(url, data=data[:CHUNK], headers=headers, timeout=60).status_code)

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(statuses) == [204] + [409] * 7
    assert requests.head(url, headers={**browser.headers, **TUS}).headers["Upload-Offset"] == str(CHUNK)
