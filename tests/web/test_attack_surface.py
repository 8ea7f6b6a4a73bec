"""Every route × every role × someone else's object, read from `app.url_map` at run time: a route added
later is walked without being listed here, and the explicit POLICY below must then say who may use it.

Two walks over private copies of the demo round (stage reviewing):
* GET walk — every GET rule, every role, object variants (A's own nomination, B's sheet, a 回避
  nomination of A's own unit, a declared 回避, an unassigned nomination; another admin's import).
* POST walk — every mutating rule, every role, with a valid CSRF token and the body of the matching form
  found on the GET pages (so a refusal is not just a missing field), counting audit events around each.
The same responses are checked for security headers and for inline script/style (the CSP forbids them).
"""

from __future__ import annotations

import fnmatch
import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict
from werkzeug.routing.converters import IntegerConverter

from app.extensions import db
from app.models import ReviewSheet, Score
from tests.security_fixtures import (
    APP_ERRORS,
    B_COMMENT,
    FOREIGN_TITLE,
    MUTATING_METHODS,
    PHONE,
    ROLES,
    VARIANTS,
    audit_count,
    build_url,
    concrete_urls,
    demo_copy,
    dispose,
    is_foreign,
    methods_of,
    no_background_jobs,
    parse_forms,
    prepare_world,
    rule_for,
    signed_in,
    walkable_rules,
)

# --------------------------------------------------------------------------------------------- policy
# Who may use which route, as "METHOD /rule" patterns (fnmatch; rules as url_map spells them). Anything a
# role is not allowed gets 403/404 (anonymous: the sign-in page). A route that opens up or closes for a
# role — on purpose or not — fails test_*_follow_the_access_policy until this table says so.

SIGNED_IN = ("* /login", "GET /", "GET /account", "POST /account", "POST /logout")
# The forced first password (a 303 to /account when none is owed) is every signed-in role's;
# an invitation link is public, and one nobody was issued (all this walk can try) is a 404 for everyone.
SIGNED_IN += ("* /account/set-password",)
TOKEN_ONLY = ("* /accounts/invite/<token>",)
# The public 公示 pages are open to everyone, signed in or not. Those of one round, and the
# objections' own pages, answer 404 in this walk's round (专家评审: nothing public yet, no objection);
# tests/web/test_publicity_access.py walks them in a round in 公示.
PUBLIC = ("GET /gongshi/", "GET /gongshi/<int:year>", "GET /gongshi/<int:year>/gongshi.pdf",
          "* /gongshi/<int:year>/objection")
PUBLICITY_ONLY = ("* /gongshi/<int:year>*", "* /chair/objections/<int:objection_id>*")
SIGNED_IN += PUBLIC
POLICY: dict[str, dict[str, tuple[str, ...]]] = {
    "anonymous": {"allow": ("* /login",) + PUBLIC, "except": ()},
    # A 推荐单位: its portal (its own unit's nominations, photos, 盖章件, PDFs) and its own files; never
    # the portal's admin pages, a review page, a ranking or a report.
    "nominator": {"allow": SIGNED_IN + ("GET /portal/", "* /portal/[!a]*", "GET /review/files/<int:attachment_id>"),
                  "except": ()},
    "reviewer": {
        "allow": SIGNED_IN + (
            "GET /review/",
            "GET /review/nominations/<int:nomination_id>",
            "POST /review/nominations/<int:nomination_id>/sheet",
            "POST /review/nominations/<int:nomination_id>/recusal",
            "GET /review/files/<int:attachment_id>",
            "GET /reports/",  # the downloads page, showing only their own 专家评分表
            "GET /reports/sheets/mine/*",
            "GET /reports/sheets/<int:reviewer_id>/*",  # only their own id: see FOREIGN below
        ),
        "except": (),
    },
    "chair": {
        "allow": SIGNED_IN + (
            "* /rankings/*",
            "* /chair/*",
            "* /reports/*",
            "GET /review/nominations/<int:nomination_id>",  # read-only: every sheet, no score panel
            "GET /review/files/<int:attachment_id>",
        ),
        # The chair decides; setting up 审定意见 templates, the seal and going back a phase are the admin's.
        "except": ("POST /chair/templates", "POST /chair/seal", "POST /chair/reopen", "GET /reports/sheets/mine/*"),
    },
    "admin": {
        "allow": ("* *",),
        # Scoring is the reviewers' alone: the admin may reopen a sheet, never write one.
        # The portal's unit pages are the 推荐单位's; the admin's side of it is /portal/admin/*, and the
        # resumable video uploads (/portal/uploads*) the intake page uses as the portal does.
        "except": ("GET /review/", "POST /review/nominations/*", "GET /reports/sheets/mine/*",
                   "* /portal/", "* /portal/[!au]*"),
    },
}
# Object-level: with these the role is refused even on an allowed route (World.foreign holds the ids).
FOREIGN = {
    "reviewer": "a 回避 (own unit or declared) or unassigned nomination, its photos, reviewer B's sheet or id",
    "nominator": "another unit's nomination or its files",
    "chair": "another admin's import preview",
    "admin": "another admin's import preview",
}


# Defects this walk found (all fixed since): (role, method, rule, htmx) → what was wrong. Each stays as a
# regression case asserted on its own by test_reported_issue_stays_fixed.
KNOWN_ISSUES: dict[tuple[str, str, str, bool], str] = {
    ("admin", "GET", "/intake/<int:nomination_id>", True):
        "htmx GET renders block 'page' of intake/detail.html, which calls csrf() imported only at the top "
        "of the template (jinja2-fragments renders the block alone): UndefinedError → 500.",
    ("admin", "GET", "/intake/import", True):
        "same as /intake/<id>: block 'page' of intake/import.html uses csrf() imported outside the block → 500.",
    ("admin", "GET", "/intake/import/<token>", True):
        "same: block 'page' of intake/preview.html uses csrf() imported outside the block → 500.",
}


def known_issue(hit) -> str | None:
    return KNOWN_ISSUES.get((hit.role, hit.method, hit.rule, hit.htmx))


def allowed(role: str, method: str, rule: str) -> bool:
    key = f"{method} {rule}"
    spec = POLICY[role]
    return (any(fnmatch.fnmatchcase(key, p) for p in spec["allow"])
            and not any(fnmatch.fnmatchcase(key, p) for p in spec["except"]))


def expected(role: str, method: str, rule: str, foreign: bool) -> str:
    if any(fnmatch.fnmatchcase(f"{method} {rule}", p) for p in TOKEN_ONLY):  # a link nobody was issued
        return "denied"
    if not allowed(role, method, rule):
        return "login" if role == "anonymous" else "denied"
    if any(fnmatch.fnmatchcase(f"{method} {rule}", p) for p in PUBLICITY_ONLY):  # see PUBLIC
        return "denied"
    return "denied" if foreign else "ok"


# ------------------------------------------------------------------------------------------------ walk

@dataclass
class Hit:
    role: str
    method: str
    rule: str
    variant: str
    url: str
    params: dict
    status: int
    location: str
    content_type: str
    headers: dict
    body: str | None
    foreign: bool
    audit_delta: int = 0
    htmx: bool = False
    query: bool = False  # a link found on a page, with its query string
    needs_query: bool = False  # the bare URL is a 404 for want of query arguments a link does carry
    error: str = ""  # the exception the app logged while answering, if any

    @property
    def outcome(self) -> str:
        if self.status >= 500:
            return f"error {self.status}"
        if self.status == 401 or (300 <= self.status < 400 and urlsplit(self.location).path == "/login"):
            return "login"
        if self.status in (403, 404):
            return "denied"
        if self.method == "GET" and self.status >= 400:
            return f"refused {self.status}"
        return "ok"

    @property
    def expected(self) -> str:
        return expected(self.role, self.method, self.rule, self.foreign)

    def matches(self) -> bool:
        if self.needs_query:
            return True
        if self.method == "GET" or self.expected != "ok":
            return self.outcome == self.expected
        if self.rule == "/logout":
            return self.status == 303 and self.outcome == "login"  # signing out ends on the sign-in page
        # A POST of a page's default form may be refused for its content (400/404/409/422): that is not a
        # refusal of the role. Only a sign-in redirect or a 401/403 means "not for you".
        return self.status < 500 and self.outcome != "login" and self.status != 403

    def line(self) -> str:
        where = f" → {self.location}" if self.location else ""
        error = f"\n      {self.error}" if self.error else ""
        return (f"  {self.role:9} {self.method:4} {self.url}{' (htmx)' if self.htmx else ''}  [{self.rule}; "
                f"{self.variant}]: expected {self.expected}, got {self.status} ({self.outcome}){where}{error}")


@dataclass
class Walk:
    app: object
    world: object
    hits: list[Hit]
    audit_before: int = 0
    audit_after: int = 0
    forms: dict = field(default_factory=dict)


def _text(resp) -> str | None:
    ctype = resp.headers.get("Content-Type", "")
    if ctype.startswith(("text/", "application/json")):
        return resp.get_data(as_text=True)
    return None


def _record(resp, role, method, rule, variant, url, params, world, **extra) -> Hit:
    hit = Hit(role, method, rule.rule, variant, url, params, resp.status_code, resp.headers.get("Location", ""),
              resp.headers.get("Content-Type", ""), dict(resp.headers), _text(resp),
              is_foreign(world, role, params), error=APP_ERRORS.take(), **extra)
    resp.close()
    return hit


def _variants(role: str) -> tuple[str, ...]:
    # Every object variant for the reviewer; staff see every nomination, so own + someone else's suffice.
    return VARIANTS if role in ("reviewer", "nominator", "anonymous") else ("own", "other")


@pytest.fixture(scope="module")
def get_walk(demo_template, tmp_path_factory):
    app = demo_copy(demo_template, tmp_path_factory.mktemp("get-walk"))
    APP_ERRORS.listen(app)
    world = prepare_world(app)
    with no_background_jobs():
        walk = _walk_gets(app, world)
    yield walk
    dispose(app)


def _walk_gets(app, world) -> Walk:
    clients = {role: signed_in(app, role)[0] for role in ROLES}
    walk = Walk(app, world, [], audit_before=audit_count(app))
    for role, client in clients.items():
        for rule in walkable_rules(app):
            if "GET" not in rule.methods:
                continue
            for variant, url, params in concrete_urls(app, rule, world, _variants(role)):
                hit = _record(client.get(url), role, "GET", rule, variant, url, params, world)
                walk.hits.append(hit)
                if hit.status == 200 and hit.content_type.startswith("text/html"):
                    # the same page as an htmx partial: a fragment must obey the same rules
                    walk.hits.append(_record(client.get(url, headers={"HX-Request": "true"}), role, "GET", rule,
                                             variant, url, params, world, htmx=True))
    _walk_links(app, world, clients, walk)
    walk.audit_after = audit_count(app)
    walk.forms = _forms_by_rule(app, walk.hits)
    return walk


HREF = re.compile(r'href="([^"#]+)"')


def _walk_links(app, world, clients, walk: Walk) -> None:
    """Some GET routes read their objects from the query string (…/pair?reviewer=&nomination=): request
    the first such link each page offers, as every role, and note when it is what the bare URL lacked."""
    walked = {h.url: h for h in walk.hits}
    links: dict[str, str] = {}
    for hit in list(walk.hits):
        if hit.status != 200 or hit.htmx or not hit.content_type.startswith("text/html"):
            continue
        for href in HREF.findall(hit.body):
            href = html.unescape(href)
            parts = urlsplit(href)
            if not parts.query or parts.netloc or not parts.path.startswith("/"):
                continue
            rule = rule_for(app, href, "GET")
            if rule is None or rule.endpoint == "static" or rule.rule in links:
                continue
            if rule.arguments and parts.path not in walked:
                continue  # path parameters of an object outside the variants: foreignness unknown
            links[rule.rule] = href
    for rule_text, href in sorted(links.items()):
        base = walked.get(urlsplit(href).path)
        variant, params = (base.variant, base.params) if base else ("own", {})
        for role, client in clients.items():
            rule = next(r for r in walkable_rules(app) if r.rule == rule_text)
            walk.hits.append(_record(client.get(href), role, "GET", rule, variant, href, params, world, query=True))
    for hit in walk.hits:
        if (hit.status == 404 and not hit.query and hit.expected == "ok" and any(
                q.query and q.role == hit.role and q.rule == hit.rule and q.outcome == "ok" for q in walk.hits)):
            hit.needs_query = True


def _forms_by_rule(app, hits: list[Hit]) -> dict[str, list[tuple[str, str]]]:
    """rule → default fields of the first form on any page that posts to it."""
    found: dict[str, list[tuple[str, str]]] = {}
    for hit in hits:
        if hit.status != 200 or not hit.content_type.startswith("text/html") or hit.htmx:
            continue
        for form in parse_forms(hit.body, "http://localhost" + hit.url):
            if form.method != "post":
                continue
            rule = rule_for(app, form.action, "POST")
            if rule is not None and rule.rule not in found:
                found[rule.rule] = [(k, v) for k, v in form.defaults() if k != "csrf_token"]
    return found


def _post_order(rule) -> tuple:
    # Signing out ends every session of the user: last.
    return (rule.rule == "/logout", rule.rule)


@pytest.fixture(scope="module")
def post_walk(get_walk, demo_template, tmp_path_factory):
    app = demo_copy(demo_template, tmp_path_factory.mktemp("post-walk"))
    APP_ERRORS.listen(app)
    world = prepare_world(app)
    with no_background_jobs():
        walk = _walk_posts(app, world, get_walk.forms)
    yield walk
    dispose(app)


def _walk_posts(app, world, forms) -> Walk:
    clients = {role: signed_in(app, role) for role in ROLES}
    walk = Walk(app, world, [], forms=forms)
    rules = sorted((r for r in walkable_rules(app) if set(methods_of(r)) & set(MUTATING_METHODS)), key=_post_order)
    for role, (client, token) in clients.items():
        for rule in rules:
            body = forms.get(rule.rule, [])
            for method in (m for m in methods_of(rule) if m in MUTATING_METHODS):
                for variant, url, params in concrete_urls(app, rule, world, _variants(role)):
                    before = audit_count(app)
                    resp = client.open(url, method=method, data=MultiDict([*body, ("csrf_token", token)]))
                    hit = _record(resp, role, method, rule, variant, url, params, world)
                    hit.audit_delta = audit_count(app) - before
                    walk.hits.append(hit)
    return walk


def _table(hits: list[Hit]) -> str:
    return "\n".join(h.line() for h in hits)


def _checked(*walks: Walk) -> list[Hit]:
    """Every hit of the walks except those of a known, reported issue (asserted on their own below)."""
    return [h for w in walks for h in w.hits if not known_issue(h)]


# ------------------------------------------------------------------------------------------- access

@pytest.mark.parametrize("role", ROLES)
def test_get_routes_follow_the_access_policy(get_walk, role):
    wrong = [h for h in _checked(get_walk) if h.role == role and not h.htmx and not h.matches()]
    assert not wrong, f"GET access as {role} differs from POLICY ({len(wrong)}):\n{_table(wrong)}"


@pytest.mark.parametrize("role", ROLES)
def test_post_routes_follow_the_access_policy(post_walk, role):
    wrong = [h for h in _checked(post_walk) if h.role == role and not h.matches()]
    assert not wrong, f"POST access as {role} differs from POLICY ({len(wrong)}):\n{_table(wrong)}"


def test_every_rule_was_walked_for_every_role(get_walk, post_walk):
    hits = get_walk.hits + post_walk.hits
    for rule in walkable_rules(get_walk.app):
        for method in methods_of(rule):
            roles = {h.role for h in hits if h.rule == rule.rule and h.method == method}
            assert roles == set(ROLES), f"{method} {rule.rule} walked only as {sorted(roles)}"


def test_policy_names_no_route_that_does_not_exist(get_walk):
    """A stale pattern would silently allow whatever route later takes its name."""
    assert set(get_walk.world.foreign) == set(FOREIGN), "FOREIGN must describe every role World.foreign covers"
    keys = [f"{m} {r.rule}" for r in walkable_rules(get_walk.app) for m in methods_of(r)]
    for role, spec in POLICY.items():
        for pattern in spec["allow"] + spec["except"]:
            assert any(fnmatch.fnmatchcase(k, pattern) for k in keys), f"POLICY[{role!r}] {pattern!r} matches no route"


def test_no_response_is_a_server_error(get_walk, post_walk):
    errors = [h for h in _checked(get_walk, post_walk) if h.status >= 500]
    assert not errors, "server errors:\n" + _table(errors)
    leaked = [h for h in _checked(get_walk, post_walk) if h.body and "Traceback (most recent call last)" in h.body]
    assert not leaked, "tracebacks in responses:\n" + _table(leaked)


def test_reviewer_gets_403_on_foreign_review_objects_and_200_on_own(get_walk, post_walk):
    hits = [h for h in _checked(get_walk, post_walk)
            if h.role == "reviewer" and h.rule.startswith("/review/") and "nomination_id" in h.params
            or h.role == "reviewer" and h.rule.startswith("/review/files/")]
    foreign = [h for h in hits if h.foreign]
    own_pages = [h for h in hits if not h.foreign and h.method == "GET" and not h.htmx]
    assert {h.variant for h in foreign} >= {"recused", "declared", "unassigned"}
    assert own_pages, "the walk did not open the reviewer's own nomination"
    wrong = [h for h in foreign if h.status != 403] + [h for h in own_pages if h.status != 200]
    assert not wrong, "reviewer on /review objects:\n" + _table(wrong)


def test_reviewer_cannot_fetch_another_reviewers_sheet_pdf(get_walk):
    world = get_walk.world
    other = [h for h in get_walk.hits if h.role == "reviewer" and h.rule.startswith("/reports/sheets/<int:reviewer_id>")]
    assert {h.params["reviewer_id"] for h in other} == {world.users["reviewer"], world.users["reviewer_b"]}
    for h in other:
        want = 200 if h.params["reviewer_id"] == world.users["reviewer"] else 403
        assert h.status == want, h.line()
        if want == 200:
            assert h.content_type == "application/pdf", h.line()


def test_refused_and_anonymous_posts_change_nothing(post_walk):
    changed = [h for h in post_walk.hits if h.expected != "ok" and h.audit_delta]  # known issues included
    assert not changed, "refused requests that wrote audit events:\n" + _table(changed)


def test_reviewer_cannot_write_a_sheet_for_a_foreign_nomination(post_walk):
    """The POST walk sent A's own score form (valid values, version, CSRF) to every foreign nomination."""
    world, app = post_walk.world, post_walk.app
    sent = [h for h in post_walk.hits if h.role == "reviewer" and h.rule.endswith("/sheet") and h.foreign]
    assert len(sent) >= 3
    assert any(k.startswith("score-") for k, _ in post_walk.forms.get(sent[0].rule, [])), "no score form found"
    foreign_ids = [world.nominations[k] for k in ("recused", "declared", "unassigned")]
    with app.app_context():
        rows = db.session.scalar(select(func.count(ReviewSheet.id)).where(
            ReviewSheet.reviewer_id == world.users["reviewer"], ReviewSheet.nomination_id.in_(foreign_ids)))
        b_sheet = db.session.get(ReviewSheet, world.sheets["other"])
        assert rows == 0
        assert b_sheet.comment == B_COMMENT and b_sheet.reviewer_id == world.users["reviewer_b"]
        assert db.session.scalar(select(func.count(Score.id)).where(Score.sheet_id == b_sheet.id)) > 0
        db.session.remove()


def test_get_requests_change_nothing(get_walk):
    assert get_walk.audit_after == get_walk.audit_before, "a GET request wrote audit events"


MARKERS = {B_COMMENT: "reviewer B's 评审意见", PHONE: "an unmasked contact phone",
           FOREIGN_TITLE: "the title of a 回避/unassigned nomination"}


def _leaks(hits: list[Hit]) -> list[str]:
    # The planted phone is on the nominator's own unit's nomination: its own data, shown in its own form.
    return [f"  {h.role} {h.method} {h.url} → {h.status}: {what}"
            for h in hits if h.role in ("reviewer", "nominator", "anonymous") and h.body
            for marker, what in MARKERS.items() if marker in h.body
            and not (h.role == "nominator" and marker == PHONE)]


def test_reviewer_and_nominator_pages_never_carry_foreign_data(get_walk, post_walk):
    leaks = _leaks(_checked(get_walk, post_walk))
    assert not leaks, "data shown to the wrong role:\n" + "\n".join(leaks)


def test_staff_do_see_the_planted_data(get_walk):
    """The leak test above must be able to fail: the markers are on pages staff can open."""
    bodies = " ".join(h.body or "" for h in get_walk.hits if h.role == "admin")
    assert B_COMMENT in bodies and PHONE in bodies and FOREIGN_TITLE in bodies


@pytest.mark.parametrize("key", [pytest.param(k, id=f"{k[0]} {k[1]} {k[2]}{' htmx' if k[3] else ''}")
                                 for k in KNOWN_ISSUES])
def test_reported_issue_stays_fixed(get_walk, post_walk, key):
    hits = [h for w in (get_walk, post_walk) for h in w.hits if known_issue(h) and
            (h.role, h.method, h.rule, h.htmx) == key]
    assert hits, f"no request matched {key}: the route is gone, remove the entry"
    wrong = [h for h in hits if h.status >= 500 or (not h.htmx and not h.matches())]
    leaks = _leaks(hits)
    assert not wrong and not leaks, _table(wrong) + "\n" + "\n".join(leaks)


# ------------------------------------------------------------------------------------------ headers

REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}


def _header_problems(h: Hit) -> list[str]:
    csp = h.headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    problems = []
    if not csp:
        problems.append("no Content-Security-Policy")
    if "unsafe-inline" in csp or "unsafe-eval" in csp:
        problems.append("CSP allows unsafe-inline/unsafe-eval")
    if directives.get("frame-ancestors") != ["'none'"]:
        problems.append("CSP frame-ancestors is not 'none'")
    if directives.get("script-src", directives.get("default-src")) != ["'self'"]:
        problems.append("script-src is not 'self'")
    if h.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if h.headers.get("Referrer-Policy") not in REFERRER_POLICIES:
        problems.append(f"Referrer-Policy {h.headers.get('Referrer-Policy')!r}")
    return problems


def test_every_response_carries_the_security_headers(get_walk, post_walk):
    bad = [f"  {h.role} {h.method} {h.url} → {h.status}: {', '.join(p)}"
           for h in _checked(get_walk, post_walk) if (p := _header_problems(h))]
    assert not bad, "missing security headers:\n" + "\n".join(bad[:60])


class _InlineFinder(HTMLParser):
    """What a CSP without 'unsafe-inline' would block: script/style bodies, on* handlers, style="",
    htmx's hx-on (evaluated as code) and javascript: URLs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._inside: str | None = None

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on") or name.startswith("hx-on"):
                self.found.append(f"<{tag} {name}=…>")
            elif name == "style":
                self.found.append(f'<{tag} style="{value}">')
            elif name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    "javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag in ("script", "style"):
            self._inside = tag

    def handle_endtag(self, tag):
        if tag == self._inside:
            self._inside = None

    def handle_data(self, data):
        if self._inside and data.strip():
            self.found.append(f"<{self._inside}> with content: {data.strip()[:60]!r}")


def test_html_has_no_inline_script_style_or_handlers(get_walk, post_walk):
    bad = []
    for h in _checked(get_walk, post_walk):
        if h.body is None or not h.content_type.startswith("text/html"):
            continue
        finder = _InlineFinder()
        finder.feed(h.body)
        bad += [f"  {h.role} {h.method} {h.url}{' (htmx)' if h.htmx else ''}: {f}" for f in dict.fromkeys(finder.found)]
    assert not bad, "inline code or styles the CSP blocks:\n" + "\n".join(dict.fromkeys(bad))


def test_inline_finder_catches_what_it_must():
    finder = _InlineFinder()
    finder.feed('<p onclick="x()" style="color:red">a</p><script>alert(1)</script><script src="/s.js"></script>'
                '<a href="javascript:go()">b</a><div hx-on:click="x">c</div><style>p{}</style>')
    assert len(finder.found) == 6, finder.found


# --------------------------------------------------------------------------------------------- CSRF

CSRF_MESSAGE = re.compile(r"缺少安全校验（CSRF）")


def test_every_mutating_route_refuses_a_missing_or_forged_csrf_token(demo_app):
    """As admin (and as reviewer on /review), every POST/PUT/PATCH/DELETE without a token, and with a
    token of another session, is answered 400 with the Chinese message and writes nothing."""
    world = prepare_world(demo_app)
    admin, _ = signed_in(demo_app, "admin")
    reviewer, _ = signed_in(demo_app, "reviewer")
    _, other_token = signed_in(demo_app, "chair")
    wrong, count = [], 0
    before = audit_count(demo_app)
    for rule in walkable_rules(demo_app):
        for method in (m for m in methods_of(rule) if m in MUTATING_METHODS):
            clients = [("admin", admin)] + ([("reviewer", reviewer)] if rule.rule.startswith("/review/") else [])
            for role, client in clients:
                for _, url, _params in concrete_urls(demo_app, rule, world, ("own",)):
                    for label, data, headers in (
                        ("no token", {}, {}),
                        ("no token, htmx", {}, {"HX-Request": "true"}),
                        ("another session's token", {"csrf_token": other_token}, {}),
                        ("another session's token in X-CSRFToken", {}, {"X-CSRFToken": other_token}),
                    ):
                        resp = client.open(url, method=method, data=data, headers=headers)
                        count += 1
                        body = resp.get_data(as_text=True)
                        if resp.status_code != 400 or not CSRF_MESSAGE.search(body):
                            wrong.append(f"  {role} {method} {url} ({label}): {resp.status_code}")
    assert count >= 20, "the app has fewer mutating routes than expected: is the walk broken?"
    assert not wrong, "mutating requests not refused for CSRF:\n" + "\n".join(wrong)
    assert audit_count(demo_app) == before


def test_csrf_protection_is_on_in_the_test_configuration(demo_app):
    assert demo_app.config.get("WTF_CSRF_ENABLED", True) is True
    assert demo_app.config.get("WTF_CSRF_CHECK_DEFAULT", True) is True
    from app.extensions import csrf

    # No view may opt out with @csrf.exempt unless it is listed (and justified) here.
    exempt = set(getattr(csrf, "_exempt_views", set())) | set(getattr(csrf, "_exempt_blueprints", set()))
    assert exempt == set(), f"CSRF-exempt views: {sorted(exempt)}"


# ----------------------------------------------------------------------------------- odds and ends

@pytest.mark.parametrize("path", ["/static/../app/config.py", "/static/..%2f..%2fapp%2fconfig.py",
                                  "/static/%2e%2e/%2e%2e/instance/kepu.sqlite3", "/static//etc/passwd",
                                  "/static/..\\app\\config.py"])
def test_static_serves_nothing_outside_static(demo_client, path):
    resp = demo_client.get(path, follow_redirects=True)  # "//" is first merged by a 308 redirect
    assert resp.status_code in (400, 404), f"{path} → {resp.status_code}"
    assert b"SECRET_KEY" not in resp.data and b"SQLite format" not in resp.data


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example",
                                    "\\\\evil.example", "javascript:alert(1)", "/%2F%2Fevil.example",
                                    " //evil.example", "http:evil.example"])
def test_sign_in_never_redirects_off_site(demo_app, target):
    client = demo_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    from tests.conftest import csrf_token_from

    resp = client.post("/login", query_string={"next": target}, data={
        "username": "expert1", "password": "kepu2024", "csrf_token": csrf_token_from(page)})
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.netloc in ("", "localhost") and location.scheme in ("", "http"), resp.headers["Location"]
    assert not resp.headers["Location"].lstrip().startswith(("//", "\\", "javascript:")), resp.headers["Location"]


# Just past PostgreSQL's INTEGER ids, and past SQLite's 64-bit integers.
BIG_IDS = ("2147483648", "18446744073709551616")


@pytest.mark.parametrize("backend", [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
])
def test_ids_beyond_the_column_range_are_not_found(app_factory, backend):
    from tests.factories import make_round, make_user

    app = app_factory()
    APP_ERRORS.listen(app)
    with app.app_context():
        make_round("reviewing")
        for role in ("admin", "chair", "reviewer"):
            make_user(f"big-{role}", role)
    clients = {role: signed_in(app, f"big-{role}") for role in ("admin", "chair", "reviewer")}
    failures = []
    for rule in walkable_rules(app):
        ints = [n for n, c in rule._converters.items() if isinstance(c, IntegerConverter)]
        if not ints:
            continue
        for method in methods_of(rule):
            role = next((r for r in ("admin", "chair", "reviewer") if allowed(r, method, rule.rule)), None)
            if role is None:
                continue
            client, token = clients[role]
            for big in BIG_IDS:
                params = {n: big if n in ints else sorted(getattr(c, "items", ["1"]))[0]
                          for n, c in rule._converters.items()}
                url = build_url(rule, params)
                resp = client.open(url, method=method, data={"csrf_token": token} if method != "GET" else None)
                if resp.status_code >= 500:
                    failures.append(f"  {role} {method} {url} → {resp.status_code}: {APP_ERRORS.take()[-100:]}")
                resp.close()
    assert not failures, f"{len(failures)} requests with out-of-range ids answered 500:\n" + "\n".join(failures)
