"""A round's settings (slots, quotas, method, deadline, assignment defaults, 审定意见 templates), its
rubric while scoring has not opened, the admin's phase moves, and the dashboard's overview counts."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from datetime import date

from sqlalchemy import func, select

from app.audit import operations as audit
from app.core.database import write_transaction
from app.core.errors import UserError
from app.extensions import db
from app.models import (
    CATEGORY_LABELS,
    KIND_LABELS,
    METHOD_LABELS,
    PHASE_LABELS,
    PHASES,
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
from app.models.round import DEFAULT_QUOTAS
from app.review.assignments import MODES
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
# The admin moves the round up to deliberating; publicizing and final are the chair's (decisions).
ADMIN_FORWARD = {"setup": "collecting", "collecting": "reviewing", "reviewing": "deliberating"}
DEFAULT_RUBRIC = (
    ("content", "活动内容", 30, "主题鲜明，内容科学准确，贴近公众需求。"),
    ("format", "活动形式", 20, "形式新颖多样，互动性强，线上线下结合。"),
    ("influence", "活动影响力", 30, "覆盖面广，参与人数多，媒体关注度高。"),
    ("response", "群众反映", 20, "群众参与积极，评价良好，有持续效果。"),
)
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


def _int(form: Mapping, key: str, label: str, lo: int, hi: int, errors: dict, *, blank_ok=False) -> int | None:
    text = str(form.get(key, "") or "").strip()
    if text == "":
        if not blank_ok:
            errors[key] = f"{label}不能为空"
        return None
    if not re.fullmatch(r"\d+", text):
        errors[key] = f"{label}应为整数"
        return None
    value = int(text)
    if not lo <= value <= hi:
        errors[key] = f"{label}应在 {lo}–{hi} 之间"
        return None
    return value


def _date(form: Mapping, key: str, label: str, errors: dict) -> date | None:
    text = str(form.get(key, "") or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[key] = f"{label}格式应为 年-月-日，如 2024-10-08"
        return None


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


def validate_settings(form: Mapping) -> tuple[dict, dict[str, str]]:
    errors: dict[str, str] = {}
    name = str(form.get("name", "") or "").strip()
    if not name:
        errors["name"] = "批次名称不能为空"
    elif len(name) > NAME_MAX:
        errors["name"] = f"批次名称不能超过 {NAME_MAX} 个字符"
    values = {"name": name}
    values["deadline"] = _date(form, "deadline", "截止日期", errors)
    values["slots_unit"] = _int(form, "slots_unit", "优秀组织单位名额", 0, SLOTS_MAX, errors)
    values["slots_activity"] = _int(form, "slots_activity", "优秀活动名额", 0, SLOTS_MAX, errors)
    method = form.get("method", "")
    if method not in METHOD_LABELS:
        errors["method"] = "请选择计分方法"
    values["method"] = method
    quotas = {}
    for kind, kind_label in KIND_LABELS.items():
        quotas[kind] = {}
        for category, cat_label in CATEGORY_LABELS.items():
            quotas[kind][category] = _int(form, f"quota_{kind}_{category}", f"{kind_label}{cat_label}推荐名额",
                                          0, QUOTA_MAX, errors)
    values["quotas"] = quotas
    mode = form.get("assignment_mode", "")
    if mode not in MODES:
        errors["assignment_mode"] = "请选择分配方式"
    values["assignment_mode"] = mode
    values["reviewers_per_nomination"] = _int(form, "reviewers_per_nomination", "每件专家数", 1, K_MAX, errors,
                                              blank_ok=mode != "balanced")
    for key, label in (("opinion_approve_template", "同意推荐意见模板"), ("opinion_decline_template", "不予推荐意见模板")):
        text = str(form.get(key, "") or "").strip()
        problem = check_template(text)
        if problem:
            errors[key] = f"{label}{problem}"
        values[key] = text
    values["list_unordered"] = form.get("list_unordered") in ("1", "on", "true", True)
    return values, errors


def update_settings(round_id: int, form: Mapping, *, actor=None) -> Round:
    """Save the settings form. Refused once final; ranking-relevant changes bump the live ranking."""
    values, errors = validate_settings(form)
    if errors:
        raise UserError("；".join(errors.values()) + "。", errors)
    with write_transaction():
        rnd = rounds.get(round_id, lock=True)
        if rnd.phase == "final":
            raise UserError("评选批次已定稿，设置不能再修改。", status=409)
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


def create_round(year_text: str, name: str, *, actor=None) -> Round:
    """A new round in setup with the default rubric and quotas; it becomes the current round."""
    errors: dict[str, str] = {}
    year = _int({"year": year_text}, "year", "年份", 2000, 2100, errors)
    name = (name or "").strip() or (f"{year}年全国科普日优秀组织单位和优秀活动评选" if year else "")
    if len(name) > NAME_MAX:
        errors["name"] = f"批次名称不能超过 {NAME_MAX} 个字符"
    if errors:
        raise UserError("；".join(errors.values()) + "。", errors)
    with write_transaction():
        if db.session.scalar(select(Round.id).where(Round.year == year)):
            raise UserError(f"{year} 年的评选批次已存在。", {"year": "已存在"}, status=409)
        rnd = Round(year=year, name=name, phase="setup", deadline=date(year, 10, 8), quotas=DEFAULT_QUOTAS)
        db.session.add(rnd)
        db.session.flush()
        for category in CATEGORY_LABELS:
            for pos, (code, cname, mx, guidance) in enumerate(DEFAULT_RUBRIC):
                db.session.add(Criterion(round_id=rnd.id, category=category, code=code, name=cname,
                                         max_score=mx, step=0.5, guidance=guidance, position=pos))
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


def _number(form: Mapping, key: str, label: str, errors: dict) -> float | None:
    text = str(form.get(key, "") or "").strip()
    try:
        value = float(text)
    except ValueError:
        errors[key] = f"{label}应为数字"
        return None
    if not math.isfinite(value) or value <= 0:
        errors[key] = f"{label}应大于 0"
        return None
    return value


def validate_criterion(form: Mapping) -> tuple[dict, dict[str, str]]:
    errors: dict[str, str] = {}
    name = str(form.get("name", "") or "").strip()
    if not name:
        errors["name"] = "指标名称不能为空"
    elif len(name) > CRITERION_NAME_MAX:
        errors["name"] = f"指标名称不能超过 {CRITERION_NAME_MAX} 个字符"
    max_score = _number(form, "max_score", "满分", errors)
    if max_score is not None and max_score > CRITERION_MAX_SCORE:
        errors["max_score"] = f"满分不能超过 {CRITERION_MAX_SCORE}"
    step = _number(form, "step", "评分步长", errors)
    if max_score and step and "max_score" not in errors:
        if step > max_score:
            errors["step"] = "评分步长不能大于满分"
        elif abs(max_score / step - round(max_score / step)) > 1e-9:
            errors["step"] = "满分应为评分步长的整数倍（如满分 30、步长 0.5）"
    guidance = str(form.get("guidance", "") or "").strip()
    if len(guidance) > GUIDANCE_MAX:
        errors["guidance"] = f"评分说明不能超过 {GUIDANCE_MAX} 个字符"
    return {"name": name, "max_score": max_score, "step": step, "guidance": guidance}, errors


def _criterion_public(c: Criterion) -> dict:
    return {"category": c.category, "code": c.code, "name": c.name, "max_score": c.max_score, "step": c.step,
            "guidance": c.guidance, "position": c.position}


def _criteria(round_id: int, category: str) -> list[Criterion]:
    return list(db.session.scalars(select(Criterion).where(
        Criterion.round_id == round_id, Criterion.category == category).order_by(Criterion.position, Criterion.id)))


def add_criterion(round_id: int, category: str, form: Mapping, *, actor=None) -> Criterion:
    if category not in CATEGORY_LABELS:
        raise UserError(f"未知类别：{category}。")
    values, errors = validate_criterion(form)
    if errors:
        raise UserError("；".join(errors.values()) + "。", errors)
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


def update_criterion(criterion_id: int, form: Mapping, *, actor=None) -> Criterion:
    values, errors = validate_criterion(form)
    if errors:
        raise UserError("；".join(errors.values()) + "。", errors)
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
# Phases


def guard_reviewing(rnd: Round) -> None:
    """Before scoring opens: every category with nominations has a rubric, every active nomination
    has a reviewer, and the 形式审查 guard (if that module is installed) passes."""
    problems = []
    for category, label in CATEGORY_LABELS.items():
        scope = (Nomination.round_id == rnd.id, Nomination.category == category, Nomination.status == "active")
        if not db.session.scalar(select(func.count()).select_from(Nomination).where(*scope)):
            continue
        if not db.session.scalar(select(func.count()).select_from(Criterion).where(
                Criterion.round_id == rnd.id, Criterion.category == category)):
            problems.append(f"{label}没有评分指标")
        orphans = list(db.session.scalars(select(Nomination.title).where(
            *scope, ~select(Assignment.id).where(Assignment.nomination_id == Nomination.id).exists()).limit(6)))
        if orphans:
            more = "等" if len(orphans) > 5 else ""
            problems.append(f"{label}中《{'》《'.join(orphans[:5])}》{more}尚未分配评审专家")
    if problems:
        raise UserError("还不能进入专家评审：" + "；".join(problems) + "。", status=409)
    form_guard = _form_check_guard()
    if form_guard is not None:
        form_guard(rnd)


def _form_check_guard():
    # The 形式审查 module belongs to the intake area and may not be installed yet.
    try:
        from app.intake import form_check
    except ModuleNotFoundError as e:
        if e.name and e.name.endswith("form_check"):
            return None
        raise
    return getattr(form_check, "guard_reviewing", None)


def live_blocking_problems(rnd: Round) -> int | None:
    """How many 形式审查 problems would block the move to reviewing right now (computed from the data,
    as the guard does), or None when the intake area's module is not installed."""
    try:
        from app.intake import form_check
    except ModuleNotFoundError as e:
        if e.name and e.name.endswith("form_check"):
            return None
        raise
    problems = getattr(form_check, "blocking_problems", None)
    return len(problems(rnd)) if problems else None


def move_phase(round_id: int, target: str, *, reason: str = "", actor=None) -> Round:
    """The admin's phase moves: forward up to 会议审定, or back one phase with a reason."""
    rnd = rounds.get(round_id)
    if target not in PHASES:
        raise UserError(f"未知阶段：{target}。")
    here, there = PHASES.index(rnd.phase), PHASES.index(target)
    if there > here + 1 or there < here - 1:
        raise UserError("阶段只能逐级推进或逐级退回。", status=409)
    if there > here and ADMIN_FORWARD.get(rnd.phase) != target:
        raise UserError("「公示」和「定稿」由评审委员会主任在会议审定页面完成。", status=409)
    if there < here and not (reason or "").strip():
        raise UserError("退回上一阶段必须填写理由。", {"reason": "必填"})
    guard = guard_reviewing if target == "reviewing" and there > here else None
    return rounds.change_phase(rnd.id, target, reason=reason, actor=actor, guard=guard)


def phase_moves(rnd: Round) -> dict:
    """What the dashboard offers: the admin's next phase (or None), and the previous phase."""
    i = PHASES.index(rnd.phase)
    return {"next": ADMIN_FORWARD.get(rnd.phase), "chair_next": PHASES[i + 1] if i + 1 < len(PHASES) and
            rnd.phase not in ADMIN_FORWARD else None, "back": PHASES[i - 1] if i > 0 else None,
            "phases": [(p, PHASE_LABELS[p], j < i, j == i) for j, p in enumerate(PHASES)]}


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
