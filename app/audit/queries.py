"""Reading the audit log: filters (actor, action, object, dates), pages, readable diffs, CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from app.audit.readable import ACTION_LABELS, OBJECT_LABELS, Names, Reader  # noqa: F401 — the log's vocabulary
from app.core.spreadsheet_safety import neutralise
from app.core.time import BEIJING, fmt_second
from app.extensions import db
from app.models import AuditEvent, User

PER_PAGE = 50
EXPORT_MAX_ROWS = 100_000
EXPORT_CHUNK = 500
SYSTEM = "-"  # the actor filter's value for events without a user (command line, seeding)


@dataclass
class Filters:
    actor: str = ""  # username, or SYSTEM
    action: str = ""  # an exact action, or a prefix ending in '.' (e.g. 'assignment.')
    object_type: str = ""
    object_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None

    def as_args(self) -> dict:
        out = {"actor": self.actor, "action": self.action, "object_type": self.object_type,
               "object_id": self.object_id, "date_from": self.date_from, "date_to": self.date_to}
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in out.items() if v not in ("", None)}


def _local_midnight_utc(d: date) -> datetime:
    # Dates are Beijing days (what the page shows); events are stored in UTC. Not the server's own
    # zone: a server kept on UTC would otherwise cut every day eight hours late.
    return datetime.combine(d, time.min, tzinfo=BEIJING).astimezone(UTC)


def _conditions(f: Filters) -> list:
    conds = []
    if f.actor == SYSTEM:
        conds.append(AuditEvent.actor_id.is_(None))
    elif f.actor:
        conds.append(AuditEvent.actor_id == select(User.id).where(User.username == f.actor).scalar_subquery())
    if f.action.endswith("."):
        conds.append(AuditEvent.action.startswith(f.action, autoescape=True))
    elif f.action:
        conds.append(AuditEvent.action == f.action)
    if f.object_type:
        conds.append(AuditEvent.object_type == f.object_type)
    if f.object_id is not None:
        conds.append(AuditEvent.object_id == f.object_id)
    if f.date_from:
        conds.append(AuditEvent.at >= _local_midnight_utc(f.date_from))
    if f.date_to and f.date_to < date.max:  # "up to 9999-12-31" has no next day: no upper bound
        conds.append(AuditEvent.at < _local_midnight_utc(f.date_to + timedelta(days=1)))
    return conds


@dataclass
class Row:
    event: AuditEvent
    actor: str  # display name (username), or 系统
    names: Names = field(default_factory=Names, repr=False)

    @property
    def at_local(self) -> str:
        return _local_text(self.event.at)

    @property
    def action_label(self) -> str:
        return ACTION_LABELS.get(self.event.action, self.event.action)

    @property
    def object_label(self) -> str:
        return OBJECT_LABELS.get(self.event.object_type, self.event.object_type)

    @property
    def object_name(self) -> str:
        """What the object is called (a nomination's title, a person's name), where cheap to tell."""
        return self.names.object_name(self.event)

    @property
    def reader(self) -> Reader:
        return Reader(self.event, self.names)

    @property
    def changes(self) -> list[Change]:
        return diff(self.event.before, self.event.after, self.reader)


@dataclass
class Page:
    rows: list[Row]
    total: int
    page: int
    pages: int


def _select(f: Filters):
    actor = aliased(User)
    return (select(AuditEvent, actor.display_name, actor.username)
            .outerjoin(actor, actor.id == AuditEvent.actor_id)
            .where(*_conditions(f))
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))


def _local_text(at: datetime | None) -> str:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return fmt_second(at)


def _actor_name(display_name, username) -> str:
    if username is None:
        return "系统"
    return f"{display_name}（{username}）" if display_name and display_name != username else username


def search(f: Filters, page: int = 1, per_page: int = PER_PAGE) -> Page:
    total = db.session.scalar(select(func.count()).select_from(AuditEvent).where(*_conditions(f))) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    result = db.session.execute(_select(f).offset((page - 1) * per_page).limit(per_page)).all()
    return Page(rows=_rows(result), total=total, page=page, pages=pages)


def _rows(result) -> list[Row]:
    names = Names(e for e, _d, _u in result)
    return [Row(e, _actor_name(d, u), names) for e, d, u in result]


def recent(limit: int = 8) -> list[Row]:
    """The newest events, for the dashboard."""
    return _rows(db.session.execute(_select(Filters()).limit(limit)).all())


def choices() -> dict[str, list]:
    """What the filter selects offer: actions and object types present, and every account."""
    actions = list(db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
    types = list(db.session.scalars(select(AuditEvent.object_type).distinct().order_by(AuditEvent.object_type)))
    people = list(db.session.execute(select(User.username, User.display_name).order_by(User.username)))
    prefixes = sorted({a.split(".")[0] + "." for a in actions if "." in a})
    return {"actions": [(a, ACTION_LABELS.get(a, a)) for a in actions], "prefixes": prefixes,
            "object_types": [(t, OBJECT_LABELS.get(t, t)) for t in types], "actors": people}


# ---------------------------------------------------------------------------------------------
# Diffs


@dataclass
class Change:
    key: str  # the stored key (title, phase, values…)
    before: str
    after: str
    kind: str  # added | removed | changed | same
    label: str = ""  # the key in Chinese (名称, 阶段, 评分…)


def _plain_reader(before, after) -> Reader:
    event = SimpleNamespace(action="", object_type="", object_id=None, round_id=None, before=before, after=after)
    return Reader(event, Names())


def diff(before, after, reader: Reader | None = None) -> list[Change]:
    """Key by key: what was added, removed or changed, labelled and shown as text. A one-sided event
    lists all its keys."""
    reader = reader or _plain_reader(before, after)
    b = before if isinstance(before, dict) else ({} if before is None else {"值": before})
    a = after if isinstance(after, dict) else ({} if after is None else {"值": after})
    out = []
    for key in list(b) + [k for k in a if k not in b]:
        if key in b and key in a:
            kind = "same" if b[key] == a[key] else "changed"
        else:
            kind = "removed" if key in b else "added"
        if kind == "same" and before and after:
            continue
        k = str(key)
        out.append(Change(key=k, before=reader.show(k, b.get(key)) if key in b else "",
                          after=reader.show(k, a.get(key)) if key in a else "", kind=kind, label=reader.label(k)))
    return out


# ---------------------------------------------------------------------------------------------
# CSV


def _cell(value) -> str:
    return neutralise("" if value is None else str(value))


def export_csv(f: Filters) -> Iterator[str]:
    """UTF-8 with a BOM so Excel opens the Chinese text correctly; streamed in chunks, each chunk's
    names looked up together. Times are Beijing time, values the same text as the page."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow(["时间", "操作人", "操作", "动作代码", "对象类型", "对象编号", "批次", "变更前", "变更后", "理由",
                     "对象名称"])
    stmt = _select(f).limit(EXPORT_MAX_ROWS).execution_options(yield_per=EXPORT_CHUNK)
    for chunk in db.session.execute(stmt).partitions(EXPORT_CHUNK):
        for row in _rows(chunk):
            e, reader = row.event, row.reader
            writer.writerow([_cell(v) for v in (
                _local_text(e.at), row.actor, row.action_label, e.action, row.object_label, e.object_id, e.round_id,
                reader.summary(e.before), reader.summary(e.after), e.reason, row.object_name)])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()
