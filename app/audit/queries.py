"""Reading the audit log: filters (actor, action, object, dates), pages, readable diffs, CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from app.core.time import fmt_second
from app.extensions import db
from app.models import AuditEvent, User

PER_PAGE = 50
EXPORT_MAX_ROWS = 100_000
ACTION_LABELS = {
    "user.login": "登录", "user.logout": "退出", "user.create": "新建账号", "user.update": "修改账号",
    "user.set_password": "设置密码", "user.activate": "启用账号", "user.deactivate": "停用账号",
    "round.create": "新建批次", "round.settings": "修改批次设置", "round.phase": "推进阶段", "round.phase_back": "退回阶段",
    "criterion.create": "新增评分指标", "criterion.update": "修改评分指标", "criterion.delete": "删除评分指标",
    "criterion.reorder": "调整指标顺序",
    "nominator.create": "新增推荐单位", "nominator.update": "修改推荐单位", "nominator.delete": "删除推荐单位",
    "nominator.import": "导入推荐单位",
    "assignment.run_all": "分配：全部专家", "assignment.run_balanced": "分配：均衡分配", "assignment.add": "分配专家",
    "assignment.remove": "取消分配", "recusal.declare": "登记回避", "recusal.withdraw": "撤销回避",
    "demo.seed": "生成演示数据",
    # Other areas' actions, so the log reads in Chinese throughout; unknown codes are shown as they are.
    "nomination.create": "新增推荐对象", "nomination.update": "修改推荐对象", "nomination.import": "导入推荐对象",
    "nomination.withdraw": "撤回推荐对象", "nomination.reinstate": "恢复推荐对象",
    "attachment.add": "上传附件", "attachment.delete": "删除附件",
    "form_check.run": "运行形式审查", "form_finding.resolve": "形式审查：已修正", "form_finding.waive": "形式审查：豁免",
    "form_finding.reopen": "形式审查：重新打开",
    "sheet.save": "保存评分", "sheet.submit": "提交评分", "sheet.reopen": "退回评分表",
    "decision.set": "审定", "decision.prefill": "按名额预填审定", "decision.opinion": "修改审定意见",
    "round.opinion_templates": "修改审定意见模板", "round.approval_date": "设置审定日期", "round.seal": "上传印章",
    "ops.backup": "备份数据库", "ops.restore": "恢复数据库",
}
OBJECT_LABELS = {"user": "账号", "round": "评选批次", "criterion": "评分指标", "nominator": "推荐单位",
                 "nomination": "推荐对象", "review_sheet": "评分表", "decision": "审定", "form_finding": "形式审查",
                 "attachment": "附件", "database": "数据库"}
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
    # Dates are the office's local days; events are stored in UTC.
    return datetime.combine(d, time.min).astimezone().astimezone(UTC)


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
    if f.date_to:
        conds.append(AuditEvent.at < _local_midnight_utc(f.date_to + timedelta(days=1)))
    return conds


@dataclass
class Row:
    event: AuditEvent
    actor: str  # display name (username), or 系统

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
    def changes(self) -> list[Change]:
        return diff(self.event.before, self.event.after)


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
    result = db.session.execute(_select(f).offset((page - 1) * per_page).limit(per_page))
    return Page(rows=[Row(e, _actor_name(d, u)) for e, d, u in result], total=total, page=page, pages=pages)


def recent(limit: int = 8) -> list[Row]:
    """The newest events, for the dashboard."""
    return [Row(e, _actor_name(d, u)) for e, d, u in db.session.execute(_select(Filters()).limit(limit))]


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
    key: str
    before: str
    after: str
    kind: str  # added | removed | changed | same


def _show(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def diff(before, after) -> list[Change]:
    """Key by key: what was added, removed or changed. A one-sided event lists all its keys."""
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
        out.append(Change(key=str(key), before=_show(b.get(key)) if key in b else "",
                          after=_show(a.get(key)) if key in a else "", kind=kind))
    return out


# ---------------------------------------------------------------------------------------------
# CSV


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # Spreadsheet formula injection: a leading = + - @ would be evaluated by Excel.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(f: Filters) -> Iterator[str]:
    """UTF-8 with a BOM so Excel opens the Chinese text correctly; streamed in chunks."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow(["时间", "操作人", "操作", "动作代码", "对象类型", "对象编号", "批次", "变更前", "变更后", "理由"])
    stmt = _select(f).limit(EXPORT_MAX_ROWS).execution_options(yield_per=500)
    for n, (e, display, username) in enumerate(db.session.execute(stmt), start=1):
        writer.writerow([_cell(v) for v in (
            _local_text(e.at), _actor_name(display, username), ACTION_LABELS.get(e.action, e.action), e.action,
            OBJECT_LABELS.get(e.object_type, e.object_type), e.object_id, e.round_id,
            _show(e.before) if e.before is not None else "", _show(e.after) if e.after is not None else "", e.reason)])
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
