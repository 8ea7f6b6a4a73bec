"""Hypothesis fuzzing of every form the app serves, found at run time: each role opens every GET route it
may open, every <form> (and hx-post element) on those pages is parsed, and each is posted with fuzzed
values — with a valid CSRF token, so the request reaches the view. No answer may be a 500 or carry a
traceback. The upload forms get their own run: hostile file names (../, NUL, 10k characters, bytes that
are not UTF-8) and contents, after which nothing may exist outside the folders the app writes to.

The database is restored from a snapshot before each form, so one form's fuzz (a phase change, a
deactivated account) cannot blind the next one.
"""

from __future__ import annotations

import os
import re
import shutil
import time
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
    Form,
    concrete_urls,
    demo_copy,
    dispose,
    known_error,
    no_background_jobs,
    parse_forms,
    prepare_world,
    rule_for,
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
    client, token = signed_in(app, role)
    db_path = str(folder / "kepu.sqlite3")
    dispose(app)
    snapshot = str(folder / "snapshot.sqlite3")
    shutil.copy(db_path, snapshot)
    return Session(app, client, token, db_path, snapshot, str(folder), world)


def _discover(s: Session) -> list[tuple[Form, str]]:
    """(form, rule) for every distinct form on every page the role may open."""
    seen, forms = set(), []
    for rule in walkable_rules(s.app):
        if "GET" not in rule.methods:
            continue
        for _, url, _ in concrete_urls(s.app, rule, s.world, ("own",)):
            resp = s.client.get(url)
            if resp.status_code != 200 or not resp.content_type.startswith("text/html"):
                resp.close()
                continue
            for form in parse_forms(resp.get_data(as_text=True), "http://localhost" + url):
                target = rule_for(s.app, form.action, form.method)
                if target is None or target.rule in SKIP_RULES:
                    continue
                key = (form.method, target.rule, tuple(sorted({f.name for f in form.fields})))
                if key not in seen:
                    seen.add(key)
                    forms.append((form, target.rule))
    return forms


def _check(s: Session, resp, url: str, htmx: bool, what: str) -> None:
    body = resp.get_data(as_text=True) if resp.content_type.startswith(("text/", "application/json")) else ""
    resp.close()
    error = APP_ERRORS.take()
    if resp.status_code >= 500 and (why := known_error(url, htmx, error)):
        s.known.add(f"{url} (htmx={htmx}): {why}")
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
        fuzzed.append(f"{form.method.upper()} {rule} ({time.monotonic() - started:.1f} s)")
    return fuzzed, failures


# ------------------------------------------------------------------------------------------- tests

ROLE_PHASES = [
    ("admin", "reviewing"),
    ("reviewer", "reviewing"),
    # The chair's forms (decide, 审定意见, prefill, dates, publicize, finalize) exist only while deliberating.
    ("chair", "deliberating"),
]


@pytest.mark.parametrize("role,phase", ROLE_PHASES, ids=[r for r, _ in ROLE_PHASES])
def test_every_form_survives_fuzzed_input(demo_template, tmp_path, role, phase):
    s = _session(demo_template, tmp_path, role, phase)
    with no_background_jobs():
        forms = _discover(s)
        posts = [f for f, _ in forms if f.method == "post"]
        assert posts, f"no POST form found on the pages {role} can open"
        fuzzed, failures = _fuzz_forms(s, forms)
    print(f"\n{role}: fuzzed {len(fuzzed)} forms:\n  " + "\n  ".join(fuzzed))
    if s.known:
        print("known (reported) errors met:\n  " + "\n  ".join(sorted(s.known)))
    assert not failures, f"{len(failures)} of {len(forms)} forms answered 500:\n" + "\n".join(failures)
    dispose(s.app)
