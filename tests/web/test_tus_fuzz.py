"""Random tus headers and bodies from a signed-in unit: never a 500, always a Tus-Resumable answer, and
nothing on disk but server-named files within the lengths that were declared."""

from __future__ import annotations

import base64
import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import csrf_token_from, signed_in
from tests.tus_fixtures import VIDEO_LIMIT, mp4, tus_app, tus_files, world  # noqa: F401

LATIN = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40)
NUMBERS = st.one_of(st.integers(-5, VIDEO_LIMIT + 5).map(str), st.sampled_from(["", "²", "１２", "1e3", " 7 ", "0x10",
                                                                                 "9" * 30, "-0", "+3"]), LATIN)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


METADATA = st.one_of(
    LATIN,
    st.dictionaries(st.sampled_from(["filename", "nomination_id", "filetype", "x y", ""]),
                    st.one_of(st.text(max_size=30), st.sampled_from(["1", "2", "3", "999999999999", "../1"])),
                    max_size=3).map(lambda d: ",".join(f"{k} {_b64(v)}" for k, v in d.items())),
)
BODIES = st.one_of(st.binary(max_size=2000), st.just(mp4(3000)), st.just(b""))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(well_formed=st.sampled_from([True, True, False]), length=NUMBERS, meta=METADATA, offset=NUMBERS,
       body=BODIES, content_type=st.sampled_from(["application/offset+octet-stream", "text/plain", "",
                                                  "multipart/form-data"]),
       checksum=st.one_of(st.none(), LATIN, st.just("sha1 AAAA"), st.just("sha256 " + _b64("x"))),
       version=st.sampled_from(["1.0.0", "0.2.2", ""]))
def test_random_tus_requests_never_fail_badly(tus_app, world, well_formed, length, meta, offset, body,  # noqa: F811
                                              content_type, checksum, version):
    client = _client(tus_app)
    if well_formed:  # most examples reach a real upload, whose PATCH then gets the random parts
        length, version = str(max(len(body), 1)), "1.0.0"
        meta = f"filename {_b64('活动.mp4')},nomination_id {_b64(str(world.nom_a))}"
    headers = {"X-CSRFToken": client.token, "Tus-Resumable": version, "Upload-Length": length,
               "Upload-Metadata": meta}
    created = client.post("/portal/uploads", headers=headers)
    _check(created)
    url = created.headers.get("Location") or "/portal/uploads/" + "a" * 32
    patch_headers = {"X-CSRFToken": client.token, "Tus-Resumable": version, "Upload-Offset": offset,
                     "Content-Type": content_type}
    if checksum is not None:
        patch_headers["Upload-Checksum"] = checksum
    _check(client.patch(url, data=body, headers=patch_headers))
    if well_formed:  # and a well-formed PATCH of the same body: accepted, finished or refused, never a 500
        _check(client.patch(url, data=body, headers={**patch_headers, "Upload-Offset": "0",
                                                     "Content-Type": "application/offset+octet-stream"}))
    _check(client.head(url, headers={"Tus-Resumable": version}))
    _check(client.delete(url, headers={"X-CSRFToken": client.token, "Tus-Resumable": version}))
    for name in tus_files(tus_app):
        assert re.fullmatch(r"[0-9a-f]{32}\.(part|json)", name), name
        if name.endswith(".part"):
            assert os.path.getsize(os.path.join(tus_app.config["UPLOAD_FOLDER"], "tus", name)) <= VIDEO_LIMIT


_clients: dict[int, object] = {}


def _client(app):
    """One signed-in client per app (hypothesis reuses the function's fixtures across examples)."""
    if id(app) not in _clients:
        client = signed_in(app, "unit_a")
        client.token = csrf_token_from(client.get("/account").get_data(as_text=True))
        _clients.clear()
        _clients[id(app)] = client
    return _clients[id(app)]


def _check(resp) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)[:300]
    assert resp.headers.get("Tus-Resumable") == "1.0.0"
