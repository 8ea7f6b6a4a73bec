"""Who reviews what: every reviewer × every nomination, or k balanced reviewers per nomination, plus
hand edits from the matrix view. Never a recused pair (own unit = affiliation, or a declared Recusal).

Rules that matter once scoring has started:
- A bulk run keeps every assignment whose review sheet exists (a reviewer opened or scored it);
  everything else in the run's scope is re-planned from scratch, so the same data gives the same plan.
- Removing an assignment by hand whose sheet already holds scores (or was submitted) needs a reason.
  The sheet and its scores stay in the database, untouched; the pair simply stops being assigned, so
  the ranking (which counts assigned sheets) no longer counts it and n_assigned drops by one.
  Assigning the pair again restores it.

Balanced plan: a b-matching computed greedily (most constrained nomination first, least-loaded
reviewer first), then repaired with augmenting paths — first to cover nominations the cap left short,
then to move work from a reviewer with load L to one with load ≤ L-2 along a chain of transfers.
The reachable load vectors form an M-convex set, so when no such improving chain is left the loads are
the most balanced possible: within one of each other whenever recusals and the cap allow that.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import case, delete, func, or_, select

from app.audit import operations as audit
from app.core.database import write_transaction
from app.core.errors import UserError
from app.extensions import db
from app.models import (
    CATEGORY_LABELS,
    Assignment,
    Nomination,
    Nominator,
    ReviewSheet,
    Round,
    Score,
    User,
)
from app.review import pairs, recusals
from app.rounds.phases import bump_ranking

EDITABLE_PHASES = pairs.EDITABLE_PHASES
MODES = ("all", "balanced")
MODE_LABELS = {"all": "每位专家评审全部推荐对象", "balanced": "每件推荐对象分配 k 位专家（均衡）"}
K_MAX = 50
CAP_MAX = 10_000
REASON_MAX = 500

Pair = tuple[int, int]  # (reviewer_id, nomination_id)


# ---------------------------------------------------------------------------------------------
# The planner: pure Python over ids, so it can be property-tested without a database.


@dataclass
class Plan:
    assigned: set[Pair]
    # nomination id -> (reviewers wanted, reviewers found); wanted < k because recusals leave too few
    short: dict[int, tuple[int, int]] = field(default_factory=dict)
    # nomination id -> (reviewers wanted, reviewers found) where the cap made the plan impossible
    uncovered: dict[int, tuple[int, int]] = field(default_factory=dict)


def _as_dict(stmt) -> dict:
    """Two-column query -> dict (dict(result) would treat the Result as a mapping)."""
    return {a: b for a, b in db.session.execute(stmt)}


def plan_balanced(reviewers: list[int], nominations: list[int], blocked: set[Pair], k: int,
                  cap: int | None = None, pinned: set[Pair] = frozenset()) -> Plan:
    """Give each nomination min(k, eligible) reviewers with reviewer loads as even as possible.

    `reviewers` and `nominations` are in a fixed order (the result is a function of the inputs);
    `blocked` pairs are never planned; `pinned` pairs are kept as they are and count toward loads and
    coverage (they may even be blocked: a sheet already exists and is never dropped silently).
    """
    n_rev = len(reviewers)
    r_index = {r: i for i, r in enumerate(reviewers)}
    limit = cap if cap is not None else float("inf")
    have: dict[int, set[int]] = {n: set() for n in nominations}
    load = dict.fromkeys(reviewers, 0)
    for r, n in pinned:
        if n in have:
            have[n].add(r)
            if r in load:
                load[r] += 1
    eligible = {n: [r for r in reviewers if (r, n) not in blocked] for n in nominations}
    target = {n: min(k, len(set(eligible[n]) | have[n])) for n in nominations}
    movable: dict[int, set[int]] = {r: set() for r in reviewers}  # planned, not pinned

    def give(r: int, n: int) -> None:
        have[n].add(r)
        movable[r].add(n)
        load[r] += 1

    # 1. Greedy: most constrained nominations first; among equals, least-loaded reviewer, with a
    #    rotation by position so ties do not always pair the same reviewers.
    n_pos = {n: i for i, n in enumerate(nominations)}
    for n in sorted(nominations, key=lambda n: (len(eligible[n]), n_pos[n])):
        need = target[n] - len(have[n])
        if need <= 0:
            continue
        candidates = [r for r in eligible[n] if r not in have[n] and load[r] < limit]
        candidates.sort(key=lambda r: (load[r], (r_index[r] - n_pos[n]) % max(n_rev, 1)))
        for r in candidates[:need]:
            give(r, n)

    def transfer_path(starts: list[int], accept) -> list[tuple[int, int, int]] | None:
        """BFS over reviewers: from a start reviewer, pass one movable nomination to another
        eligible reviewer, and so on, until a reviewer `accept`s one more. Returns the moves
        (from, nomination, to) from the start outward; the start itself is not charged."""
        parent: dict[int, tuple[int, int] | None] = {s: None for s in starts}
        queue = deque(starts)
        while queue:
            a = queue.popleft()
            for n in sorted(movable[a], key=n_pos.__getitem__):
                for b in eligible[n]:
                    if b in parent or b in have[n]:
                        continue
                    parent[b] = (a, n)
                    if accept(b):
                        moves = []
                        node = b
                        while parent[node] is not None:
                            prev, nom = parent[node]
                            moves.append((prev, nom, node))
                            node = prev
                        moves.reverse()
                        return moves
                    queue.append(b)
        return None

    def apply(moves: list[tuple[int, int, int]]) -> None:
        for a, n, b in moves:
            have[n].discard(a)
            movable[a].discard(n)
            load[a] -= 1
            give(b, n)

    # 2. Cover what the cap left short: hand the nomination to a full reviewer who passes one of
    #    theirs along a chain ending at a reviewer with room.
    progress = True
    while progress:
        progress = False
        for n in nominations:
            while len(have[n]) < target[n]:
                starts = [r for r in eligible[n] if r not in have[n]]
                room = [r for r in starts if load[r] < limit]
                if room:
                    give(min(room, key=lambda r: (load[r], r_index[r])), n)
                    progress = True
                    continue
                moves = transfer_path(starts, lambda b: load[b] < limit)
                if moves is None:
                    break
                first = moves[0][0]
                apply(moves)
                give(first, n)
                progress = True

    # 3. Balance: move one unit from a reviewer with load L to one with load ≤ L-2 while possible.
    while True:
        for a in sorted(reviewers, key=lambda r: (-load[r], r_index[r])):
            moves = transfer_path([a], lambda b, top=load[a]: load[b] <= top - 2 and load[b] < limit)
            if moves:
                apply(moves)
                break
        else:
            break

    plan = Plan(assigned={(r, n) for n in nominations for r in have[n]} | set(pinned))
    for n in nominations:
        if len(have[n]) < target[n]:
            plan.uncovered[n] = (target[n], len(have[n]))
        elif target[n] < k:
            plan.short[n] = (k, target[n])
    return plan


# ---------------------------------------------------------------------------------------------
# Queries


@dataclass
class RunResult:
    mode: str
    added: int
    removed: int
    kept_with_sheets: int
    total: int
    short: list[str]  # Chinese lines about nominations with fewer eligible reviewers than wanted

    def message(self) -> str:
        text = (f"已完成分配：新增 {self.added} 条、移除 {self.removed} 条，保留已开始评分的 "
                f"{self.kept_with_sheets} 条，现共 {self.total} 条。")
        if self.short:
            text += " 注意：" + "；".join(self.short[:10]) + ("……" if len(self.short) > 10 else "")
        return text


def active_reviewers() -> list[User]:
    return list(db.session.scalars(
        select(User).where(User.role == "reviewer", User.active.is_(True)).order_by(User.id)))


def _nomination_order():
    kind_order = case({"city": 0, "member": 1, "society": 2}, value=Nominator.kind, else_=3)
    return (Nomination.category.desc(), kind_order, Nominator.position, Nominator.id, Nomination.id)


def _scope(round_id: int, category: str | None):
    conds = [Nomination.round_id == round_id]
    if category:
        conds.append(Nomination.category == category)
    return conds


def sheet_states(round_id: int, category: str | None = None, nomination_ids=None) -> dict[Pair, tuple[str, int]]:
    """(reviewer, nomination) -> (sheet status, number of scores) for every sheet in scope."""
    scope = _scope(round_id, category)
    if nomination_ids is not None:
        scope.append(Nomination.id.in_(list(nomination_ids)))
    stmt = (
        select(ReviewSheet.reviewer_id, ReviewSheet.nomination_id, ReviewSheet.status, func.count(Score.id))
        .join(Nomination, Nomination.id == ReviewSheet.nomination_id)
        .outerjoin(Score, Score.sheet_id == ReviewSheet.id)
        .where(*scope)
        .group_by(ReviewSheet.id, ReviewSheet.reviewer_id, ReviewSheet.nomination_id, ReviewSheet.status)
    )
    return {(r, n): (status, count) for r, n, status, count in db.session.execute(stmt)}


def has_work(state: tuple[str, int] | None) -> bool:
    """A sheet whose removal would drop a reviewer's work: submitted, or holding scores."""
    return state is not None and (state[0] == "submitted" or state[1] > 0)


def _assigned_pairs(round_id: int, category: str | None) -> set[Pair]:
    stmt = select(Assignment.reviewer_id, Assignment.nomination_id).join(
        Nomination, Nomination.id == Assignment.nomination_id).where(*_scope(round_id, category))
    return {(r, n) for r, n in db.session.execute(stmt)}


def _check_category(category: str | None) -> None:
    if category is not None and category not in CATEGORY_LABELS:
        raise UserError(f"未知类别：{category}。")


# ---------------------------------------------------------------------------------------------
# Bulk runs


def assign_all(round_id: int, category: str | None = None, *, actor=None) -> RunResult:
    """Every active reviewer × every active nomination in scope, except recused pairs."""
    _check_category(category)
    with write_transaction():
        rnd = pairs.editable_round(round_id)
        reviewers, noms, blocked, existing, pinned = _inputs(rnd.id, category)
        planned = {(r, n) for n in noms for r in reviewers if (r, n) not in blocked} | pinned
        empty = [n for n in noms if not any((r, n) in planned for r in reviewers)]
        short = [f"《{_titles([n])[0]}》回避后没有可评审的专家" for n in empty]
        result = _apply(rnd, category, "all", existing, planned, pinned, short)
        rnd.assignment_mode = "all"
        _audit_run(rnd, category, result, {}, actor)
    return result


def assign_balanced(round_id: int, k: int, cap: int | None = None, category: str | None = None, *,
                    actor=None) -> RunResult:
    """Each active nomination in scope gets k reviewers (fewer only when recusals leave fewer),
    loads balanced within one across reviewers when recusals allow, at most `cap` each."""
    _check_category(category)
    errors = {}
    if not isinstance(k, int) or not 1 <= k <= K_MAX:
        errors["k"] = f"每件推荐对象的专家数应为 1–{K_MAX} 的整数"
    if cap is not None and (not isinstance(cap, int) or not 1 <= cap <= CAP_MAX):
        errors["cap"] = f"每位专家上限应为 1–{CAP_MAX} 的整数，或留空表示不限"
    if errors:
        raise UserError("；".join(errors.values()) + "。", errors)
    with write_transaction():
        rnd = pairs.editable_round(round_id)
        reviewers, noms, blocked, existing, pinned = _inputs(rnd.id, category)
        if not reviewers:
            raise UserError("没有在用的评审专家账号，无法分配。请先在用户管理中添加专家。", status=409)
        plan = plan_balanced(reviewers, noms, blocked, k, cap, pinned)
        if plan.uncovered:
            titles = _titles(list(plan.uncovered))
            lines = [f"《{t}》（需 {w} 位，只能分配 {g} 位）"
                     for t, (w, g) in zip(titles, plan.uncovered.values(), strict=True)]
            shown = "、".join(lines[:15]) + (f" 等共 {len(lines)} 件" if len(lines) > 15 else "")
            raise UserError(f"按每位专家最多 {cap} 件的上限，以下推荐对象无法分配到足够的专家：{shown}。"
                            "请提高上限、减少每件专家数或增加专家。", {"cap": "上限过低"}, status=422)
        short = [f"《{t}》回避后只有 {got} 位专家可评审"
                 for t, (_, got) in zip(_titles(list(plan.short)), plan.short.values(), strict=True)]
        result = _apply(rnd, category, "balanced", existing, plan.assigned, pinned, short)
        rnd.assignment_mode = "balanced"
        rnd.reviewers_per_nomination = k
        _audit_run(rnd, category, result, {"k": k, "cap": cap}, actor)
    return result


def _inputs(round_id: int, category: str | None):
    reviewers = [u.id for u in active_reviewers()]
    noms = list(db.session.scalars(
        select(Nomination.id).join(Nominator, Nominator.id == Nomination.nominator_id)
        .where(*_scope(round_id, category), Nomination.status == "active").order_by(*_nomination_order())))
    blocked = set(recusals.recused_pairs(round_id, category))
    existing = _assigned_pairs(round_id, category)
    with_sheets = set(sheet_states(round_id, category))
    return reviewers, noms, blocked, existing, existing & with_sheets


def _titles(nomination_ids: list[int]) -> list[str]:
    rows = _as_dict((select(Nomination.id, Nomination.title).where(Nomination.id.in_(nomination_ids))))
    return [rows.get(n, str(n)) for n in nomination_ids]


def _apply(rnd: Round, category, mode, existing: set[Pair], planned: set[Pair], pinned: set[Pair],
           short: list[str]) -> RunResult:
    to_add = planned - existing
    to_remove = existing - planned - pinned
    for r, n in sorted(to_remove):
        db.session.execute(delete(Assignment).where(Assignment.reviewer_id == r, Assignment.nomination_id == n))
    if to_add:
        db.session.execute(Assignment.__table__.insert(),
                           [{"reviewer_id": r, "nomination_id": n} for r, n in sorted(to_add)])
    bump_ranking(rnd.id, category)
    return RunResult(mode=mode, added=len(to_add), removed=len(to_remove), kept_with_sheets=len(pinned),
                     total=len((existing - to_remove) | to_add), short=short)


def _audit_run(rnd: Round, category, result: RunResult, params: dict, actor) -> None:
    audit.record(f"assignment.run_{result.mode}", "round", rnd.id, round_id=rnd.id, actor=actor, after={
        "category": category or "all", **params, "added": result.added, "removed": result.removed,
        "kept_with_sheets": result.kept_with_sheets, "total": result.total, "short": len(result.short)})


# ---------------------------------------------------------------------------------------------
# Hand edits (the matrix)


def set_assignment(reviewer_id: int, nomination_id: int, assigned: bool, *, reason: str = "",
                   actor=None) -> bool:
    """Assign or unassign one pair; True if something changed. See the module notes on reasons."""
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise UserError(f"理由不能超过 {REASON_MAX} 个字符。", {"reason": "过长"})
    with write_transaction():
        reviewer, nom, rnd = pairs.for_edit(reviewer_id, nomination_id)
        changed = _set_pair(rnd, reviewer, nom, assigned, reason, actor)
        if changed:
            bump_ranking(rnd.id, nom.category, [nom.id])
    return changed


def _set_pair(rnd: Round, reviewer: User, nom: Nomination, assigned: bool, reason: str, actor) -> bool:
    existing = db.session.scalar(select(Assignment).where(
        Assignment.reviewer_id == reviewer.id, Assignment.nomination_id == nom.id))
    if assigned:
        if existing is not None:
            return False
        why = recusals.reason_for(reviewer, nom)
        if why:
            raise UserError(f"{reviewer.display_name} 须回避《{nom.title}》（{why}），不能分配。", status=409)
        if not reviewer.active:
            raise UserError(f"{reviewer.display_name} 的账号已停用，不能分配。", status=409)
        if nom.status != "active":
            raise UserError(f"《{nom.title}》已撤回，不能分配。", status=409)
        db.session.add(Assignment(reviewer_id=reviewer.id, nomination_id=nom.id))
        audit.record("assignment.add", "nomination", nom.id, after=pairs.audit_view(reviewer, nom), reason=reason,
                     round_id=rnd.id, actor=actor)
        return True
    if existing is None:
        return False
    sheet = db.session.scalar(select(ReviewSheet).where(
        ReviewSheet.reviewer_id == reviewer.id, ReviewSheet.nomination_id == nom.id))
    n_scores = len(sheet.scores) if sheet else 0
    state = (sheet.status, n_scores) if sheet else None
    if has_work(state) and not reason:
        raise UserError(f"{reviewer.display_name} 已对《{nom.title}》评分，取消分配必须填写理由"
                        "（评分记录会保留，但不再计入排名）。", {"reason": "必填"})
    db.session.delete(existing)
    before = pairs.audit_view(reviewer, nom)
    if sheet:
        before.update(sheet_status=sheet.status, scores=n_scores)
    audit.record("assignment.remove", "nomination", nom.id, before=before, reason=reason, round_id=rnd.id,
                 actor=actor)
    return True


def save_matrix_page(round_id: int, reviewer_ids: list[int], nomination_ids: list[int], checked: set[Pair], *,
                     actor=None) -> tuple[int, int, int]:
    """The no-JavaScript save of one matrix page: the shown cells take the checked state.

    Cells whose sheet holds work are never unassigned from here (that needs a reason, on the pair
    page); recused cells are never assigned. Returns (added, removed, left_locked)."""
    with write_transaction():
        rnd = pairs.editable_round(round_id)
        noms = {n.id: n for n in db.session.scalars(
            select(Nomination).where(Nomination.round_id == rnd.id, Nomination.id.in_(nomination_ids)))}
        revs = {u.id: u for u in db.session.scalars(
            select(User).where(User.role == "reviewer", User.id.in_(reviewer_ids)))}
        if len(noms) != len(set(nomination_ids)) or len(revs) != len(set(reviewer_ids)):
            raise UserError("页面数据已过期，请刷新后重试。", status=409)
        unknown = {p for p in checked if p[0] not in revs or p[1] not in noms}
        if unknown:
            raise UserError("页面数据已过期，请刷新后重试。", status=409)
        recused = recusals.recused_pairs(rnd.id, nomination_ids=noms)
        forbidden = sorted(p for p in checked if p in recused)
        if forbidden:
            r, n = forbidden[0]
            raise UserError(f"{revs[r].display_name} 须回避《{noms[n].title}》（{recused[(r, n)]}），不能分配。",
                            status=409)
        current = {p for p in _assigned_pairs(rnd.id, None) if p[1] in noms and p[0] in revs}
        states = sheet_states(rnd.id, nomination_ids=noms)
        added = removed = locked_left = 0
        categories = set()
        for pair in sorted(set(checked) - current):
            if _set_pair(rnd, revs[pair[0]], noms[pair[1]], True, "", actor):
                added += 1
                categories.add(noms[pair[1]].category)
        for pair in sorted(current - set(checked)):
            if pair in recused:  # shown as 回避, not as a checkbox: the page says nothing about it
                continue
            if has_work(states.get(pair)):
                locked_left += 1
                continue
            if _set_pair(rnd, revs[pair[0]], noms[pair[1]], False, "", actor):
                removed += 1
                categories.add(noms[pair[1]].category)
        for category in categories:
            bump_ranking(rnd.id, category)
    return added, removed, locked_left


# ---------------------------------------------------------------------------------------------
# The matrix view's data


@dataclass
class MatrixPage:
    category: str
    reviewers: list[User]
    rows: list[Nomination]
    assigned: set[Pair]
    recused: dict[Pair, str]
    sheets: dict[Pair, tuple[str, int]]
    loads: dict[int, int]  # reviewer -> assignments in this category (all pages)
    counts: dict[int, int]  # nomination -> assigned reviewers
    page: int
    pages: int
    total: int


def matrix_page(round_id: int, category: str, page: int = 1, per_page: int = 40) -> MatrixPage:
    _check_category(category)
    scope = _scope(round_id, category)
    total = db.session.scalar(select(func.count()).select_from(Nomination).where(*scope)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = list(db.session.scalars(
        select(Nomination).join(Nominator, Nominator.id == Nomination.nominator_id).where(*scope)
        .order_by(*_nomination_order()).offset((page - 1) * per_page).limit(per_page)))
    ids = [n.id for n in rows]
    has_assignment = select(Assignment.id).join(Nomination, Nomination.id == Assignment.nomination_id).where(
        Assignment.reviewer_id == User.id, *scope).exists()
    reviewers = list(db.session.scalars(
        select(User).where(User.role == "reviewer", or_(User.active.is_(True), has_assignment)).order_by(User.id)))
    assigned = {p for p in db.session.execute(
        select(Assignment.reviewer_id, Assignment.nomination_id).where(Assignment.nomination_id.in_(ids)))}
    loads = _as_dict((
        select(Assignment.reviewer_id, func.count()).join(Nomination, Nomination.id == Assignment.nomination_id)
        .where(*scope).group_by(Assignment.reviewer_id)))
    counts = _as_dict((
        select(Assignment.nomination_id, func.count()).where(Assignment.nomination_id.in_(ids))
        .group_by(Assignment.nomination_id)))
    return MatrixPage(category=category, reviewers=reviewers, rows=rows, assigned=assigned,
                      recused=recusals.recused_pairs(round_id, category, ids), sheets=sheet_states(round_id, category, ids),
                      loads=loads, counts=counts, page=page, pages=pages, total=total)


def pair_counts(reviewer_id: int, nomination_id: int) -> tuple[int, int]:
    """(reviewer's load in the nomination's category, nomination's assigned count) for one cell."""
    nom = db.session.get(Nomination, nomination_id)
    load = db.session.scalar(
        select(func.count()).select_from(Assignment).join(Nomination, Nomination.id == Assignment.nomination_id)
        .where(Assignment.reviewer_id == reviewer_id, Nomination.round_id == nom.round_id,
               Nomination.category == nom.category)) or 0
    count = db.session.scalar(select(func.count()).select_from(Assignment).where(
        Assignment.nomination_id == nomination_id)) or 0
    return load, count


@dataclass
class PairInfo:
    reviewer: User
    nomination: Nomination
    assigned: bool
    recused: str | None
    declared: bool
    sheet: tuple[str, int] | None


def pair_info(reviewer_id: int, nomination_id: int) -> PairInfo:
    nom = db.session.get(Nomination, nomination_id)
    reviewer = db.session.get(User, reviewer_id)
    if nom is None or reviewer is None or reviewer.role != "reviewer":
        raise UserError("找不到该专家或推荐对象。", status=404)
    assigned = db.session.scalar(select(Assignment.id).where(
        Assignment.reviewer_id == reviewer_id, Assignment.nomination_id == nomination_id)) is not None
    declared = recusals.declared(reviewer_id, nomination_id) is not None
    return PairInfo(reviewer=reviewer, nomination=nom, assigned=assigned, recused=recusals.reason_for(reviewer, nom),
                    declared=declared, sheet=sheet_states(nom.round_id, nomination_ids=[nom.id]).get(
                        (reviewer_id, nomination_id)))


def summary(round_id: int) -> dict[str, dict[str, int]]:
    """Per category: nominations (active), assigned pairs, nominations without any reviewer."""
    out = {}
    for category in CATEGORY_LABELS:
        scope = [*_scope(round_id, category), Nomination.status == "active"]
        n_noms = db.session.scalar(select(func.count()).select_from(Nomination).where(*scope)) or 0
        n_pairs = db.session.scalar(select(func.count()).select_from(Assignment).join(
            Nomination, Nomination.id == Assignment.nomination_id).where(*scope)) or 0
        uncovered = db.session.scalar(select(func.count()).select_from(Nomination).where(
            *scope, ~select(Assignment.id).where(Assignment.nomination_id == Nomination.id).exists())) or 0
        out[category] = {"nominations": n_noms, "assignments": n_pairs, "uncovered": uncovered}
    return out


__all__ = [
    "MODES", "MODE_LABELS", "Plan", "RunResult", "MatrixPage", "PairInfo", "plan_balanced", "assign_all",
    "assign_balanced", "set_assignment", "save_matrix_page", "sheet_states", "has_work", "matrix_page", "pair_counts", "pair_info",
    "summary", "active_reviewers",
]
