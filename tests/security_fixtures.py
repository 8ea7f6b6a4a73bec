"""The attack-surface world: a copy of the demo round (stage reviewing) with one object of every kind a
route can name, signed-in clients for every role, and a way to turn any rule of `app.url_map` into
concrete URLs — so routes added later are walked without anyone listing them.

Reviewer A is expert4 (affiliated with 长沙市科协: its nominations are 回避 for them); reviewer B is
expert1, whose sheet on A's nomination is "someone else's object" for A.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import re
import shutil
import traceback
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from unittest import mock
from urllib.parse import urljoin, urlsplit

from flask import Flask
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule
from werkzeug.routing.converters import AnyConverter, IntegerConverter

from app import create_app
from app.core import storage
from app.deliberation import operations as decisions
from app.extensions import db
from app.intake import importer
from app.models import (
    Assignment,
    Attachment,
    AuditEvent,
    Criterion,
    Decision,
    FormFinding,
    Nomination,
    Nominator,
    OutboxMessage,
    Recusal,
    ReviewSheet,
    Round,
    User,
)
from app.reports import jobs
from tests.conftest import _base_config, csrf_token_from, login  # one config for every demo copy
from tests.factories import make_nomination

ROLES = ("anonymous", "nominator", "reviewer", "chair", "admin")
USERNAMES = {"nominator": "tuijian1", "reviewer": "expert4", "chair": "chair", "admin": "admin"}
REVIEWER_B = "expert1"
SECOND_ADMIN = "admin2"
# Planted where reviewer A must never read them (B's 评审意见, an unmasked phone, titles A may not see).
B_COMMENT = "乙专家私人意见-MARKER-B7Q"
PHONE = "13987654321"
FOREIGN_TITLE = "未分配推荐对象-MARKER-U3X"
# Object variants a rule is requested with; "own" is the baseline every role gets.
VARIANTS = ("own", "other", "recused", "declared", "unassigned")
MUTATING_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class World:
    round_id: int
    users: dict[str, int]
    nominations: dict[str, int]  # variant → nomination id
    attachments: dict[str, int]  # variant → attachment id (of that variant's nomination)
    sheets: dict[str, int]  # "own" → reviewer A's sheet, "other" → reviewer B's (same nomination)
    findings: dict[str, int]
    nominator_of: dict[str, int]
    criterion_id: int
    decision_id: int
    job_id: str
    tokens: dict[str, str]  # import previews: "own" belongs to admin, "other" to admin2
    upload_root: str
    # role → {(parameter, value)} that name someone else's object for that role
    foreign: dict[str, set] = field(default_factory=dict)

    def values(self, variant: str) -> dict[str, object]:
        """Parameter name → value for one object variant (falls back to "own" where it has none)."""
        def pick(table: dict):
            return table.get(variant, table["own"])

        return {
            "nomination_id": pick(self.nominations),
            "attachment_id": pick(self.attachments),
            "sheet_id": pick(self.sheets),
            "reviewer_id": self.users["reviewer"] if variant != "other" else self.users["reviewer_b"],
            "user_id": self.users["reviewer"] if variant != "other" else self.users["reviewer_b"],
            "nominator_id": pick(self.nominator_of),
            "finding_id": pick(self.findings),
            "criterion_id": self.criterion_id,
            "decision_id": self.decision_id,
            "job_id": self.job_id,
            "token": pick(self.tokens),
        }


# --------------------------------------------------------------------------------------------- the app

def demo_copy(template_path, folder) -> Flask:
    """A private copy of the session's demo database (stage reviewing) with its own uploads folder."""
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, "kepu.sqlite3")
    shutil.copy(template_path, target)
    return create_app(_base_config(Path(folder), "sqlite:///" + target))


def dispose(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def jpeg_bytes(color=(30, 120, 200)) -> tuple[bytes, Image.Image]:
    image = Image.new("RGB", (64, 48), color)
    buf = io.BytesIO()
    image.save(buf, "JPEG")
    return buf.getvalue(), image


def seal_png() -> bytes:
    buf = io.BytesIO()
    seal = Image.new("RGBA", (200, 200), (0, 0, 0, 0))  # a seal has a transparent background
    seal.paste((200, 0, 0, 255), (20, 20, 180, 180))
    seal.save(buf, "PNG")
    return buf.getvalue()


def _attach_photo(nomination_id: int) -> int:
    data, image = jpeg_bytes()
    att = Attachment(nomination_id=nomination_id, kind="photo", stored_name=storage.save_bytes(data, "jpg"),
                     thumb_name=storage.save_thumbnail(image), original_name="现场照片.jpg", mime="image/jpeg",
                     size_bytes=len(data), width=64, height=48, position=9)
    db.session.add(att)
    db.session.flush()
    return att.id


def _quick_user(username: str, role: str, like: User) -> User:
    # Reuses an existing scrypt hash of the demo password: hashing afresh costs a second per user.
    user = User(username=username, display_name=username.upper(), role=role, password_hash=like.password_hash)
    db.session.add(user)
    db.session.flush()
    return user


def prepare_world(app: Flask) -> World:
    with app.app_context():
        rnd = db.session.scalar(select(Round).order_by(Round.id.desc()))
        by_name = {u.username: u for u in db.session.scalars(select(User))}
        a, b, admin = by_name[USERNAMES["reviewer"]], by_name[REVIEWER_B], by_name["admin"]
        assert a.affiliation_id is not None, "reviewer A must have an affiliation for the 回避 variant"
        nominator_user = _quick_user(USERNAMES["nominator"], "nominator", a)
        admin2 = _quick_user(SECOND_ADMIN, "admin", a)

        # own: a nomination both A and B have a sheet on (B's sheet is the foreign object)
        bs = aliased(ReviewSheet)
        a_sheet, b_sheet = db.session.execute(
            select(ReviewSheet, bs.id).join(bs, bs.nomination_id == ReviewSheet.nomination_id)
            .where(ReviewSheet.reviewer_id == a.id, bs.reviewer_id == b.id)
            # A's draft, so the page carries the score form a reviewer could replay elsewhere
            .order_by((ReviewSheet.status == "draft").desc(), ReviewSheet.id).limit(1)
        ).one()
        own = db.session.get(Nomination, a_sheet.nomination_id)
        a_sheet.status, a_sheet.submitted_at = "draft", None
        db.session.get(ReviewSheet, b_sheet).comment = B_COMMENT
        own.contact_phone = PHONE

        # recused: one of A's own unit's nominations — assigned anyway (an admin's slip must not matter)
        recused = db.session.scalar(select(Nomination).where(
            Nomination.nominator_id == a.affiliation_id, Nomination.round_id == rnd.id,
            Nomination.status == "active").order_by(Nomination.id))
        db.session.add(Assignment(reviewer_id=a.id, nomination_id=recused.id))
        recused.title = FOREIGN_TITLE + "（回避）"

        # declared: assigned to A, then A declared a conflict
        declared = db.session.scalar(select(Nomination).join(Assignment, Assignment.nomination_id == Nomination.id)
                                     .where(Assignment.reviewer_id == a.id, Nomination.id != own.id,
                                            Nomination.category == own.category)
                                     .order_by(Nomination.id.desc()))
        db.session.add(Recusal(reviewer_id=a.id, nomination_id=declared.id, reason="曾参与该活动的组织"))

        # The nominator account speaks for the unit of A's own nomination (its "own" object); the
        # unassigned nomination belongs to a third unit, foreign to both.
        nominator_user.affiliation_id = own.nominator_id
        other_unit = db.session.scalar(select(Nominator).where(Nominator.id.not_in((a.affiliation_id, own.nominator_id)))
                                       .order_by(Nominator.id))
        db.session.commit()
        unassigned = make_nomination(rnd, other_unit, FOREIGN_TITLE, category=own.category)

        noms = {"own": own.id, "recused": recused.id, "declared": declared.id, "unassigned": unassigned.id}
        attachments = {k: _attach_photo(v) for k, v in noms.items()}
        findings = {}
        for k, nid in noms.items():
            found = db.session.scalar(select(FormFinding.id).where(FormFinding.nomination_id == nid)
                                      .order_by(FormFinding.id))
            if found is None:
                f = FormFinding(round_id=rnd.id, nomination_id=nid, rule="security-test", message="测试用形式审查问题",
                                blocking=False)
                db.session.add(f)
                db.session.flush()
                found = f.id
            findings[k] = found
        criterion_id = db.session.scalar(select(func.min(Criterion.id)).where(Criterion.round_id == rnd.id))
        decision = Decision(nomination_id=own.id, outcome="approve", opinion="经审定，同意推荐。",
                            decided_by_id=by_name["chair"].id)
        db.session.add(decision)
        # A message in the outbox, so /admin/mail/<id> is walked with a real object
        db.session.add(OutboxMessage(to_addr="unit@example.cn", subject="测试邮件", body="测试", status="outbox"))
        db.session.commit()

        decisions.save_seal(rnd.id, seal_png(), actor=admin)
        job = jobs.submit("list", "xlsx", rnd.id, None, label="审定通过名单（Excel）", user=admin)
        jobs.wait(job.id, timeout=60)
        tokens = {}
        for key, owner in (("own", admin), ("other", admin2)):
            token, _ = importer.new_preview([("空白.xlsx", b"not really a workbook")], user_id=owner.id,
                                            round_id=rnd.id, nominator_id=None, received=date(2024, 10, 1))
            tokens[key] = token

        unit_of = {k: db.session.get(Nomination, nid).nominator_id for k, nid in noms.items()}
        users = {"reviewer": a.id, "reviewer_b": b.id, "chair": by_name["chair"].id, "admin": admin.id,
                 "admin2": admin2.id, "nominator": nominator_user.id}
        world = World(
            round_id=rnd.id, users=users, nominations=noms, attachments=attachments,
            sheets={"own": a_sheet.id, "other": b_sheet}, findings=findings,
            nominator_of={"own": own.nominator_id, "other": a.affiliation_id},
            criterion_id=criterion_id, decision_id=decision.id, job_id=job.id, tokens=tokens,
            upload_root=storage.upload_dir(),
        )
        world.foreign = {
            "reviewer": {("nomination_id", noms[k]) for k in ("recused", "declared", "unassigned")}
            | {("attachment_id", attachments[k]) for k in ("recused", "declared", "unassigned")}
            | {("sheet_id", b_sheet), ("reviewer_id", b.id), ("user_id", b.id)},
            # A 推荐单位 sees its own unit's nominations and files, nobody else's.
            "nominator": {("nomination_id", noms[k]) for k, nid in noms.items() if unit_of[k] != own.nominator_id}
            | {("attachment_id", attachments[k]) for k in noms if unit_of[k] != own.nominator_id},
            "admin": {("token", tokens["other"])},
            "chair": {("token", tokens["other"])},
        }
        return world


class ErrorLog(logging.Handler):
    """Keeps what the app's error handler logs, so a 500 in a report comes with its exception."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record):
        if record.exc_info:
            lines = traceback.format_exception(*record.exc_info)
            self.last = " | ".join(line.strip().replace("\n", " ") for line in lines[-3:])

    def listen(self, app: Flask) -> None:
        if self not in app.logger.handlers:
            app.logger.addHandler(self)

    def take(self) -> str:
        last, self.last = self.last, ""
        return last


APP_ERRORS = ErrorLog()

# 500s the walk and the fuzzing found (all fixed since). Each stays as a regression case replayed by
# test_form_fuzz.py::test_reported_500_stays_fixed.
INT_GUARD = "invalid literal for int() with base 10"  # str.isdigit() is true for "²", int() refuses it
SQLITE_INT = "too large to convert to SQLite INTEGER"  # an id ≥ 2**63 reaches the database


@dataclass(frozen=True)
class KnownError:
    key: str
    role: str
    method: str
    url: str  # "{own}" is the reviewer's own nomination
    data: tuple = ()
    htmx: bool = False
    path: str = ""  # regex on the request path, for the fuzzing's tolerance
    signature: str = ""
    why: str = ""


KNOWN_ERRORS = [
    KnownError("review-queue-huge-nominator", "reviewer", "GET", "/review/?nominator=99999999999999999999",
               path=r"^/review/$", signature=SQLITE_INT,
               why="app/review/views.py queue: request.args.get('nominator', type=int) has no upper bound"),
    KnownError("intake-list-huge-nominator", "admin", "GET", "/intake/?nominator=99999999999999999999",
               path=r"^/intake/$", signature=SQLITE_INT, why="app/intake/views.py index: _int() has no upper bound"),
    KnownError("intake-new-huge-nominator", "admin", "POST", "/intake/new?category=unit",
               (("nominator_id", "99999999999999999999"), ("title", "测试")), path=r"^/intake/", signature=SQLITE_INT,
               why="intake create: nominator_id is looked up without an upper bound"),
    KnownError("intake-htmx-csrf-macro", "admin", "GET", "/intake/{own}", htmx=True, path=r"^/intake/",
               signature="'csrf' is undefined",
               why="intake/detail.html, import.html, preview.html: block 'page' (rendered alone for htmx) calls "
                   "csrf(), imported at the top of the template only"),
    KnownError("audit-page-number", "admin", "GET", "/admin/audit?page=²", path=r"^/admin/audit",
               signature=INT_GUARD, why="app/audit/views.py _page_number: isdigit() then int()"),
    KnownError("audit-object-id", "admin", "GET", "/admin/audit?object_id=²", path=r"^/admin/audit",
               signature=INT_GUARD, why="app/audit/queries.py parse_filters: isdigit() then int()"),
    KnownError("assignments-page-number", "admin", "GET", "/admin/assignments?page=²", path=r"^/admin/assignments",
               signature=INT_GUARD, why="app/review/assignment_views.py _int: isdigit() then int()"),
    KnownError("assignments-cell", "admin", "POST", "/admin/assignments/cell", (("cell", "3-²"),),
               path=r"^/admin/assignments", signature=INT_GUARD,
               why="app/review/assignment_views.py _pair: isdigit() then int()"),
    KnownError("assignments-cell-huge", "admin", "POST", "/admin/assignments/cell",
               (("cell", "99999999999999999999-1"),), path=r"^/admin/assignments", signature=SQLITE_INT,
               why="app/review/assignment_views.py _pair: no upper bound"),
    KnownError("assignments-page-rows", "admin", "POST", "/admin/assignments/page",
               (("category", "unit"), ("page", "1"), ("row", "²"), ("col", "3")), path=r"^/admin/assignments",
               signature=INT_GUARD, why="app/review/assignment_views.py _int: isdigit() then int()"),
    KnownError("users-affiliation", "admin", "POST", "/admin/users",
               (("username", "fuzz1"), ("display_name", "测试"), ("role", "reviewer"), ("password", "abcdefgh12345"),
                ("affiliation_id", "²")), path=r"^/admin/users", signature=INT_GUARD,
               why="app/accounts/operations.py (create and update): aff.isdigit() then int()"),
    KnownError("users-affiliation-huge", "admin", "POST", "/admin/users",
               (("username", "fuzz2"), ("display_name", "测试"), ("role", "reviewer"), ("password", "abcdefgh12345"),
                ("affiliation_id", "99999999999999999999")), path=r"^/admin/users", signature=SQLITE_INT,
               why="app/accounts/operations.py: affiliation_id looked up without an upper bound"),
]


def known_error(path: str, htmx: bool, error: str) -> KnownError | None:
    """A 500 the fuzzing may note instead of failing on, while it is being fixed. Every reported one is
    fixed, so none is tolerated now; add a matching rule here only together with a KNOWN_ERRORS entry."""
    return None


def no_background_jobs():
    """Report jobs stay queued instead of rendering PDFs inside the request (JOBS_IMMEDIATE in tests): the
    walks and the fuzzing test the request, not the renderer (tests/unit/test_reports_* do that)."""
    return mock.patch.object(jobs, "_enqueue", lambda job_id: None)


def audit_count(app: Flask) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count(AuditEvent.id)))
        db.session.remove()
        return n


# ----------------------------------------------------------------------------------------- clients

def signed_in(app: Flask, role: str):
    """A test client signed in as `role` (anonymous: a fresh client), with its CSRF token."""
    client = app.test_client()
    if role == "anonymous":
        return client, csrf_token_from(client.get("/login").get_data(as_text=True))
    resp = login(client, USERNAMES[role] if role in USERNAMES else role)
    assert resp.status_code == 303, f"sign-in as {role} failed: {resp.status_code}"
    return client, csrf_token_from(client.get("/account").get_data(as_text=True))


# ------------------------------------------------------------------------------------------ routes

def walkable_rules(app: Flask) -> list[Rule]:
    return sorted((r for r in app.url_map.iter_rules() if r.endpoint != "static"), key=lambda r: (r.rule, r.endpoint))


def methods_of(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def _table_row_id(param: str) -> int:
    """A real id from the table the parameter's name suggests (decision_id → decisions), else 1."""
    stem = param[:-3] if param.endswith("_id") else param
    for table in db.metadata.sorted_tables:
        if table.name in (stem + "s", stem + "es", stem) or table.name.endswith("_" + stem + "s"):
            found = db.session.scalar(select(func.min(table.c.id)))
            if found is not None:
                return found
    return 1


def _candidates(param: str, converter, values: dict) -> list:
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)
    if param in values:
        return [values[param]]
    if isinstance(converter, IntegerConverter):
        return [_table_row_id(param)]
    return ["1"]


def concrete_urls(app: Flask, rule: Rule, world: World, variants=VARIANTS) -> list[tuple[str, str, dict]]:
    """(variant, url, parameter values) for each distinct URL the rule gives over the object variants;
    AnyConverter parameters are expanded to every allowed value."""
    seen, out = set(), []
    with app.app_context():
        for variant in variants:
            values = world.values(variant)
            names = sorted(rule.arguments)
            choices = [_candidates(n, rule._converters.get(n), values) for n in names]
            for combo in itertools.product(*choices):
                params = dict(zip(names, combo, strict=True))
                url = build_url(rule, params)
                if url not in seen:
                    seen.add(url)
                    out.append((variant, url, params))
        db.session.remove()
    return out


def build_url(rule: Rule, params: dict) -> str:
    # Built from the rule text rather than url_for: several rules may share one endpoint.
    def sub(m):
        return str(params[m.group("name")])

    return re.sub(r"<(?:[^:<>]+(?:\([^)]*\))?:)?(?P<name>\w+)>", sub, rule.rule)


def is_foreign(world: World, role: str, params: dict) -> bool:
    return any((k, v) in world.foreign.get(role, set()) for k, v in params.items())


# ------------------------------------------------------------------------------------------- forms

@dataclass
class FormField:
    name: str
    kind: str  # input type, "select", "textarea" or "button"
    value: str = ""
    options: tuple[str, ...] = ()
    multiple: bool = False
    checked: bool = False


@dataclass
class Form:
    page: str
    action: str
    method: str
    enctype: str
    fields: list[FormField]
    htmx_only: bool = False  # an hx-post on an element outside any <form>

    def defaults(self) -> list[tuple[str, str]]:
        """What a browser would send unchanged: checked boxes, selected options, the first submit button."""
        out, pressed = [], False
        for f in self.fields:
            if f.kind == "button":
                if not pressed and f.name:
                    out.append((f.name, f.value))
                pressed = True
            elif f.kind in ("checkbox", "radio"):
                if f.checked:
                    out.append((f.name, f.value))
            elif f.kind == "file":
                continue
            elif f.kind == "select":
                out.append((f.name, f.value if f.value is not None else (f.options[0] if f.options else "")))
            else:
                out.append((f.name, f.value))
        return out


class _FormParser(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: FormField | None = None
        self._option: list | None = None
        self._textarea: FormField | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            method = (a.get("method") or "get").lower()
            action = a.get("action") or a.get("hx-post") or self.page
            if "hx-post" in a and "method" not in a:
                method = "post"
            self._form = Form(self.page, urljoin(self.page, action), method,
                              (a.get("enctype") or a.get("hx-encoding") or "").lower(), [])
            self.forms.append(self._form)
            return
        if self._form is None:
            hx = next((a[k] for k in ("hx-post", "hx-put", "hx-patch", "hx-delete") if k in a), None)
            if hx is not None:
                fields = [FormField(a["name"], "hidden", a.get("value", ""))] if a.get("name") else []
                try:
                    fields += [FormField(k, "hidden", str(v)) for k, v in json.loads(a.get("hx-vals") or "{}").items()]
                except ValueError:
                    pass
                self.forms.append(Form(self.page, urljoin(self.page, hx), "post", "", fields, htmx_only=True))
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if not a.get("name") and kind not in ("submit", "image"):
                return
            if kind in ("submit", "image"):
                self._form.fields.append(FormField(a.get("name", ""), "button", a.get("value", "")))
            elif kind in ("checkbox", "radio"):
                self._form.fields.append(FormField(a["name"], kind, a["value"] if "value" in a else "on",
                                                   checked="checked" in a))
            else:
                self._form.fields.append(FormField(a["name"], kind, a.get("value", "")))
        elif tag == "button":
            if (a.get("type") or "submit").lower() == "submit":
                self._form.fields.append(FormField(a.get("name", ""), "button", a.get("value", "")))
        elif tag == "select" and a.get("name"):
            self._select = FormField(a["name"], "select", None, (), "multiple" in a)
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._end_option()
            self._option = [a.get("value"), "", "selected" in a]  # value attribute, text, selected
        elif tag == "textarea" and a.get("name"):
            self._textarea = FormField(a["name"], "textarea", "")
            self._form.fields.append(self._textarea)

    def _end_option(self):
        if self._option is None:
            return
        value, text, selected = self._option
        self._option = None
        value = text.strip() if value is None else value
        sel = self._select
        sel.options = (*sel.options, value)
        if selected or sel.value is None:
            sel.value = value

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea.value += data
        elif self._option is not None:
            self._option[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None:
            self._end_option()
            self._select = None
        elif tag == "option" and self._select is not None:
            self._end_option()
        elif tag == "textarea":
            self._textarea = None


def parse_forms(html: str, page: str) -> list[Form]:
    parser = _FormParser(page)
    parser.feed(html)
    parser.close()
    return parser.forms


def rule_for(app: Flask, url: str, method: str) -> Rule | None:
    """The url_map rule a form's action lands on (None for another site or an unknown path)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return None
    try:
        rule, _ = app.url_map.bind("localhost").match(parts.path, method=method.upper(), return_rule=True)
    except HTTPException:
        return None
    return rule
