"""The audit log in words 科普部 staff use: Chinese action and field names, codes as their labels, ids
as the names they stand for, scores per criterion — never JSON.

Events store what the operation knew (codes, ids, criterion codes) so the record stays exact; the
wording is applied only when the log is read, so relabelling never rewrites history. Names are looked
up in a few batched queries per page (Names), not one per row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select

from app.extensions import db
from app.models import Criterion, Nomination, Nominator, ReviewSheet, Round, User
from app.models._base import CATEGORY_LABELS
from app.models.people import KIND_LABELS, ROLE_LABELS
from app.models.round import METHOD_LABELS, PHASE_LABELS

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
    "nomination.create": "新增推荐对象", "nomination.update": "修改推荐对象", "nomination.import": "导入推荐对象",
    "nomination.withdraw": "撤回推荐对象", "nomination.reinstate": "恢复推荐对象",
    "attachment.add": "上传附件", "attachment.import": "导入附件", "attachment.delete": "删除附件",
    "form_check.run": "运行形式审查", "form_finding.resolve": "形式审查：已修正", "form_finding.waive": "形式审查：豁免",
    "form_finding.reopen": "形式审查：重新打开",
    "sheet.save": "保存评分", "sheet.submit": "提交评分", "sheet.reopen": "退回评分表",
    "decision.set": "审定", "decision.prefill": "按名额预填审定", "decision.opinion": "修改审定意见",
    "round.opinion_templates": "修改审定意见模板", "round.approval_date": "设置审定日期", "round.seal": "上传印章",
    "ops.backup": "备份数据库", "ops.restore": "恢复数据库", "sheet.totals_repair": "修复评分表合计", "ranking.rebuild": "重算实时排名",
    # accounts of 推荐单位, the mail outbox
    "user.credential": "发放一次性密码/邀请链接", "user.invite_accept": "通过邀请链接设置密码",
    "user.first_password": "首次登录设置密码", "user.import": "批量导入推荐单位账号", "mail.resend": "重新发送邮件",
    # the portal's submission workflow
    "nomination.portal_save": "推荐单位保存草稿", "nomination.submit": "推荐单位提交",
    "nomination.portal_withdraw": "推荐单位撤回", "nomination.return": "退回修改", "nomination.accept": "受理",
    "attachment.stamped": "上传盖章件", "attachment.reorder": "调整照片顺序",
    "deadline.extend": "延长报送期限", "deadline.revoke": "取消延期",
    # 公示, objections, 通报
    "round.publicity": "设置公示期", "decision.revoke": "撤销推荐（公示异议）", "objection.file": "提出异议",
    "objection.accept": "受理异议", "objection.reject": "不予受理异议", "objection.note": "记录异议核实情况",
    "objection.conclude": "异议处理结果", "notice.settings": "修改表扬通报设置",
}
OBJECT_LABELS = {"user": "账号", "round": "评选批次", "criterion": "评分指标", "nominator": "推荐单位",
                 "nomination": "推荐对象", "review_sheet": "评分表", "decision": "审定", "form_finding": "形式审查",
                 "attachment": "附件", "database": "数据库", "mail": "邮件", "objection": "异议"}

FIELD_LABELS = {
    # accounts
    "username": "用户名", "display_name": "姓名", "role": "角色", "active": "启用", "affiliation_id": "所属单位",
    "email": "电子邮箱", "phone": "联系电话", "credential": "登录凭据", "mailed": "已发邮件", "expires_at": "有效期至",
    # nominators
    "name": "名称", "short_name": "简称", "kind": "类型", "position": "排序", "quota_unit": "组织单位名额",
    "quota_activity": "活动名额",
    # nominations (the form's own wording: app/intake/nominations.py)
    "title": "名称", "host": "主办单位", "contact_name": "联系人", "contact_title": "职务", "contact_phone": "联系电话",
    "address": "通讯地址", "event_count": "活动场数", "people_served": "服务人数", "summary": "情况简介",
    "recommendation": "推荐意见", "recommendation_date": "推荐日期", "received_date": "收到日期",
    "nominator_id": "推荐单位", "category": "类别", "status": "状态", "summary_original_length": "收到的简介字数",
    "nomination_id": "推荐对象",
    # rounds
    "year": "年度", "phase": "阶段", "deadline": "材料截止日期", "slots_unit": "优秀组织单位名额",
    "slots_activity": "优秀活动名额", "gaps": "确认时的未完成事项", "method": "计分方法", "quotas": "推荐名额", "assignment_mode": "分配方式",
    "reviewers_per_nomination": "每件专家数", "opinion_approve_template": "同意推荐意见模板",
    "opinion_decline_template": "不予推荐意见模板", "list_unordered": "名单排名不分先后",
    "approve": "同意推荐意见模板", "decline": "不予推荐意见模板", "approval_date": "审定日期", "seal_file": "印章文件",
    # rubric
    "code": "指标代码", "max_score": "满分", "step": "计分步长", "guidance": "评分说明", "order": "指标顺序",
    # review
    "reviewer": "专家账号", "reviewer_id": "专家", "values": "评分", "comment": "评语", "version": "版本",
    "k": "每件专家数", "cap": "每位专家上限", "added": "新增", "removed": "取消", "kept_with_sheets": "保留（已有评分）",
    "total": "分配总数", "short": "专家不足的推荐对象",
    # deliberation
    "outcome": "审定结果", "opinion": "审定意见", "override_reason": "调整理由",
    # 形式审查
    "rule": "问题类型", "note": "说明", "reopened": "重新打开", "auto_resolved": "自动解决",
    "open_blocking": "待处理（须修正）", "open_warnings": "待处理（提醒）",
    # imports
    "files": "文件", "created": "新增", "updated": "更新", "skipped": "跳过", "rejected": "不能导入",
    "unchanged": "未变", "created_names": "新增单位", "updated_names": "更新单位",
    # attachments
    "original_name": "文件名", "mime": "文件格式", "size_bytes": "大小", "width": "宽（像素）", "height": "高（像素）",
    "stored_name": "存储文件名",
    # backup, demo
    "engine": "数据库类型", "file": "备份文件", "bytes": "大小", "sha256": "SHA-256 校验值", "integrity": "完整性检查",
    "counts": "各表记录数", "source": "来源文件", "previous_saved_as": "原数据库另存为", "stage": "阶段",
    "nominators": "推荐单位数", "nominations": "推荐对象数", "assignments": "分配数", "submitted_sheets": "已提交评分表",
    "users": "账号数",
    # 公示, objections, 通报
    "publicity_start": "公示起始日期", "publicity_days": "公示工作日数", "publicity_end": "公示截止日期（手工）",
    "result": "处理结果", "attachment": "附件", "number": "发文字号", "recipients": "主送机关", "body_template": "正文模板",
    "值": "值",
}
# Where the same key means something else for one action.
ACTION_FIELD_LABELS = {
    "form_check.run": {"added": "新发现问题"},
    "nomination.import": {"created": "新增推荐对象", "updated": "更新推荐对象"},
    "nominator.import": {"created": "新增单位数", "updated": "更新单位数", "unchanged": "未变单位数"},
    "assignment.add": {"title": "推荐对象名称"}, "assignment.remove": {"title": "推荐对象名称"},
    "recusal.declare": {"title": "推荐对象名称"}, "recusal.withdraw": {"title": "推荐对象名称"},
    "criterion.create": {"name": "指标名称"}, "criterion.update": {"name": "指标名称"},
    "criterion.delete": {"name": "指标名称"},
}

STATUS_LABELS = {"active": "有效", "withdrawn": "已撤回", "draft": "草稿", "submitted": "已提交", "returned": "退回修改",
                 "open": "待处理", "resolved": "已解决", "waived": "已豁免",
                 # objections
                 "received": "待受理", "accepted": "已受理", "closed": "处理完毕"}
OUTCOME_LABELS = {"approve": "通过", "decline": "不通过"}
ATTACHMENT_KINDS = {"photo": "照片", "video": "视频", "stamped": "盖章件"}
MODE_LABELS = {"all": "全部专家评审", "balanced": "均衡分配"}
ENGINE_LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
_VALUE_LABELS = {
    "phase": PHASE_LABELS, "stage": PHASE_LABELS, "status": STATUS_LABELS, "role": ROLE_LABELS,
    "kind": {**KIND_LABELS, **ATTACHMENT_KINDS}, "method": METHOD_LABELS, "assignment_mode": MODE_LABELS,
    "outcome": OUTCOME_LABELS, "category": {**CATEGORY_LABELS, "all": "全部类别"}, "engine": ENGINE_LABELS,
}
_NOMINATOR_KEYS = ("nominator_id", "affiliation_id")
_SIZE_KEYS = ("size_bytes", "bytes")
_ID_LIST_KEYS = ("created", "updated")  # nomination.import: ids of the nominations


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def object_label(object_type: str) -> str:
    return OBJECT_LABELS.get(object_type, object_type)


def field_label(key: str, action: str = "", category: str | None = None) -> str:
    if category and key in ("title", "summary", "event_count"):
        from app.intake.nominations import field_label as nomination_field_label

        return nomination_field_label(key, category)
    return ACTION_FIELD_LABELS.get(action, {}).get(key) or FIELD_LABELS.get(key, key)


def number(value) -> str:
    """25.0 → 25, 12.5 → 12.5: scores as people write them."""
    if isinstance(value, float):
        return f"{value:g}" if value == value else "—"
    return str(value)


def _size(n) -> str:
    if not isinstance(n, (int, float)):
        return str(n)
    if n < 1024:
        return f"{n} 字节"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


class Names:
    """Ids → names for one page (or CSV chunk) of events, looked up in a handful of queries."""

    def __init__(self, events: Iterable = ()):
        self.users: dict[int, str] = {}
        self.nominators: dict[int, str] = {}
        self.nominations: dict[int, str] = {}
        self.categories: dict[int, str] = {}  # nomination id → category (its form's field names)
        self.sheets: dict[int, tuple[int, str, int, int]] = {}  # id → (round, category, reviewer, nomination)
        self.criteria: dict[tuple[int, str, str], str] = {}
        self.rounds: dict[int, str] = {}
        self._load(list(events))

    def _load(self, events) -> None:
        want: dict[str, set] = defaultdict(set)
        for e in events:
            if e.object_id is not None:
                want[e.object_type].add(e.object_id)
            for side in (e.before, e.after):
                if isinstance(side, dict):
                    for key in _NOMINATOR_KEYS:
                        if isinstance(side.get(key), int):
                            want["nominator"].add(side[key])
                    if isinstance(side.get("reviewer_id"), int):
                        want["user"].add(side["reviewer_id"])
                    if isinstance(side.get("nomination_id"), int):
                        want["nomination"].add(side["nomination_id"])
        if want["review_sheet"]:
            for sid, rid, cat, reviewer, nom in db.session.execute(
                    select(ReviewSheet.id, Nomination.round_id, Nomination.category, ReviewSheet.reviewer_id,
                           ReviewSheet.nomination_id)
                    .join(Nomination, Nomination.id == ReviewSheet.nomination_id)
                    .where(ReviewSheet.id.in_(want["review_sheet"]))):
                self.sheets[sid] = (rid, cat, reviewer, nom)
                want["user"].add(reviewer)
                want["nomination"].add(nom)
        rubric_keys = {(e.round_id, e.object_id) for e in events if e.object_type == "criterion"}
        rubric_keys |= {(e.round_id, None) for e in events if e.action == "criterion.reorder"}
        rounds = {s[0] for s in self.sheets.values()} | {r for r, _ in rubric_keys if r is not None}
        if rounds:
            for rid, cat, code, name in db.session.execute(
                    select(Criterion.round_id, Criterion.category, Criterion.code, Criterion.name)
                    .where(Criterion.round_id.in_(rounds))):
                self.criteria[(rid, cat, code)] = name
        if want["user"]:
            for uid, display, username in db.session.execute(
                    select(User.id, User.display_name, User.username).where(User.id.in_(want["user"]))):
                self.users[uid] = display or username
        if want["round"]:
            self.rounds = dict(db.session.execute(
                select(Round.id, Round.name).where(Round.id.in_(want["round"]))).all())
        if want["nominator"]:
            self.nominators = dict(db.session.execute(
                select(Nominator.id, Nominator.name).where(Nominator.id.in_(want["nominator"]))).all())
        if want["nomination"]:
            for nid, title, category in db.session.execute(
                    select(Nomination.id, Nomination.title, Nomination.category)
                    .where(Nomination.id.in_(want["nomination"]))):
                self.nominations[nid] = title
                self.categories[nid] = category

    def object_name(self, event) -> str:
        oid = event.object_id
        if oid is None:
            return ""
        if event.object_type == "user":
            return self.users.get(oid, "")
        if event.object_type == "nominator":
            return self.nominators.get(oid, "")
        if event.object_type == "round":
            return self.rounds.get(oid, "")
        if event.object_type == "nomination":
            return self.nominations.get(oid, "")
        if event.object_type == "review_sheet" and oid in self.sheets:
            _r, _c, reviewer, nom = self.sheets[oid]
            return f"{self.users.get(reviewer, '')} 评「{self.nominations.get(nom, '')}」"
        return ""

    def rubric_of(self, event, side: dict | None) -> tuple[int | None, str | None]:
        """The (round, category) whose criterion codes an event's values use."""
        if event.object_type == "review_sheet" and event.object_id in self.sheets:
            rid, cat, _rv, _n = self.sheets[event.object_id]
            return rid, cat
        category = side.get("category") if isinstance(side, dict) else None
        if category is None and event.object_type == "nomination":
            category = self.categories.get(event.object_id)
        return event.round_id, category


class Reader:
    """Formats one event's values: Reader(event, names).show(key, value)."""

    def __init__(self, event, names: Names):
        self.event = event
        self.names = names
        side = event.after if isinstance(event.after, dict) else event.before
        self.round_id, self.category = names.rubric_of(event, side)

    def label(self, key: str) -> str:
        category = self.category if self.event.object_type == "nomination" else None
        return field_label(key, self.event.action, category)

    def _criterion(self, code: str) -> str:
        return self.names.criteria.get((self.round_id, self.category, code), code)

    def show(self, key: str, value) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "是" if value else "否"
        if key in _VALUE_LABELS and isinstance(value, str):
            return _VALUE_LABELS[key].get(value, value)
        if key == "rule" and isinstance(value, str):
            from app.intake.form_check import rule_label

            return rule_label(value)
        if key in _NOMINATOR_KEYS and isinstance(value, int):
            return self.names.nominators.get(value, f"#{value}")
        if key == "reviewer_id" and isinstance(value, int):
            return self.names.users.get(value, f"#{value}")
        if key == "nomination_id" and isinstance(value, int):
            title = self.names.nominations.get(value)
            return f"{title}（#{value}）" if title else f"#{value}"
        if key in _SIZE_KEYS:
            return _size(value)
        if key == "values" and isinstance(value, dict):
            return "，".join(f"{self._criterion(code)} {number(v)}" for code, v in value.items()) or "（未评分）"
        if key == "order" and isinstance(value, list):
            return " → ".join(self._criterion(str(c)) for c in value)
        if key == "quotas" and isinstance(value, dict):
            return "；".join(f"{KIND_LABELS.get(kind, kind)}：" + ("，".join(
                f"{CATEGORY_LABELS.get(cat, cat)} {number(n)}" for cat, n in v.items()) if isinstance(v, dict)
                else number(v)) for kind, v in value.items())
        if key in _ID_LIST_KEYS and isinstance(value, list) and all(isinstance(v, int) for v in value):
            titles = [self.names.nominations.get(v, f"#{v}") for v in value[:5]]
            return f"{len(value)} 件" + (f"：{'、'.join(titles)}" + ("等" if len(value) > 5 else "") if value else "")
        if key == "gaps" and isinstance(value, dict):
            from app.rounds.preflight import GAP_LABELS

            return "，".join(f"{GAP_LABELS.get(code, code)} {number(n)} 项" for code, n in value.items()) or "（无）"
        if key == "short" and isinstance(value, int):
            return f"{value} 件"
        if isinstance(value, list):
            return "、".join(self.show(key, v) for v in value) or "（无）"
        if isinstance(value, dict):
            return "，".join(f"{self.label(str(k))} {self.show(str(k), v)}" for k, v in value.items()) or "（无）"
        if isinstance(value, float):
            return number(value)
        return str(value)

    def summary(self, side) -> str:
        """A whole before/after as one line of text (the CSV's columns)."""
        if side is None:
            return ""
        if not isinstance(side, dict):
            return self.show("值", side)
        return "；".join(f"{self.label(str(k))}：{self.show(str(k), v)}" for k, v in side.items())

