"""Reading the kept live ranking (its rows: app/ranking/upkeep.py folds them in): a page with its ranks
under the methods it shows, one nomination's row, every row — and the check of those rows against the
one-statement computation from the scores (`flask ranking verify`).

Ranks are not stored (one save moves thousands of z-score ranks); a page reads them from the methods'
sort-key indexes (_ranked).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import text

from app.core.database import write_transaction
from app.core.paging import Pager
from app.extensions import db
from app.models import KIND_LABELS
from app.ranking.engine import FLAG_SHARE, CriterionInfo, RankRow, max_total
from app.ranking.sql import only_ids
from app.ranking.upkeep import METHODS, SCOPE_WHERE, Scope, ensure, scope_where

# The ranks the ranking page shows beside each row (templates/ranking/category.html), besides its own.
PAGE_METHODS = ("mean", "trimmed", "zscore")
KIND_ORDER = {kind: i for i, kind in enumerate(KIND_LABELS)}


@dataclass(frozen=True)
class NominatorOption:
    id: int
    name: str
    kind: str


@dataclass(frozen=True)
class TablePage:
    rows: list[RankRow]
    pager: Pager  # over the rows after filtering
    category_total: int
    slots: int
    cut_id: int | None  # the last row inside the award slots, when rows follow it
    cut_page: int | None
    nominators: list[NominatorOption]  # every nominator of the category, in official order


def _table(method: str) -> str:
    """Where a method's sort key lives (and its index): the z-score's apart from the entry."""
    return "ranking_z" if method == "zscore" else "ranking_entries"


def _order(method: str, alias: str = "e") -> str:
    """The method's sort order. Alias "e" in a joined statement (_FROM) means the entry, whose z-score
    sort key is its RankingZ row's, "zt"."""
    if method == "zscore" and alias == "e":
        alias = "zt"
    return f"{alias}.k_{method}, {alias}.k_n, {alias}.k_sd, {alias}.nomination_id"


_COLUMNS = """e.nomination_id, nm.title, nm.host, e.nominator_id, nr.name AS nominator_name, nr.kind,
nr.position, e.n_scored, e.n_assigned, e.mean, e.trimmed, e.median, zt.zscore, e.stdev, e.spread, e.max_dev,
e.k_mean, e.k_trimmed, e.k_median, zt.k_zscore, e.k_n, e.k_sd"""
_FROM = """FROM ranking_entries e
JOIN ranking_z zt ON zt.round_id = e.round_id AND zt.category = e.category AND zt.drafts = e.drafts
                 AND zt.nomination_id = e.nomination_id
JOIN nominations nm ON nm.id = e.nomination_id
JOIN nominators nr ON nr.id = e.nominator_id"""


def _ranked(inner: str, method: str, known: str | None = None, methods=METHODS) -> str:
    """The rows `inner` selects (a page: already limited), with their ranks under every method.

    A rank is 1 + the rows ordered before it: an index range count. Counted row by row, a page in the
    middle of 7,000 would walk the index 100 times per method; instead the page's own rows are taken in
    that method's order and each counts only the rows between it and the previous one (LAG), and a
    running SUM adds the segments up: one walk of the index per method, up to the page's last row.
    `known`: an expression giving the rank under `method` without counting (a page of the unfiltered
    order: its offset). `methods`: the ranks wanted (the others come back as NULL)."""
    ctes, cols, joins = [f"p AS ({inner})"], [], []
    floor, int_floor = "-1e300", "-2147483647"  # below every key; an integer one for the integer columns
    for m in METHODS:
        if m not in methods and m != method:
            cols.append(f"NULL AS rank_{m}")
            continue
        if m == method and known:
            ctes.append(f"r_{m} AS (SELECT nomination_id, {known} AS r FROM p)")
        else:
            order = f"p.k_{m}, p.k_n, p.k_sd, p.nomination_id"
            ctes.append(f"""o_{m} AS (
  SELECT p.nomination_id, p.k_{m} AS k, p.k_n AS kn, p.k_sd AS ksd,
         COALESCE(LAG(p.k_{m}) OVER w, {floor}) AS lk, COALESCE(LAG(p.k_n) OVER w, {int_floor}) AS lkn,
         COALESCE(LAG(p.k_sd) OVER w, {floor}) AS lksd, COALESCE(LAG(p.nomination_id) OVER w, -1) AS lid
  FROM p WINDOW w AS (ORDER BY {order})
), c_{m} AS (
  SELECT o.nomination_id, o.k, o.kn, o.ksd,
         (SELECT COUNT(*) FROM {_table(m)} x WHERE {scope_where('x')}
            AND ({_order(m, 'x')}) < (o.k, o.kn, o.ksd, o.nomination_id)
            AND ({_order(m, 'x')}) >= (o.lk, o.lkn, o.lksd, o.lid)) AS n
  FROM o_{m} o
), r_{m} AS (
  SELECT nomination_id, 1 + SUM(n) OVER (ORDER BY k, kn, ksd, nomination_id) AS r FROM c_{m}
)""")
        cols.append(f"r_{m}.r AS rank_{m}")
        joins.append(f"JOIN r_{m} ON r_{m}.nomination_id = p.nomination_id")
    return f"WITH {', '.join(ctes)} SELECT p.*, {', '.join(cols)} FROM p {' '.join(joins)}"


def _opt(value) -> float | None:
    return None if value is None else float(value)


def _plain_rows(result) -> list[dict]:
    # Plain dicts: SQLAlchemy's RowMapping costs more per key than the rest of building a row.
    keys = list(result.keys())
    return [dict(zip(keys, r, strict=True)) for r in result.all()]


def _rank_row(r: dict, method: str, flag_points: float) -> RankRow:
    ranks = {m: None if r[f"rank_{m}"] is None else int(r[f"rank_{m}"]) for m in METHODS}
    max_dev = _opt(r["max_dev"])
    return RankRow(
        nomination_id=r["nomination_id"], title=r["title"], host=r["host"], nominator_id=r["nominator_id"],
        nominator_name=r["nominator_name"], nominator_kind=r["kind"], nominator_position=r["position"],
        rank=ranks[method], aggregate=_opt(r[method]), n_scored=int(r["n_scored"]), n_assigned=int(r["n_assigned"]),
        mean=_opt(r["mean"]), trimmed=_opt(r["trimmed"]), median=_opt(r["median"]), zscore=_opt(r["zscore"]),
        rank_mean=ranks["mean"], rank_trimmed=ranks["trimmed"], rank_zscore=ranks["zscore"],
        stdev=_opt(r["stdev"]), spread=_opt(r["spread"]), criterion_means={},
        flagged=max_dev is not None and max_dev >= flag_points, rank_median=ranks["median"], max_deviation=max_dev,
    )


def _filters(kind: str, nominator: int | None, alias: str = "e") -> tuple[str, dict]:
    """The page's filters as conditions on the entry alone (the nominators' kind by a subquery), so a
    page can be cut from the sort-key index before anything is joined."""
    clauses, params = [], {}
    if kind:
        clauses.append(f"{alias}.nominator_id IN (SELECT nk.id FROM nominators nk WHERE nk.kind = :kind)")
        params["kind"] = kind
    if nominator is not None:
        clauses.append(f"{alias}.nominator_id = :nominator")
        params["nominator"] = nominator
    return "".join(f" AND {c}" for c in clauses), params


def table_page(round_id: int, category: str, criteria: list[CriterionInfo], *, method: str, drafts: bool,
               kind: str, nominator: int | None, page: int, slots: int, page_size: int) -> TablePage:
    """One page of the (already ensured) ranking, filtered by kind / nominator. Ranks always come from
    the whole category, so a filtered view still shows each nomination's real place; the cut line is
    drawn under the last shown row inside the award slots, when rows follow it."""
    if method not in METHODS:
        raise ValueError(method)
    scope = Scope(round_id, category, bool(drafts))
    where, extra = _filters(kind, nominator)
    params = scope.params(slots=slots, **extra)
    flag_points = FLAG_SHARE * max_total(criteria)
    run = db.session.execute
    order = _order(method)
    backwards = ", ".join(f"{c} DESC" for c in order.split(", "))
    keys, own = _table(method), _order(method, "k")  # the method's own sort-key table, alias k
    # The row at position `slots` of the whole category is the last one inside the award slots.
    category_total, slot_row = run(text(
        f"SELECT (SELECT COUNT(*) FROM ranking_entries WHERE {SCOPE_WHERE}), (SELECT k.nomination_id FROM {keys} k "
        f"WHERE {scope_where('k')} ORDER BY {own} LIMIT 1 OFFSET :last)"), {**params, "last": max(slots, 1) - 1}).one()
    category_total = int(category_total)
    if where:
        total = int(run(text(f"SELECT COUNT(*) {_FROM} WHERE {scope_where('e')}{where}"), params).scalar())
        inside, cut_id = 0, None
        if category_total and slots:
            # The filtered rows among the first `slots` of the whole category; the last of them carries the line.
            own_backwards = ", ".join(f"{c} DESC" for c in own.split(", "))
            bound = (slot_row if slot_row is not None else
                     run(text(f"SELECT k.nomination_id FROM {keys} k WHERE {scope_where('k')} ORDER BY {own_backwards} "
                              "LIMIT 1"), params).scalar())
            found = run(text(
                f"SELECT e.nomination_id, COUNT(*) OVER () {_FROM} WHERE {scope_where('e')}{where} AND ({order}) <= "
                f"(SELECT {own} FROM {keys} k WHERE {scope_where('k')} AND k.nomination_id = :bound) "
                f"ORDER BY {backwards} LIMIT 1"), {**params, "bound": bound}).first()
            if found is not None:
                cut_id, inside = found[0], int(found[1])
    else:  # ranks are 1..n: the first `slots` are inside
        total = category_total
        inside = min(slots, total)
        cut_id = slot_row
    pager = Pager.of(total, page, page_size)
    # The page's ids first, from the method's sort-key index (PostgreSQL would rather hash-join every
    # row of the category and sort them), then their columns.
    if method == "zscore" and where:
        page_ids = (f"SELECT k.nomination_id FROM ranking_z k JOIN ranking_entries e ON e.round_id = k.round_id "
                    f"AND e.category = k.category AND e.drafts = k.drafts AND e.nomination_id = k.nomination_id "
                    f"WHERE {scope_where('k')}{where} ORDER BY {own} LIMIT :limit OFFSET :offset")
    else:
        page_ids = (f"SELECT k.nomination_id FROM {keys} k WHERE {scope_where('k')}{_filters(kind, nominator, 'k')[0]} "
                    f"ORDER BY {own} LIMIT :limit OFFSET :offset")
    inner = f"SELECT {_COLUMNS} {_FROM} WHERE {scope_where('e')} AND e.nomination_id IN ({page_ids})"
    known = None if where else f"ROW_NUMBER() OVER (ORDER BY {_order(method, 'p')}) + :offset"
    rows = [_rank_row(r, method, flag_points) for r in _plain_rows(run(text(
        _ranked(inner, method, known, PAGE_METHODS) + f" ORDER BY {_order(method, 'p')}"),
        {**params, "limit": page_size, "offset": pager.start}))]
    cut_page = None
    if inside and inside < total:
        cut_page = pager.page_of(inside - 1)
    else:
        cut_id = None
    options = [NominatorOption(r[0], r[1], r[2]) for r in sorted(run(text(
        "SELECT nr.id, nr.name, nr.kind, nr.position FROM nominators nr "
        f"WHERE nr.id IN (SELECT DISTINCT nominator_id FROM ranking_entries WHERE {SCOPE_WHERE})"), params),
        key=lambda r: (KIND_ORDER.get(r[2], 9), r[3], r[0]))]
    return TablePage(rows=rows, pager=pager, category_total=category_total, slots=slots, cut_id=cut_id,
                     cut_page=cut_page, nominators=options)


def with_criterion_means(rows: list[RankRow], round_id: int, category: str, *, drafts: bool,
                         criteria: list[CriterionInfo]) -> list[RankRow]:
    """The same rows with their per-criterion means (kept with the ranking), read for these rows only."""
    if not rows:
        return rows
    scope = Scope(round_id, category, bool(drafts))
    codes = {c.id: c.code for c in criteria}
    means: dict[int, dict[str, float]] = {}
    for nid, cid, mean in db.session.execute(text(
            f"SELECT nomination_id, criterion_id, mean FROM ranking_means WHERE {SCOPE_WHERE} "
            f"AND {only_ids('nomination_id', [r.nomination_id for r in rows])}"), scope.params()):
        if cid in codes:
            means.setdefault(nid, {})[codes[cid]] = float(mean)
    return [replace(r, criterion_means=means.get(r.nomination_id, {})) for r in rows]


def entry(round_id: int, category: str, criteria: list[CriterionInfo], *, method: str, drafts: bool,
          nomination_id: int) -> RankRow | None:
    """One nomination's row of the (already ensured) ranking, or None if it is not in it."""
    scope = Scope(round_id, category, bool(drafts))
    inner = f"SELECT {_COLUMNS} {_FROM} WHERE {scope_where('e')} AND e.nomination_id = :nid"
    row = db.session.execute(text(_ranked(inner, method)), scope.params(nid=nomination_id)).mappings().first()
    return None if row is None else _rank_row(row, method, FLAG_SHARE * max_total(criteria))


def rows(round_id: int, category: str, criteria: list[CriterionInfo], *, method: str, drafts: bool) -> list[RankRow]:
    """Every row of the (already ensured) ranking in rank order, ranks by window (verify and tests)."""
    scope = Scope(round_id, category, bool(drafts))
    ranks = ", ".join(f"ROW_NUMBER() OVER (ORDER BY {_order(m)}) AS rank_{m}" for m in METHODS)
    flag_points = FLAG_SHARE * max_total(criteria)
    return [_rank_row(r, method, flag_points) for r in _plain_rows(db.session.execute(text(
        f"SELECT {_COLUMNS}, {ranks} {_FROM} WHERE {scope_where('e')} ORDER BY {_order(method)}"),
        scope.params()))]


# --------------------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class Drift:
    round_id: int
    category: str
    drafts: bool
    method: str | None  # the ranking method of a differing rank; None for a value
    nomination_id: int
    field: str
    kept: object
    computed: object


_VALUES = ("n_scored", "n_assigned", "mean", "trimmed", "median", "zscore", "stdev", "spread", "max_deviation")


def verify(round_id: int | None = None) -> list[Drift]:
    """`flask ranking verify`: every kept ranking (each mark) brought up to date and compared, row by row,
    with the one-statement computation from the scores: the rank under every method, every value (to
    1e-9) and the criterion means. One computation and one read of the kept rows per ranking: each row
    carries all four ranks."""
    from app.ranking.engine import compute, criteria_of

    where = "" if round_id is None else " WHERE round_id = :round_id"
    marks = db.session.execute(text(f"SELECT round_id, category, drafts FROM ranking_marks{where} "
                                    "ORDER BY round_id, category, drafts"), {"round_id": round_id}).all()
    out: list[Drift] = []
    for rid, category, drafts in marks:
        drafts = bool(drafts)
        criteria = criteria_of(rid, category)
        ensure(rid, category, drafts, criteria)
        want = {r.nomination_id: r for r in compute(rid, category, method=METHODS[0], include_drafts=drafts,
                                                    criteria=criteria)}
        kept_rows = with_criterion_means(rows(rid, category, criteria, method=METHODS[0], drafts=drafts),
                                         rid, category, drafts=drafts, criteria=criteria)
        by_id = {r.nomination_id: r for r in kept_rows}
        scope = (rid, category, drafts)
        for nid in sorted(set(want) | set(by_id)):
            got, ref = by_id.get(nid), want.get(nid)
            if got is None or ref is None:
                out.append(Drift(*scope, None, nid, "row", got is not None, ref is not None))
                continue
            out += [Drift(*scope, m, nid, "rank", got.rank_by(m), ref.rank_by(m)) for m in METHODS
                    if got.rank_by(m) != ref.rank_by(m)]
            out += [Drift(*scope, None, nid, name, getattr(got, name), getattr(ref, name)) for name in _VALUES
                    if _differs(getattr(got, name), getattr(ref, name))]
            if _differs_means(got.criterion_means, ref.criterion_means):
                out.append(Drift(*scope, None, nid, "criterion_means", got.criterion_means, ref.criterion_means))
    return out


def _differs(a, b) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return abs(float(a) - float(b)) > 1e-9


def _differs_means(a: dict, b: dict) -> bool:
    return a.keys() != b.keys() or any(_differs(a[k], b[k]) for k in a)


def rebuild(found: list[Drift], actor=None) -> int:
    """`flask ranking verify --fix`: recompute each differing kept ranking whole, audited."""
    from app.audit import operations as audit
    from app.ranking.engine import criteria_of

    scopes = sorted({(d.round_id, d.category, d.drafts) for d in found})
    for rid, category, drafts in scopes:
        with write_transaction():
            db.session.execute(text(f"DELETE FROM ranking_marks WHERE {SCOPE_WHERE}"), Scope(rid, category, drafts).params())
            audit.record("ranking.rebuild", "round", rid, actor=actor, round_id=rid,
                         before={"category": category, "drafts": drafts,
                                 "differences": len([d for d in found if (d.round_id, d.category, d.drafts)
                                                     == (rid, category, drafts)])},
                         after={"category": category, "drafts": drafts})
        ensure(rid, category, drafts, criteria_of(rid, category))
    return len(scopes)
