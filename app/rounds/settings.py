"""A round's settings (slots, quotas, method, deadline, assignment defaults, 审定意见 templates), its
rubric while scoring has not opened, and the dashboard's overview counts. Input arrives parsed and
typed (rounds/forms.py holds the field rules and limits); what is checked here needs the database.
The phase rules live in rounds/phases.py."""

from __future__ import annotations

import string
from datetime import date

from sqlalchemy import func, select

from app.audit import operations as audit
from app.core.database import write_transaction
from app.core.errors import Conflict, UserError
from app.extensions import db
from app.models import (
    CATEGORY_LABELS,
    Assignment,
    Criterion,
    FormFinding,
    Nomination,
    Nominator,
    RankingCounter,
    ReviewSheet,
    Round,
    Score,
    User,
)
from app.models.round import DEFAULT_QUOTAS, default_criteria, default_quotas
from app.rounds import phases as rounds

NAME_MAX = 100
SLOTS_MAX = 999
QUOTA_MAX = 99
K_MAX = 50
TEMPLATE_MAX = 500
PLACEHOLDERS = ("year", "category")
RUBRIC_PHASES = ("setup", "collecting")
TEMPLATE_PHASES = ("setup", "collecting", "reviewing", "deliberating")
CRITERION_NAME_MAX = 50
GUIDANCE_MAX = 1000
CRITERION_MAX_SCORE = 100
CRITERIA_PER_CATEGORY = 12
SETTING_LABELS = {
    "name": "批次名称", "deadline": "材料截止日期", "slots_unit": "优秀组织单位名额", "slots_activity": "优秀活动名额",
    "method": "计分方法", "quotas": "推荐名额", "assignment_mode": "分配方式", "reviewers_per_nomination": "每件专家数",
    "opinion_approve_template": "同意推荐意见模板", "opinion_decline_template": "不予推荐意见模板",
"list_unordered": "名单排名不分先后",
}


def _as_dict(stmt) -> dict:
    """Two-column query -> dict (dict(result) would treat the Result as a mapping)."""
    return {a: b for a, b in db.session.execute(stmt)}


def _settings(rnd: Round) -> dict:
    return {
        "name": rnd.name, "deadline": rnd.deadline.isoformat() if rnd.deadline else None,
        "slots_unit": rnd.slots_unit, "slots_activity": rnd.slots_activity, "method": rnd.method,
        "quotas": {kind: dict(v) for kind, v in (rnd.quotas or DEFAULT_QUOTAS).items()},
        "assignment_mode": rnd.assignment_mode, "reviewers_per_nomination": rnd.reviewers_per_nomination,
        "opinion_approve_template": rnd.opinion_approve_template,
        "opinion_decline_template": rnd.opinion_decline_template,
        "list_unordered": bool(rnd.list_unordered),
    }


def check_template(text: str) -> str | None:
    """None if the 审定意见 template is usable, else why not. Only {year} and {category} may appear."""
    if not text:
        return "不能为空"
    if len(text) > TEMPLATE_MAX:
        return f"不能超过 {TEMPLATE_MAX} 个字符"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError:
        return "花括号不匹配（占位符只能写 {year} 或 {category}）"
    bad = [f for f in fields if f not in PLACEHOLDERS]
    if bad:
        return f"未知占位符 {{{bad[0]}}}（只能用 {{year}} 表示年份、{{category}} 表示类别）"
    return None


def update_settings(round_id: int, values: dict, *, version: int, actor=None) -> Round:
    """Save the settings form's typed values (keys of SETTING_LABELS), based on the round `version`
    the form was rendered from. Refused once final, or when someone saved the round since (409);
    ranking-relevant changes bump the live ranking."""
    unknown = set(values) - set(SETTING_LABELS)
    if unknown:
        raise ValueError(f"not round settings: {sorted(unknown)}")
    with write_transaction():
        rnd = rounds.get(round_id, lock=True)
        if rnd.phase == "final":
            raise UserError("评选批次已定稿，设置不能再修改。", status=409)
        if rnd.version != version:
            raise Conflict("批次设置已被他人修改（或阶段已变化），请刷新页面后重新填写。",
                           {"version": "版本已过期：请刷新页面"})
        before = _settings(rnd)
        for key, value in values.items():
            setattr(rnd, key, value)
        after = _settings(rnd)
        changed = [k for k in after if after[k] != before[k]]
        if rnd.phase not in TEMPLATE_PHASES and {"opinion_approve_template", "opinion_decline_template"} & set(changed):
            # Same rule as the deliberation page: once publicized, the 审定意见 are settled.
            raise UserError("公示开始后审定意见模板不能再修改。", {"opinion_approve_template": "已锁定"}, status=409)
        if changed:
            if {"method", "slots_unit", "slots_activity"} & set(changed):
                rounds.bump_ranking(rnd.id)
            audit.record("round.settings", "round", rnd.id, round_id=rnd.id, actor=actor,
                         before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    return rnd


def create_round(year: int, name: str = "", *, actor=None) -> Round:
    """A new round in setup with the default rubric and quotas; it becomes the current round."""
    name = name or f"{year}年全国科普日优秀组织单位和优秀活动评选"
    with write_transaction():
        if db.session.scalar(select(Round.id).where(Round.year == year)):
            raise UserError(f"{year} 年的评选批次已存在。", {"year": "已存在"}, status=409)
        rnd = Round(year=year, name=name, phase="setup", deadline=date(year, 10, 8), quotas=default_quotas())
        db.session.add(rnd)
        db.session.flush()
        for category in CATEGORY_LABELS:
            db.session.add_all(default_criteria(rnd.id, category))
            db.session.add(RankingCounter(round_id=rnd.id, category=category, version=1))
        audit.record("round.create", "round", rnd.id, round_id=rnd.id, after={"year": year, "name": name},
                     actor=actor)
    return rnd


# ---------------------------------------------------------------------------------------------
# Rubric


def _rubric_round(round_id: int) -> Round:
    """The round, locked, if its rubric may still change: scores depend on the criteria."""
    rnd = rounds.get(round_id, lock=True)
    if rnd.phase not in RUBRIC_PHASES:
        raise UserError(f"评选批次已进入「{rnd.phase_label}」阶段，评分指标不能再修改（已有评分依赖于它们）。",
                        status=409)
    scored = db.session.scalar(select(func.count()).select_from(Score).join(
        Criterion, Criterion.id == Score.criterion_id).where(Criterion.round_id == rnd.id))
    if scored:
        raise UserError("已有专家评分，评分指标不能再修改。", status=409)
    return rnd


def _criterion_public(c: Criterion) -> dict:
    return {"category": c.category, "code": c.code, "name": c.name, "max_score": c.max_score, "step": c.step,
            "guidance": c.guidance, "position": c.position}


def _criteria(round_id: int, category: str) -> list[Criterion]:
    return list(db.session.scalars(select(Criterion).where(
        Criterion.round_id == round_id, Criterion.category == category).order_by(Criterion.position, Criterion.id)))


def add_criterion(round_id: int, category: str, *, name: str, max_score: float, step: float, guidance: str = "",
                  actor=None) -> Criterion:
    if category not in CATEGORY_LABELS:
        raise UserError(f"未知类别：{category}。", status=404)
    values = {"name": name, "max_score": max_score, "step": step, "guidance": guidance}
    with write_transaction():
        rnd = _rubric_round(round_id)
        existing = _criteria(rnd.id, category)
        if len(existing) >= CRITERIA_PER_CATEGORY:
            raise UserError(f"每个类别最多 {CRITERIA_PER_CATEGORY} 项评分指标。", status=409)
        if any(c.name == values["name"] for c in existing):
            raise UserError(f"已有名为「{values['name']}」的指标。", {"name": "重名"}, status=409)
        codes = {c.code for c in existing}
        code = next(f"c{i}" for i in range(1, 100) if f"c{i}" not in codes)
        position = max((c.position for c in existing), default=-1) + 1
        criterion = Criterion(round_id=rnd.id, category=category, code=code, position=position, **values)
        db.session.add(criterion)
        db.session.flush()
        audit.record("criterion.create", "criterion", criterion.id, round_id=rnd.id,
                     after=_criterion_public(criterion), actor=actor)
    return criterion


def _get_criterion(criterion_id: int) -> Criterion:
    criterion = db.session.get(Criterion, criterion_id)
    if criterion is None:
        raise UserError("找不到该评分指标。", status=404)
    return criterion


def update_criterion(criterion_id: int, *, name: str, max_score: float, step: float, guidance: str = "",
                     actor=None) -> Criterion:
    values = {"name": name, "max_score": max_score, "step": step, "guidance": guidance}
    with write_transaction():
        criterion = _get_criterion(criterion_id)
        rnd = _rubric_round(criterion.round_id)
        if any(c.name == values["name"] and c.id != criterion.id for c in _criteria(rnd.id, criterion.category)):
            raise UserError(f"已有名为「{values['name']}」的指标。", {"name": "重名"}, status=409)
        before = _criterion_public(criterion)
        for key, value in values.items():
            setattr(criterion, key, value)
        after = _criterion_public(criterion)
        if after != before:
            audit.record("criterion.update", "criterion", criterion.id, round_id=rnd.id, before=before, after=after,
                         actor=actor)
    return criterion


def remove_criterion(criterion_id: int, *, actor=None) -> None:
    with write_transaction():
        criterion = _get_criterion(criterion_id)
        rnd = _rubric_round(criterion.round_id)
        if len(_criteria(rnd.id, criterion.category)) <= 1:
            raise UserError("每个类别至少保留一项评分指标。", status=409)
        audit.record("criterion.delete", "criterion", criterion.id, round_id=rnd.id,
                     before=_criterion_public(criterion), actor=actor)
        db.session.delete(criterion)


def move_criterion(criterion_id: int, direction: str, *, actor=None) -> None:
    """Swap with the neighbour above ('up') or below ('down'); positions are renumbered 0..n-1."""
    if direction not in ("up", "down"):
        raise UserError("未知的移动方向。")
    with write_transaction():
        criterion = _get_criterion(criterion_id)
        rnd = _rubric_round(criterion.round_id)
        items = _criteria(rnd.id, criterion.category)
        i = next(i for i, c in enumerate(items) if c.id == criterion.id)
        j = i - 1 if direction == "up" else i + 1
        if not 0 <= j < len(items):
            return
        before = [c.code for c in items]
        items[i], items[j] = items[j], items[i]
        for pos, c in enumerate(items):
            c.position = pos
        audit.record("criterion.reorder", "round", rnd.id, round_id=rnd.id, actor=actor,
                     before={"category": criterion.category, "order": before},
                     after={"category": criterion.category, "order": [c.code for c in items]})


def rubric(round_id: int) -> dict[str, list[Criterion]]:
    return {category: _criteria(round_id, category) for category in CATEGORY_LABELS}


def rubric_editable(rnd: Round) -> bool:
    if rnd.phase not in RUBRIC_PHASES:
        return False
    return not db.session.scalar(select(func.count()).select_from(Score).join(
        Criterion, Criterion.id == Score.criterion_id).where(Criterion.round_id == rnd.id))


# ---------------------------------------------------------------------------------------------
# Overview


def overview(round_id: int) -> dict:
    """Counts for the dashboard, each one SQL aggregate."""
    def count(stmt) -> int:
        return db.session.scalar(stmt) or 0

    noms = {}
    for category in CATEGORY_LABELS:
        rows = _as_dict((select(Nomination.status, func.count()).where(
            Nomination.round_id == round_id, Nomination.category == category).group_by(Nomination.status)))
        noms[category] = {"active": rows.get("active", 0), "withdrawn": rows.get("withdrawn", 0)}
    in_round = select(Nomination.id).where(Nomination.round_id == round_id)
    sheets = _as_dict((select(ReviewSheet.status, func.count()).where(
        ReviewSheet.nomination_id.in_(in_round)).group_by(ReviewSheet.status)))
    assignments = count(select(func.count()).select_from(Assignment).where(Assignment.nomination_id.in_(in_round)))
    findings = _as_dict((select(FormFinding.status, func.count()).where(
        FormFinding.round_id == round_id).group_by(FormFinding.status)))
    blocking = count(select(func.count()).select_from(FormFinding).where(
        FormFinding.round_id == round_id, FormFinding.status == "open", FormFinding.blocking.is_(True)))
    users = _as_dict((select(User.role, func.count()).where(User.active.is_(True)).group_by(User.role)))
    submitted = sheets.get("submitted", 0)
    return {
        "nominations": noms,
        "nominators": count(select(func.count()).select_from(Nominator)),
        "reviewers": users.get("reviewer", 0),
        "users": sum(users.values()),
        "assignments": assignments,
        "submitted": submitted,
        "drafts": sheets.get("draft", 0),
        "progress": round(100 * submitted / assignments) if assignments else 0,
        "findings_open": findings.get("open", 0),
        "findings_blocking": blocking,
    }
