"""形式审查 (format check): the rules every nomination must pass before expert review.

compute() derives the current problems from the data (a pure read); run() turns them into FormFinding
rows idempotently — new problems are added, fixed ones resolve themselves, waived ones stay waived, and
a problem an admin marked resolved that is still there is reopened. Intake writes call run() after they
commit (nominations.operation()), and run() computes outside any write transaction, so a round of
7,000 nominations is checked without any score save waiting for it. guard_reviewing() recomputes, so a
stale finding table can neither block nor let through the move to 专家评审.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher

from rapidfuzz import fuzz, process
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.audit import operations as audit
from app.core.database import in_write_transaction, locked, write_transaction
from app.core.errors import Conflict, UserError
from app.core.time import beijing_date as local_date
from app.extensions import db
from app.intake import forms
from app.intake.limits import NOTE_MAX  # noqa: F401 — part of this module's interface
from app.intake.quotas import quota_for
from app.intake.text import clean_text, norm_key
from app.models import Attachment, AuditEvent, FormFinding, Nomination, Nominator, Round
from app.models.nomination import SUMMARY_MAX
from app.rounds import phases as rounds

log = logging.getLogger(__name__)

PHOTOS_MIN, PHOTOS_MAX = 3, 5
OUTLIER_Z = 3.5
OUTLIER_MIN_SAMPLE = 5
SIMILARITY = 0.85


@dataclass(frozen=True)
class Rule:
    code: str
    label: str
    blocking: bool


# Blocking: the form is not what the notice asks for, or reviewers would judge the wrong thing (a
# nominator over quota, one activity twice). Warnings: worth a look, never a reason to stop the round
# (late arrivals are flagged, not lost; a missing video is common and harmless to scoring).
RULES = {r.code: r for r in (
    Rule("summary_too_long", "简介超过500字", True),
    Rule("photo_count", "照片数量不符（应为3–5张）", True),
    Rule("no_recommendation", "缺少推荐意见", True),
    Rule("no_recommendation_date", "推荐意见缺少日期", True),
    Rule("counts_zero", "活动场数或服务人数为0", True),
    Rule("over_quota", "超出推荐名额", True),
    Rule("duplicate", "疑似重复推荐", True),
    Rule("no_video", "缺少活动视频", False),
    Rule("people_outlier", "服务人数明显异常", False),
    Rule("late", "逾期报送", False),
    Rule("incomplete", "基本信息不全", False),
    # A 推荐单位 that submitted online still owes the printed, stamped 推荐表 (盖章件). A warning, not a
    # block: the paper copy may arrive by post, and the admin decides (waive, or ask the unit).
    Rule("no_stamped", "缺少盖章件", False),
)}
STATUS_LABELS = {"open": "待处理", "resolved": "已解决", "waived": "已豁免"}


def rule_label(code: str) -> str:
    return RULES[code].label if code in RULES else code


# --- the rules ----------------------------------------------------------------------------------------


def _active(rnd: Round) -> list[Nomination]:
    return list(db.session.scalars(
        select(Nomination).where(Nomination.round_id == rnd.id, Nomination.status == "active")
        .options(selectinload(Nomination.nominator)).order_by(Nomination.received_at, Nomination.id)))


def _media_counts(rnd: Round) -> dict[int, dict[str, int]]:
    rows = db.session.execute(
        select(Attachment.nomination_id, Attachment.kind, func.count())
        .join(Nomination, Nomination.id == Attachment.nomination_id)
        .where(Nomination.round_id == rnd.id).group_by(Attachment.nomination_id, Attachment.kind))
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for nid, kind, count in rows:
        out[nid][kind] = int(count)
    return out


def _per_nomination(nom: Nomination, media: dict[str, int], rnd: Round) -> dict[str, str]:
    out = {}
    if nom.summary_original and len(nom.summary_original) > SUMMARY_MAX:
        out["summary_too_long"] = (f"收到的简介共 {len(nom.summary_original)} 字，超过 {SUMMARY_MAX} 字上限；"
                                   f"系统暂存前 {SUMMARY_MAX} 字，请精简后保存或联系推荐单位修改。")
    photos = media.get("photo", 0)
    if photos < PHOTOS_MIN:
        out["photo_count"] = f"只有 {photos} 张活动照片，应附 {PHOTOS_MIN}–{PHOTOS_MAX} 张。"
    elif photos > PHOTOS_MAX:
        out["photo_count"] = f"共有 {photos} 张活动照片，超过 {PHOTOS_MAX} 张，请删除多余的照片。"
    if not media.get("video"):
        out["no_video"] = "未附活动视频。"
    if nom.origin == "portal" and not media.get("stamped"):
        out["no_stamped"] = "推荐单位在线报送，尚未上传盖章的推荐表扫描件（盖章件）。"
    if not clean_text(nom.recommendation):
        out["no_recommendation"] = "推荐意见栏为空。"
    if nom.recommendation_date is None:
        out["no_recommendation_date"] = "推荐意见未填写日期。"
    zero = [label for label, value in (("活动场数", nom.event_count), ("服务人数", nom.people_served)) if not value]
    if zero:
        out["counts_zero"] = f"{'、'.join(zero)}为 0，请核实。"
    if rnd.deadline:
        received = local_date(nom.received_at)
        late = []
        if received and received > rnd.deadline:
            late.append(f"收到日期 {received.isoformat()}")
        if nom.recommendation_date and nom.recommendation_date > rnd.deadline:
            late.append(f"推荐日期 {nom.recommendation_date.isoformat()}")
        if late:
            out["late"] = f"{'、'.join(late)}晚于截止日期 {rnd.deadline.isoformat()}。"
    gaps = [label for label, value in (("主办单位", nom.host if nom.category == "activity" else "x"),
                                       ("联系人", nom.contact_name), ("联系电话", nom.contact_phone),
                                       ("通讯地址", nom.address)) if not (value or "").strip()]
    if gaps:
        out["incomplete"] = f"未填写：{'、'.join(gaps)}。"
    return out


def check_nomination(nom: Nomination, rnd: Round) -> dict[str, str]:
    """The rules of one nomination on its own (no quota, duplicate or outlier comparison): rule → message.
    The portal's 提交 runs these on a nomination that is not active yet."""
    media: dict[str, int] = defaultdict(int)
    for a in nom.attachments:
        media[a.kind] += 1
    return _per_nomination(nom, media, rnd)


def _robust_z(values: list[float]) -> list[float] | None:
    """Modified z-scores (Iglewicz–Hoaglin); mean absolute deviation when more than half are equal."""
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    if mad > 0:
        return [0.6745 * (v - med) / mad for v in values]
    mean_ad = statistics.fmean(abs(v - med) for v in values)
    if mean_ad > 0:
        return [(v - med) / (1.253314 * mean_ad) for v in values]
    return None


def _outliers(noms: list[Nomination]) -> dict[int, str]:
    """People served per event, on a log scale (counts span orders of magnitude), per category."""
    out = {}
    for category in ("unit", "activity"):
        sample = [n for n in noms if n.category == category and n.event_count > 0 and n.people_served > 0]
        if len(sample) < OUTLIER_MIN_SAMPLE:
            continue
        logs = [math.log(n.people_served / n.event_count) for n in sample]
        zs = _robust_z(logs)
        if zs is None:
            continue
        typical = math.exp(statistics.median(logs))
        for n, z in zip(sample, zs, strict=True):
            if abs(z) > OUTLIER_Z:
                per = n.people_served / n.event_count
                out[n.id] = (f"平均每场服务约 {per:,.0f} 人，同类中位数约 {typical:,.0f} 人/场"
                             f"（稳健 z = {z:.1f}），请核实活动场数和服务人数。")
    return out


def _over_quota(rnd: Round, noms: list[Nomination]) -> dict[int, str]:
    """The nominations beyond a nominator's quota, in the order they were received."""
    groups: dict[tuple[int, str], list[Nomination]] = defaultdict(list)
    for n in noms:
        groups[(n.nominator_id, n.category)].append(n)
    out = {}
    for (_nid, category), group in groups.items():
        nominator: Nominator = group[0].nominator
        quota = quota_for(rnd, nominator, category)
        if len(group) <= quota:
            continue
        for n in group[quota:]:
            out[n.id] = (f"{nominator.name}本类别共推荐 {len(group)} 项，名额为 {quota} 项；"
                         f"本项按收到顺序排在名额之外，请撤回多余的推荐或调整名额。")
    return out


_BOILERPLATE = re.compile(r"(19|20)\d{2}年?|全国科普日|湖南省|系列活动|主题活动|活动$")


def _title_key(title: str) -> str:
    key = norm_key(title)
    return _BOILERPLATE.sub("", key) or key


_NUMERALS = set("0123456789一二三四五六七八九十百零〇")


def _similar(a: str, b: str) -> bool:
    """Identical after normalization, or SequenceMatcher ratio ≥ 0.85 — unless the only differences are
    numerals (第一中学 / 第二中学, 第3期 / 第4期 are different things)."""
    if not a or not b:
        return False
    if a == b:
        return True
    m = SequenceMatcher(None, a, b, autojunk=False)
    if m.real_quick_ratio() < SIMILARITY or m.quick_ratio() < SIMILARITY or m.ratio() < SIMILARITY:
        return False
    diff = "".join(a[i1:i2] + b[j1:j2] for op, i1, i2, j1, j2 in m.get_opcodes() if op != "equal")
    return not (diff and set(diff) <= _NUMERALS)


def _min_overlap(length: int) -> int:
    """Characters two keys must share when one of them has `length` characters and their ratio is at
    least SIMILARITY: ratio = 2·M/(|a|+|b|) and M ≤ min(|a|, |b|), so |b| ≥ |a|·s/(2−s) and M ≥ |a|·s/(2−s)."""
    return max(1, math.ceil(length * SIMILARITY / (2 - SIMILARITY) - 1e-9))


def _similar_pairs(keys: list[str]) -> list[tuple[int, int]]:
    """Index pairs (i < j, in order) whose keys are _similar — found without comparing every pair.

    difflib's ratio counts matching blocks, which form a common subsequence, so a similar pair shares at
    least _min_overlap characters (as a multiset) and their lengths differ by at most what that allows.
    Order each key's characters rarest first: two keys sharing that many characters share one among
    their first len − overlap + 1 (the prefix filter of PPJoin). Only keys that meet in that short, rare
    prefix are compared, by rapidfuzz's Indel ratio (2·LCS/total, never below difflib's ratio) first and
    SequenceMatcher only for the pairs that pass it — the findings are exactly the pairwise check's."""
    tokens: list[list[tuple[str, int]]] = []
    for key in keys:
        seen: dict[str, int] = defaultdict(int)
        row = []
        for ch in key:
            row.append((ch, seen[ch]))
            seen[ch] += 1
        tokens.append(row)
    freq: dict[tuple[str, int], int] = defaultdict(int)
    for row in tokens:
        for t in row:
            freq[t] += 1
    cutoff = SIMILARITY * 100 - 1e-6
    shortest = SIMILARITY / (2 - SIMILARITY)
    # Keys are taken shortest first, so each bucket lists its keys by length and the ones long enough
    # to be similar to the current key are a tail found by bisection.
    index: dict[tuple[str, int], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    pairs = []
    for i in sorted(range(len(keys)), key=lambda k: len(keys[k])):
        row, key = tokens[i], keys[i]
        if not row:
            continue
        row.sort(key=lambda t: (freq[t], t))
        candidates: set[int] = set()
        floor = shortest * len(key) - 1e-9
        for t in row[:len(row) - _min_overlap(len(row)) + 1]:
            members, lengths = index[t]
            candidates.update(members[bisect_left(lengths, floor):])
            members.append(i)
            lengths.append(len(key))
        if not candidates:
            continue
        others = list(candidates)
        for _text, _score, k in process.extract(key, [keys[j] for j in others], scorer=fuzz.ratio,
                                                 score_cutoff=cutoff, limit=None):
            j = others[k]
            if key == keys[j] or _similar(key, keys[j]):
                pairs.append((min(i, j), max(i, j)))
    return sorted(pairs)


def _duplicates(noms: list[Nomination]) -> dict[int, str]:
    """Similar names (and, for activities, similar hosts — the same name by two hosts is two events)."""
    others: dict[int, list[Nomination]] = defaultdict(list)
    for category in ("unit", "activity"):
        group = [(n, _title_key(n.title), norm_key(n.host)) for n in noms if n.category == category]
        for i, j in _similar_pairs([t for _n, t, _h in group]):
            a, _ta, ha = group[i]
            b, _tb, hb = group[j]
            if category == "activity" and ha and hb and not _similar(ha, hb):
                continue
            others[a.id].append(b)
            others[b.id].append(a)
    return {nid: "与" + "；".join(f"{o.nominator.name}推荐的「{o.title}」（编号 {o.id}）" for o in lst[:5])
            + "相同或高度相似，请确认是否重复推荐。" for nid, lst in others.items()}


def compute(rnd: Round) -> dict[tuple[int, str], str]:
    """Every current problem of the round's active nominations: (nomination id, rule) → message."""
    noms = _active(rnd)
    media = _media_counts(rnd)
    found: dict[tuple[int, str], str] = {}
    for n in noms:
        for rule, message in _per_nomination(n, media.get(n.id, {}), rnd).items():
            found[(n.id, rule)] = message
    for rule, problems in (("people_outlier", _outliers(noms)), ("over_quota", _over_quota(rnd, noms)),
                           ("duplicate", _duplicates(noms))):
        for nid, message in problems.items():
            found[(nid, rule)] = message
    return found


# --- findings -----------------------------------------------------------------------------------------


# The writes whose effect 形式审查 reads: a check computed before one of these committed is stale.
INTAKE_ACTIONS = ("nomination.create", "nomination.update", "nomination.withdraw", "nomination.reinstate",
                  "nomination.accept", "attachment.add", "attachment.import", "attachment.delete",
                  "attachment.stamped")
_ATTEMPTS = 3


def _intake_mark(round_id: int) -> tuple:
    return tuple(db.session.execute(
        select(func.count(), func.max(AuditEvent.id))
        .where(AuditEvent.round_id == round_id, AuditEvent.action.in_(INTAKE_ACTIONS))).one())


def _one_check_at_a_time(round_id: int) -> None:
    """Serialise the writing of one round's findings without touching the round row, which every score
    save reads FOR SHARE (SQLite's BEGIN IMMEDIATE already lets one writer in at a time)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(0x6B65_7075_0000 + round_id)))


def run(round_id: int, *, actor=None, attempts: int = _ATTEMPTS) -> dict:
    """Bring the findings table in line with the data; safe to call any number of times.

    The round is read and checked outside any write transaction, then the findings are written in a
    short one, so no score save waits while titles are compared. If a nomination or attachment changed
    in between, this check is stale and is taken again; after `attempts` stale ones nothing is
    written — every write that overtook it queued (or ran) a check of its own after its commit, which
    reads it. Called inside a caller's write transaction, it checks there and the findings commit with
    the caller's change."""
    if in_write_transaction():
        with write_transaction():
            _one_check_at_a_time(round_id)
            return _apply(rounds.get(round_id), compute(rounds.get(round_id)), actor)
    for _attempt in range(attempts):
        rnd = rounds.get(round_id)
        mark = _intake_mark(rnd.id)
        found = compute(rnd)
        with write_transaction():
            _one_check_at_a_time(round_id)
            if _intake_mark(round_id) != mark:
                continue
            return _apply(rounds.get(round_id), found, actor)
    return {"added": 0, "reopened": 0, "auto_resolved": 0, "superseded": True, **_counts(round_id)}


def _pending_key(round_id: int) -> str:
    return f"kepu:intake:form_check:pending:{round_id}"


def queue(round_id: int, *, actor=None) -> None:
    """After an intake write has committed: 形式审查 of the round, as a job (app/intake/tasks.py) when
    the intake task is registered, else here and now. At most one automatic check per round waits in
    the queue — writes made while it waits are read when it runs, so a burst of edits costs one or two
    checks, not one each. A check logged as someone's (an import) is always queued on its own."""
    from app.jobs import get_jobs

    jobs = get_jobs()
    task = jobs.tasks.get("form_check")
    if task is None:
        run(round_id, actor=actor)
        return
    actor_id = getattr(actor, "id", None)
    if actor_id is None and not jobs.huey.immediate and not jobs.huey.put_if_empty(_pending_key(round_id), "1"):
        return
    task(round_id, actor_id)


def run_queued(round_id: int, actor_id: int | None = None) -> None:
    """The job: release the round's waiting slot first (a write from now on queues a fresh check),
    then check. A failure is logged; the findings catch up at the next check."""
    from app.jobs import get_huey
    from app.models import User

    if actor_id is None:
        get_huey().get(_pending_key(round_id))
    try:
        # One attempt: a write that makes it stale has queued the next check already.
        run(round_id, actor=db.session.get(User, actor_id) if actor_id else None, attempts=1)
    except Exception:
        log.exception("形式审查 after an intake write failed (round %s)", round_id)
        raise


def _apply(rnd: Round, found: dict[tuple[int, str], str], actor) -> dict:
    existing = {(f.nomination_id, f.rule): f for f in db.session.scalars(
        select(FormFinding).where(FormFinding.round_id == rnd.id))}
    added = reopened = resolved = 0
    for key, message in found.items():
        f = existing.get(key)
        if f is None:
            db.session.add(FormFinding(round_id=rnd.id, nomination_id=key[0], rule=key[1], message=message,
                                       blocking=RULES[key[1]].blocking, status="open"))
            added += 1
            continue
        if f.message != message:
            f.message = message
        if f.blocking != RULES[key[1]].blocking:
            f.blocking = RULES[key[1]].blocking
        if f.status == "resolved":
            f.status = "open"
            f.note = ((f.note + "\n") if f.note else "") + "复查时问题仍存在，已重新打开。"
            f.resolved_by_id = None
            reopened += 1
    for key, f in existing.items():
        if key not in found and f.status == "open":
            f.status = "resolved"
            f.note = ((f.note + "\n") if f.note else "") + "复查时问题已不存在，自动标记为已解决。"
            f.resolved_by_id = None
            resolved += 1
    db.session.flush()
    result = {"added": added, "reopened": reopened, "auto_resolved": resolved, **_counts(rnd.id)}
    # Automatic re-checks after each edit are logged only when they change something; a check the
    # admin asked for is always logged (it also tells the pages the round has been checked).
    if added or reopened or resolved or actor is not None or last_run(rnd.id) is None:
        audit.record("form_check.run", "round", rnd.id, after=result, round_id=rnd.id, actor=actor)
    return result


def last_run(round_id: int):
    """When findings were last brought up to date (None: never — e.g. data loaded straight into the
    database), so the pages can say so instead of showing an empty, reassuring list."""
    return db.session.scalar(select(func.max(AuditEvent.at)).where(
        AuditEvent.action == "form_check.run", AuditEvent.round_id == round_id))


def _counts(round_id: int) -> dict:
    rows = db.session.execute(
        select(FormFinding.blocking, func.count()).where(FormFinding.round_id == round_id,
                                                         FormFinding.status == "open")
        .group_by(FormFinding.blocking))
    counts = {bool(b): int(c) for b, c in rows}
    return {"open_blocking": counts.get(True, 0), "open_warnings": counts.get(False, 0)}


def _decide(finding_id: int, status: str, note: str, actor, action: str, *, fields=forms.NoteFields) -> FormFinding:
    form = forms.check(fields, {"note": note})
    errors = forms.first_errors(form)
    if errors:
        raise UserError(errors["note"] + "。", errors)
    note = form.note.data
    with write_transaction():
        f = locked(FormFinding, finding_id)
        if f is None:
            raise UserError("找不到该形式审查问题。", status=404)
        rnd = db.session.get(Round, f.round_id)
        if rnd.phase == "final":
            raise Conflict("评选批次已定稿，不能再修改形式审查结果。")
        if f.status == status:
            raise Conflict(f"该问题已是「{STATUS_LABELS[status]}」状态。")
        before = {"status": f.status, "note": f.note}
        f.status = status
        f.note = note
        f.resolved_by_id = actor.id if (actor is not None and status != "open") else None
        audit.record(action, "form_finding", f.id, before=before,
                     after={"status": status, "note": note, "rule": f.rule, "nomination_id": f.nomination_id},
                     reason=note, round_id=f.round_id, actor=actor)
    return f


def resolve(finding_id: int, note: str = "", *, actor=None) -> FormFinding:
    """Mark fixed; the next check reopens it if the data still shows the problem."""
    return _decide(finding_id, "resolved", note, actor, "form_finding.resolve")


def waive(finding_id: int, note: str, *, actor=None) -> FormFinding:
    """Accept as is (with the reason); it stays waived through later checks and no longer blocks."""
    return _decide(finding_id, "waived", note, actor, "form_finding.waive", fields=forms.WaiveFields)


def reopen(finding_id: int, note: str = "", *, actor=None) -> FormFinding:
    return _decide(finding_id, "open", note, actor, "form_finding.reopen")


def blocking_problems(rnd: Round) -> list[tuple[int, str, str]]:
    """Current blocking problems not waived: (nomination id, rule, message). A pure read."""
    waived = set(db.session.execute(
        select(FormFinding.nomination_id, FormFinding.rule)
        .where(FormFinding.round_id == rnd.id, FormFinding.status == "waived")).all())
    return [(nid, rule, msg) for (nid, rule), msg in sorted(compute(rnd).items())
            if RULES[rule].blocking and (nid, rule) not in waived]


def guard_reviewing(rnd: Round) -> None:
    """Pass as guard= to rounds.change_phase for the move to reviewing (it runs inside that locked
    transaction and only reads). Refuses while blocking problems are neither fixed nor waived.
    A round not in 材料收集 is left alone, so passing it for other moves is harmless."""
    if rnd.phase != "collecting":
        return
    problems = blocking_problems(rnd)
    if not problems:
        return
    by_rule: dict[str, int] = defaultdict(int)
    for _nid, rule, _msg in problems:
        by_rule[rule] += 1
    detail = "、".join(f"{rule_label(rule)} {n} 项" for rule, n in by_rule.items())
    raise Conflict(f"形式审查还有 {len(problems)} 项阻断性问题未处理（{detail}），"
                   f"请先修正或豁免后再进入专家评审阶段。")


def guard_for(target_phase: str):
    """The guard the phase page should pass to change_phase for a move to `target_phase`, or None."""
    return guard_reviewing if target_phase == "reviewing" else None


# --- reads for pages ----------------------------------------------------------------------------------


def findings_for(nomination_id: int) -> list[FormFinding]:
    return list(db.session.scalars(
        select(FormFinding).where(FormFinding.nomination_id == nomination_id)
        .order_by(FormFinding.status != "open", FormFinding.blocking.desc(), FormFinding.id)))


def get_finding(finding_id: int) -> FormFinding:
    f = db.session.get(FormFinding, finding_id)
    if f is None:
        raise UserError("找不到该形式审查问题。", status=404)
    return f


def rule_summary(round_id: int) -> list[dict]:
    """Per rule: open / resolved / waived counts (grouped in SQL), in RULES order."""
    rows = db.session.execute(
        select(FormFinding.rule, FormFinding.status, func.count()).where(FormFinding.round_id == round_id)
        .group_by(FormFinding.rule, FormFinding.status))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"open": 0, "resolved": 0, "waived": 0})
    for rule, status, n in rows:
        counts[rule][status] = int(n)
    return [{"rule": r, "counts": counts[r.code]} for r in RULES.values()]


def list_findings(round_id: int, *, status: str = "open", rule: str = "",
                  category: str = "") -> list[tuple[FormFinding, Nomination]]:
    stmt = (select(FormFinding, Nomination).join(Nomination, Nomination.id == FormFinding.nomination_id)
            .join(Nominator, Nominator.id == Nomination.nominator_id)
            .where(FormFinding.round_id == round_id)
            .order_by(FormFinding.blocking.desc(), Nominator.position, Nomination.id, FormFinding.rule))
    if status in STATUS_LABELS:
        stmt = stmt.where(FormFinding.status == status)
    if rule in RULES:
        stmt = stmt.where(FormFinding.rule == rule)
    if category in ("unit", "activity"):
        stmt = stmt.where(Nomination.category == category)
    return [(f, n) for f, n in db.session.execute(stmt.options(selectinload(Nomination.nominator)))]
