"""A portal world for the resumable upload tests: a round collecting materials (deadline far ahead),
two units with a nominator account each, a draft nomination per unit, and a real server to talk to."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date

import pytest
import requests

from app.accounts import operations as users
from app.extensions import db
from app.models import Nomination, Nominator
from tests.factories import make_nomination, make_round

PASSWORD = "kepu2024"
VIDEO_LIMIT = 3 * 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


@functools.cache
def _password_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(PASSWORD)  # scrypt is slow on purpose: once per test session


def mp4(payload: int = 1024 * 1024, seed: bytes = b"kepu") -> bytes:
    """A structurally whole MP4 (ftyp box, then an mdat box of `payload` pseudo-random bytes)."""
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    body = bytearray()
    block = seed
    while len(body) < payload:
        block = hashlib.sha256(block).digest()
        body += block * 64
    body = bytes(body[:payload])
    return ftyp + (8 + payload).to_bytes(4, "big") + b"mdat" + body


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@dataclass
class World:
    nom_a: int
    nom_b: int
    submitted_a: int
    unit_a: int


def build_world(app) -> World:
    with app.app_context():
        rnd = make_round("collecting")
        rnd.deadline = date(2099, 10, 8)
        a = Nominator(name="长沙市科协", short_name="长沙", kind="city", position=1)
        b = Nominator(name="株洲市科协", short_name="株洲", kind="city", position=2)
        db.session.add_all([a, b])
        db.session.commit()
        for username, role, unit in (("unit_a", "nominator", a.name), ("unit_a2", "nominator", a.name),
                                     ("unit_b", "nominator", b.name), ("admin", "admin", None)):
            # The first-sign-in password change is not these tests' subject (must_change stays off).
            user = users.create_user(username, username.upper(), role, password_hash=_password_hash(),
                                     affiliation=unit)
            user.must_change_password = False
        db.session.commit()
        nom_a = make_nomination(rnd, a, "长沙科普进社区", status="draft", origin="portal")
        nom_b = make_nomination(rnd, b, "株洲科普进校园", status="draft", origin="portal")
        sub_a = make_nomination(rnd, a, "长沙科普大篷车", status="submitted", origin="portal")
        return World(nom_a.id, nom_b.id, sub_a.id, a.id)


@pytest.fixture
def tus_app(app_factory):
    return app_factory({"UPLOAD_MAX_VIDEO_BYTES": VIDEO_LIMIT, "TUS_LOCK_WAIT_SECONDS": 0.5})


@pytest.fixture
def world(tus_app) -> World:
    return build_world(tus_app)


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


class Browser:
    """A signed-in session against a live server, and the headers a tus client needs for it."""

    def __init__(self, base: str, username: str):
        self.base = base
        self.http = requests.Session()
        page = self.http.get(base + "/login")
        resp = self.http.post(base + "/login", data={"username": username, "password": PASSWORD,
                                                     "csrf_token": csrf_from(page.text)}, allow_redirects=False)
        assert resp.status_code in (302, 303), resp.text[:300]
        self.token = csrf_from(self.http.get(base + "/account").text)

    @property
    def headers(self) -> dict:
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        return {"Cookie": cookie, "X-CSRFToken": self.token}

    def create(self, length: int, nomination_id: int, filename: str = "活动视频.mp4", **extra) -> requests.Response:
        import base64

        meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                        for k, v in {"filename": filename, "nomination_id": str(nomination_id)}.items())
        return requests.post(self.base + "/portal/uploads",
                             headers={**self.headers, **TUS, "Upload-Length": str(length), "Upload-Metadata": meta,
                                      **extra})

    def url(self, location: str) -> str:
        return location if location.startswith("http") else self.base + location


def tus_files(app) -> list[str]:
    folder = os.path.join(app.config["UPLOAD_FOLDER"], "tus")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def nomination(app, nomination_id: int) -> Nomination:
    db.session.remove()
    return db.session.get(Nomination, nomination_id)
