"""Hypothesis fuzzing of every form the app serves, found at run time: each role opens every GET route it
may open, every <form> (and hx-post element) on those pages is parsed, and each is posted with fuzzed
values — with a valid CSRF token, so the request reaches the view. No answer may be a 500 or carry a
traceback. The upload forms get their own run: hostile file names (../, NUL, 10k characters, bytes that
are not UTF-8) and contents, after which nothing may exist outside the folders the app writes to.

The database is restored from a snapshot before each form, so one form's fuzz (a phase change, a
deactivated account) cannot blind the next one.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import Attachment, Round
from tests.security_fixtures import (
    APP_ERRORS,
    KNOWN_ERRORS,
    Form,
    concrete_urls,
    demo_copy,
    dispose,
    jpeg_bytes,
    known_error,
    no_background_jobs,
    parse_forms,
    prepare_world,
    rule_for,
    seal_png,
    signed_in,
    walkable_rules,
)

POST_EXAMPLES = 25
GET_EXAMPLES = 8
UPLOAD_EXAMPLES = 25
# Signing out ends the session the rest of the run needs; it takes no input anyway.
SKIP_RULES = {"/logout"}
# No shrinking: it would re-send hundreds of requests per failure; the report shows the exact body sent.
FUZZ_SETTINGS = dict(deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate], suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                            HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------------------------------ values

SPECIAL = [
    "", " ", "\x00", "a\x00b", "\r\n", "\t", "\u202e", "\ufeff", "0", "-0", "-1", "00", "0.5", "1e-7", "1e309",
    "-1e309", "NaN", "nan", "inf", "-inf", "Infinity", "1_000", "0x10", "1,5", "１２３", "２０．５", "٣", "Ⅻ",
    "18446744073709551616", "-9223372036854775809", "9" * 400, "2024-02-30", "9999-12-31", "0000-00-00",
    "2024-13-01", "-1-01-01", "2024/10/08", "null", "true", "[]", "{}", "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>', "' OR '1'='1", "1; DROP TABLE users; --", "../../../etc/passwd",
    "%00", "{{7*7}}", "{% raw %}", "${7*7}", "😀" * 10, "𠀀𠀁", "unit", "activity", "reviewer", "admin",
    # str.isdigit() is true for these, int() refuses them: the classic guard that lets a 500 through
    "²", "①", "3²", "1-²", "²-1", "¹²³",
]
# Appended to a real field name for an extra field ("score-²" next to "score-1").
NAME_SUFFIXES = ["²", "①", "-1", "x", "[]", "\x00", "９", "0" * 30]
HUGE = ["长" * 10_000, "A" * 10_001, "😀" * 5_000, "\x00" * 10_000]


def values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SPECIAL),
        st.text(max_size=40),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(HUGE),
    )


def _field_value(data, field) -> str:
    if field.options and data.draw(st.booleans(), label=f"{field.name}: a listed option"):
        return data.draw(st.sampled_from(field.options))
    return data.draw(values(), label=field.name)


def fuzz_body(data, form: Form) -> list[tuple[str, str]]:
    """Each field kept, fuzzed, left out or sent twice; sometimes an unexpected extra field."""
    body: list[tuple[str, str]] = []
    buttons = [f for f in form.fields if f.kind == "button" and f.name]
    for f in form.fields:
        if f.kind in ("file", "button") or f.name == "csrf_token" or not f.name:
            continue
        how = data.draw(st.sampled_from(["keep", "fuzz", "fuzz", "omit", "twice"]), label=f"{f.name}: how")
        if how == "keep":
            body.append((f.name, f.value if f.value is not None else ""))
        elif how == "fuzz":
            body.append((f.name, _field_value(data, f)))
        elif how == "twice":
            body += [(f.name, _field_value(data, f)), (f.name, _field_value(data, f))]
    if buttons:
        pressed = data.draw(st.sampled_from(buttons), label="button")
        body.append((pressed.name, data.draw(st.one_of(st.just(pressed.value), values()), label=pressed.name)))
    if data.draw(st.booleans(), label="extra field"):
        names = sorted({f.name for f in form.fields if f.name}) or ["x"]
        stem = data.draw(st.sampled_from(names), label="extra: like")
        stem = re.sub(r"\d+$", "", stem)  # "score-12" → "score-"
        name = data.draw(st.one_of(st.sampled_from(NAME_SUFFIXES).map(lambda x: stem + x),
                                   st.text(min_size=1, max_size=20)), label="extra name")
        body.append((name, data.draw(values(), label="extra value")))
    return body


# ---------------------------------------------------------------------------------------- session

@dataclass
class Session:
    app: object
    client: object
    token: str
    db_path: str
    snapshot: str
    root: str
    world: object
    known: set = field(default_factory=set)
    statuses: dict = field(default_factory=dict)  # path → Counter of statuses (proof the fuzz got past CSRF)

    def restore(self) -> None:
        """Back to the state right after sign-in (same session tokens, so the cookie stays valid)."""
        dispose(self.app)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(self.db_path + suffix):
                os.remove(self.db_path + suffix)
        shutil.copy(self.snapshot, self.db_path)


def _session(demo_template, folder, role: str, phase: str) -> Session:
    app = demo_copy(demo_template, str(folder))
    APP_ERRORS.listen(app)
    world = prepare_world(app)
    with app.app_context():
        db.session.execute(update(Round).values(phase=phase))
        db.session.commit()
        db.session.remove()
    if role == "nominator":
        _portal_world(app, world)
    client, token = signed_in(app, role)
    db_path = str(folder / "kepu.sqlite3")
    dispose(app)
    snapshot = str(folder / "snapshot.sqlite3")
    shutil.copy(db_path, snapshot)
    return Session(app, client, token, db_path, snapshot, str(folder), world)


def _portal_world(app, world) -> None:
    """The 推荐单位's forms exist only on its own editable draft while the round still collects materials:
    the demo's deadline (2024-10-08) has passed, so this copy's round gets one ahead, and the unit a
    portal draft with photos, which becomes its "own" object."""
    from datetime import timedelta

    from app.core.time import beijing
    from app.models import Nomination
    from tests.factories import make_nomination
    from tests.security_fixtures import _attach_photo

    with app.app_context():
        rnd = db.session.get(Round, world.round_id)
        rnd.deadline = beijing().date() + timedelta(days=30)
        db.session.commit()
        unit = db.session.get(Nomination, world.nominations["own"]).nominator
        draft = make_nomination(rnd, unit, "门户草稿（模糊测试）", status="draft", origin="portal")
        photos = [_attach_photo(draft.id) for _ in range(3)]
        db.session.commit()
        world.nominations = {**world.nominations, "own": draft.id}
        world.attachments = {**world.attachments, "own": photos[0]}
        db.session.remove()


def _discover(s: Session) -> list[tuple[Form, str]]:
    """(form, rule) for every distinct form on every page the role may open — the bare URL of each GET rule,
    then the first link with a query string each page offers per rule (…/pair?reviewer=&nomination=)."""
    seen, forms, links, visited = set(), [], {}, set()

    def visit(url: str) -> None:
        visited.add(url)
        resp = s.client.get(url)
        if resp.status_code != 200 or not resp.content_type.startswith("text/html"):
            resp.close()
            return
        page = resp.get_data(as_text=True)
        for form in parse_forms(page, "http://localhost" + url):
            target = rule_for(s.app, form.action, form.method)
            if target is None or target.rule in SKIP_RULES:
                continue
            key = (form.method, target.rule, tuple(sorted({f.name for f in form.fields})))
            if key not in seen:
                seen.add(key)
                forms.append((form, target.rule))
        for href in re.findall(r'href="(/[^"#]*\?[^"#]+)"', page):
            href = html.unescape(href)
            rule = rule_for(s.app, href, "GET")
            if rule is not None and rule.endpoint != "static":
                links.setdefault(rule.rule, href)

    for rule in walkable_rules(s.app):
        if "GET" in rule.methods:
            for _, url, _ in concrete_urls(s.app, rule, s.world, ("own",)):
                visit(url)
    for href in list(links.values()):
        if href not in visited:
            visit(href)
    return forms


def _check(s: Session, resp, url: str, htmx: bool, what: str) -> None:
    body = resp.get_data(as_text=True) if resp.content_type.startswith(("text/", "application/json")) else ""
    resp.close()
    error = APP_ERRORS.take()
    status = resp.status_code
    if status == 400 and "缺少安全校验（CSRF）" in body:
        status = "csrf"
    s.statuses.setdefault(url, Counter())[status] += 1
    if resp.status_code >= 500 and (known := known_error(url, htmx, error)):
        s.known.add(f"{url} (htmx={htmx}): {known.key}")
        return
    assert resp.status_code < 500, f"{what} → {resp.status_code}\n{error}"
    assert "Traceback (most recent call last)" not in body, f"{what}: traceback in the response"


def _short(body: list[tuple[str, str]]) -> str:
    return repr([(k, v if len(v) < 40 else f"{v[:12]}…({len(v)} chars)") for k, v in body])[:1200]


def _fuzzer(s: Session, form: Form):
    @settings(max_examples=POST_EXAMPLES if form.method == "post" else GET_EXAMPLES, **FUZZ_SETTINGS)
    @given(data=st.data(), htmx=st.booleans())
    def run(data, htmx):
        body = fuzz_body(data, form)
        headers = {"HX-Request": "true"} if htmx else {}
        if form.method == "post":
            resp = s.client.post(form.action, data=MultiDict([*body, ("csrf_token", s.token)]), headers=headers)
        else:
            resp = s.client.get(form.action, query_string=MultiDict(body), headers=headers)
        _check(s, resp, urlsplit(form.action).path, htmx,
               f"{form.method.upper()} {form.action} (form on {form.page}, htmx={htmx}) {_short(body)}")

    return run


def _fuzz_forms(s: Session, forms: list[tuple[Form, str]]) -> tuple[list[str], list[str]]:
    """Every form is fuzzed even when an earlier one fails, so one run reports every broken form."""
    fuzzed, failures = [], []
    for form, rule in forms:
        s.restore()
        started = time.monotonic()
        try:
            _fuzzer(s, form)()
        except AssertionError as e:
            lines = str(e).splitlines()
            failures.append(f"  {form.method.upper()} {rule}: {lines[0]}\n      {lines[1] if len(lines) > 1 else ''}")
        sent = sum(s.statuses.get(urlsplit(form.action).path, Counter()).values())
        fuzzed.append(f"{form.method.upper()} {rule} ({time.monotonic() - started:.1f} s, {sent} requests so far)")
    return fuzzed, failures


# ------------------------------------------------------------------------------------------- tests

ROLE_PHASES = [
    ("admin", "reviewing"),
    ("reviewer", "reviewing"),
    # The chair's forms (decide, 审定意见, prefill, dates, publicize, finalize) exist only while deliberating.
    ("chair", "deliberating"),
    # The 推荐单位's portal forms (draft, 提交, photos, video, 盖章件) exist while materials are collected.
    ("nominator", "collecting"),
]


PORTAL_RULES = {"/portal/new/<any(unit, activity):category>", "/portal/nominations/<int:nomination_id>",
                "/portal/nominations/<int:nomination_id>/photos", "/portal/nominations/<int:nomination_id>/stamped"}


@pytest.mark.parametrize("role,phase", ROLE_PHASES, ids=[r for r, _ in ROLE_PHASES])
def test_every_form_survives_fuzzed_input(demo_template, tmp_path, role, phase):
    s = _session(demo_template, tmp_path, role, phase)
    with no_background_jobs():
        forms = _discover(s)
        posts = [f for f, _ in forms if f.method == "post"]
        assert posts, f"no POST form found on the pages {role} can open"
        if role == "nominator":
            rules = {rule for _, rule in forms}
            missing = PORTAL_RULES - rules
            assert not missing, f"the portal's forms were not found on the nominator's pages: {sorted(missing)}"
        fuzzed, failures = _fuzz_forms(s, forms)
    print(f"\n{role}: fuzzed {len(fuzzed)} forms:\n  " + "\n  ".join(fuzzed))
    if s.known:
        print("known (reported) errors met:\n  " + "\n  ".join(sorted(s.known)))
    assert not failures, f"{len(failures)} of {len(forms)} forms answered 500:\n" + "\n".join(failures)
    if role == "nominator":
        portal = {p: dict(c) for p, c in s.statuses.items() if p.startswith("/portal/")}
        print("portal statuses: " + repr(portal))
        # Past CSRF and the ownership check into the views: the fuzz tested the forms, not the gate.
        blunt = [p for p, c in portal.items() if not set(c) - {"csrf", 403, 404}]
        assert not blunt, f"every fuzzed post was refused before the view: {blunt}"
    dispose(s.app)


@pytest.mark.parametrize("known", [pytest.param(k, id=k.key) for k in KNOWN_ERRORS])
def test_reported_500_stays_fixed(demo_app, known):
    """Each 500 the walk and the fuzzing once found, replayed on its own (KNOWN_ERRORS in tests/security_fixtures.py)."""
    APP_ERRORS.listen(demo_app)
    world = prepare_world(demo_app)
    client, token = signed_in(demo_app, known.role)
    url = known.url.format(own=world.nominations["own"])
    headers = {"HX-Request": "true"} if known.htmx else {}
    data = MultiDict([*known.data, ("csrf_token", token)]) if known.method != "GET" else None
    resp = client.open(url, method=known.method, data=data, headers=headers)
    error = APP_ERRORS.take()
    assert resp.status_code < 500, f"{known.method} {url} → {resp.status_code}: {error}"


# ---------------------------------------------------------------------------------------- uploads

MARK = b"kepuescape"
BOUNDARY = "----kepuFuzzBoundary7MA4YWxkTrZu0gW"
FILENAMES = [
    b"../../../../" + MARK + b".jpg", b"..\\..\\..\\" + MARK + b".png", b"/tmp/" + MARK + b".jpg",
    b"/etc/passwd", MARK + b".jpg\x00.php", b"A" * 10_000 + b".jpg", b"\xff\xfe\xfd" + MARK + b".jpg",
    "活动照片".encode("gbk") + b".jpg", "活动照片.jpg".encode(), b".", b"..", b"CON", b".htaccess", b" ",
    b"x\r\nContent-Type: text/html", b'x"; name="csrf_token', b"%2e%2e%2f" + MARK + b".jpg",
    b"photo.JPG", b"video.mp4", b"forms.zip", b"list.xlsx", b"a.docx",
]
CONTENT_TYPES = [b"image/jpeg", b"image/png", b"video/mp4", b"application/octet-stream", b"text/html",
                 b"application/zip", b"", b"\xff\xfe"]


def _zip_slip() -> bytes:
    """A .zip whose members try to climb out of wherever they might be extracted."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../" + MARK.decode() + ".docx", b"PK not really")
        zf.writestr("/abs/" + MARK.decode() + ".jpg", b"\xff\xd8\xff")
        zf.writestr("ok/../../" + MARK.decode() + ".xlsx", b"x")
    return buf.getvalue()


def _tiny_pdf() -> bytes:
    """A real one-page PDF (a 盖章件 scan the portal accepts), and below a truncated copy of it."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _contents() -> list[bytes]:
    jpeg, _ = jpeg_bytes()
    pdf = _tiny_pdf()
    return [jpeg, seal_png(), b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, b"\x1a\x45\xdf\xa3" + b"\x00" * 64,
            _zip_slip(), b"", b"\x00" * 1024, b"<html><script>alert(1)</script></html>", jpeg[:40], pdf,
            pdf[:len(pdf) // 2]]


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, bytes, bytes, bytes]]) -> bytes:
    """Built by hand: the test client would encode a str file name as UTF-8, never as raw bytes."""
    out = b""
    for name, value in fields:
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n').encode() + \
            value.encode("utf-8", "surrogatepass") + b"\r\n"
    for name, filename, ctype, content in files:
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="').encode() + filename + \
            b'"\r\nContent-Type: ' + ctype + b"\r\n\r\n" + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def _clean_header(value: bytes) -> bool:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(c in text for c in '"\r\n')


def _upload_fuzzer(s: Session, form: Form, contents: list[bytes]):
    file_fields = [f.name for f in form.fields if f.kind == "file"]
    others = [(k, v) for k, v in form.defaults() if k != "csrf_token"]

    @settings(max_examples=UPLOAD_EXAMPLES, **FUZZ_SETTINGS)
    @given(data=st.data(), htmx=st.booleans())
    def run(data, htmx):
        files = []
        # Half the examples carry header bytes a multipart parser may refuse as a whole (not UTF-8, quotes,
        # CR/LF): that is a clean 400 for the CSRF token it no longer finds. The other half reach the view.
        hostile = data.draw(st.booleans(), label="hostile headers")
        names = st.one_of(st.sampled_from(FILENAMES), st.binary(max_size=120)) if hostile else st.sampled_from(
            [f for f in FILENAMES if _clean_header(f)])
        types = st.sampled_from(CONTENT_TYPES if hostile else [t for t in CONTENT_TYPES if _clean_header(t)])
        for name in file_fields:
            for _ in range(data.draw(st.integers(0, 3), label=f"{name}: parts")):
                filename = data.draw(names, label="name")
                ctype = data.draw(types, label="type")
                content = data.draw(st.one_of(st.sampled_from(contents), st.binary(max_size=512)), label="content")
                files.append((name, filename, ctype, content))
        body = multipart([*others, ("csrf_token", s.token)], files)
        headers = {"HX-Request": "true"} if htmx else {}
        resp = s.client.post(form.action, data=body, content_type=f"multipart/form-data; boundary={BOUNDARY}",
                             headers=headers)
        what = f"POST {form.action} htmx={htmx} files={[(n, f[:60], t, len(c)) for n, f, t, c in files]}"
        _check(s, resp, urlsplit(form.action).path, htmx, what)

    return run


def _files_named(root: str, mark: bytes) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        found += [os.path.join(folder, n) for n in dirs + files if mark.decode() in n]
    return found


def _tree(root: str) -> set[str]:
    return {os.path.relpath(os.path.join(f, n), root) for f, _, names in os.walk(root) for n in names}


def _good_upload(s: Session, form: Form) -> None:
    """The control beside the fuzz: one well-formed file for each of the portal's upload forms is accepted
    (303), so the refusals the fuzz meets are the content's fault, never a form the view cannot take."""
    from tests.tus_fixtures import mp4

    jpeg, _ = jpeg_bytes()
    by_field = {"photos": ("现场照片.jpg", b"image/jpeg", jpeg), "video": ("活动视频.mp4", b"video/mp4", mp4(4096)),
                "stamped": ("盖章件.pdf", b"application/pdf", _tiny_pdf())}
    [name] = [f.name for f in form.fields if f.kind == "file"]
    filename, ctype, content = by_field[name]
    others = [(k, v) for k, v in form.defaults() if k != "csrf_token"]
    body = multipart([*others, ("csrf_token", s.token)], [(name, filename.encode(), ctype, content)])
    resp = s.client.post(form.action, data=body, content_type=f"multipart/form-data; boundary={BOUNDARY}")
    status = resp.status_code
    # Counted with the fuzz's answers: the "not one upload accepted" check below then needs no lucky draw.
    _check(s, resp, urlsplit(form.action).path, False, f"POST {form.action} (a well-formed {name})")
    assert status == 303, f"a well-formed {name} upload to {form.action} → {status}"
    s.restore()


UPLOAD_ROLES = [("admin", "reviewing"), ("nominator", "collecting")]


@pytest.mark.parametrize("role,phase", UPLOAD_ROLES, ids=[r for r, _ in UPLOAD_ROLES])
def test_upload_metadata_survives_fuzzing_and_stays_in_its_folders(demo_template, tmp_path, role, phase):
    """Every form with a file input, fuzzed with hostile file names and contents (as the admin, and as a
    推荐单位 on its own draft: photos, video, 盖章件): no 500, no file outside the folders the app writes
    to, stored names that are ours (random), never the client's."""
    s = _session(demo_template, tmp_path / "app", role, phase)
    with no_background_jobs():
        forms = [f for f, _ in _discover(s) if f.method == "post" and any(x.kind == "file" for x in f.fields)]
        assert len(forms) >= 3, f"expected the photo, video and import (or 盖章件) upload forms, found {len(forms)}"
        before = _tree(s.root)
        contents = _contents()
        failures, fuzzed = [], []
        for form in forms:
            s.restore()
            if role == "nominator":
                _good_upload(s, form)
            try:
                _upload_fuzzer(s, form, contents)()
            except AssertionError as e:
                failures.append(f"  {form.action}: {str(e).splitlines()[0]}")
            fuzzed.append(urlsplit(form.action).path)
    print("\nupload forms fuzzed:\n  " + "\n  ".join(f"{p}: {dict(s.statuses.get(p, {}))}" for p in fuzzed))
    assert not failures, "upload forms answering 500:\n" + "\n".join(failures)
    for path in fuzzed:
        got = s.statuses.get(path, Counter())
        assert set(got) - {"csrf"}, f"{path}: every fuzzed upload was refused for CSRF — the multipart is broken"
    assert any(300 <= k < 400 for k in s.statuses.get(fuzzed[0], {}) if k != "csrf") or any(
        303 in s.statuses.get(p, {}) for p in fuzzed), "not one fuzzed upload was accepted: the fuzz is too blunt"

    # Where the app may write: uploads (attachments, seal), import previews, report jobs, the database.
    allowed = ("uploads" + os.sep, "import_previews" + os.sep, "reports" + os.sep, "kepu.sqlite3", "snapshot.sqlite3")
    new = sorted(p for p in _tree(s.root) - before if not p.startswith(allowed))
    assert not new, f"files written outside the app's folders: {new[:20]}"
    # ../ from the uploads folder climbs through the pytest folders to /tmp: look at each level on the way
    levels = [str(p) for p in tmp_path.parents if str(p).startswith("/tmp")]
    escaped = _files_named(str(tmp_path), MARK) + _files_named(s.app.instance_path, MARK)
    escaped += [os.path.join(d, n) for d in levels for n in os.listdir(d) if MARK.decode() in n]
    assert not escaped, f"an uploaded name reached the file system: {escaped[:10]}"
    with s.app.app_context():
        names = [n for row in db.session.execute(select(Attachment.stored_name, Attachment.thumb_name)) for n in row
                 if n]
        seal = db.session.scalar(select(Round.seal_file))
        db.session.remove()
    clean = re.compile(r"^[0-9a-f]{32}\.(jpg|png|mp4|webm|pdf)$")  # pdf: a 盖章件 scan
    assert names and all(clean.match(n) for n in [*names, seal]), [n for n in names if not clean.match(n)][:5]
