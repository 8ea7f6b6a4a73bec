"""The live ranking, kept up to date by folding in what changed (tables: app/models/ranking.py).

Why: recomputing a 7,000-nomination category from its 49,000 sheets costs the better part of a second
on SQLite, and the version moves with every score save. A save touches one nomination: its aggregates
(mean, trimmed, median, stdev, spread, max_dev) depend on its own sheets only; its reviewer's figures
change, and with them the z-scores of that reviewer's nominations; the four ranks are then re-read in
index order and only the rows whose rank moved are written. All of it is SQL, with the same formulas
as the one-statement ranking (app/ranking/sql.py aggregate_ctes), which stays the reference that
`flask ranking verify` compares these rows with.

One computation per version, for every worker and server: the derived rows live in the database. The
first poll that sees a new counter version takes the mark row (FOR UPDATE on PostgreSQL; SQLite's
BEGIN IMMEDIATE serialises anyway), re-reads it and folds the changes in; concurrent polls wait on
that lock and then find the mark current. A poll between changes reads the mark and nothing else.

Versions commit in order (every bump updates the one counter row and holds its lock until commit), so
once version V is visible every change up to V is too: folding (mark, V] and setting the mark to V
never skips one.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, replace

from sqlalchemy import text

from app.core.database import write_transaction
from app.extensions import db
from app.models import KIND_LABELS
from app.ranking import sql as ranking_sql
from app.ranking.engine import FLAG_SHARE, CriterionInfo, RankRow, _check, _criteria, max_total
from app.ranking.sql import Criteria, aggregate_ctes, only_ids, order_value, z_term, zscore_of

METHODS = ("mean", "trimmed", "median", "zscore")
# The ranks the ranking page shows beside each row (templates/ranking/category.html), besides its own.
PAGE_METHODS = ("mean", "trimmed", "zscore")
# Beyond this many touched nominations one pass over the whole category is cheaper than the pieces.
WHOLE_AT = 1500
# A mark this many versions behind the newest fold of its category stops holding the change log: it
# folds whole when next read (by then far more than WHOLE_AT nominations have changed, as a rule).
KEEP_VERSIONS = 10 * WHOLE_AT
# A poll that finds another process folding waits this long for its result before it answers with the
# rows as they are (if fresh enough: ensure's max_age); a claim this old belongs to a fold that died.
FOLD_WAIT_SECONDS = 1.0
CLAIM_SECONDS = 30.0
LAST = 1.0  # a negated aggregate is <= 0: no aggregate sorts after every real one
LAST_SD = 1e300
KIND_ORDER = {kind: i for i, kind in enumerate(KIND_LABELS)}

_KEY = "round_id = :round_id AND category = :category AND drafts = :drafts"


def _key(alias: str) -> str:
    return f"{alias}.round_id = :round_id AND {alias}.category = :category AND {alias}.drafts = :drafts"


def rubric_digest(criteria: list[CriterionInfo]) -> str:
    """The rubric the rows were computed for: before scoring starts it may change without a bump."""
    return hashlib.sha1(repr([(c.id, c.max_score) for c in criteria]).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Scope:
    round_id: int
    category: str
    drafts: bool

    def params(self, **extra) -> dict:
        return {"round_id": self.round_id, "category": self.category, "drafts": self.drafts, **extra}


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _counter(scope: Scope) -> int:
    return int(db.session.execute(text(
        "SELECT COALESCE(MAX(version), 0) FROM ranking_counters WHERE round_id = :round_id AND category = :category"),
        scope.params()).scalar() or 0)


def _mark(scope: Scope, *, lock: bool = False):
    suffix = " FOR UPDATE" if lock and _dialect() == "postgresql" else ""
    return db.session.execute(text(f"SELECT version, rubric, folded_at, claimed_at FROM ranking_marks WHERE {_KEY}"
                                   f"{suffix}"), scope.params()).first()


def _claim(scope: Scope, now: float) -> bool:
    """Announce a fold in a short transaction of its own, so that concurrent polls see it and need not
    queue behind it (a claim older than CLAIM_SECONDS is a crashed fold's, and may be taken over)."""
    with write_transaction():
        taken = db.session.execute(text(
            f"UPDATE ranking_marks SET claimed_at = :now WHERE {_KEY} "
            "AND (claimed_at IS NULL OR claimed_at < :stale)"), scope.params(now=now, stale=now - CLAIM_SECONDS))
    return taken.rowcount == 1


def ensure(round_id: int, category: str, drafts: bool, criteria: list[CriterionInfo], *,
           version: int | None = None, max_age: float = 0.0, reuse_within: float = 0.0) -> int:
    """Fold every committed change into the derived rows of (round, category, drafts); returns the
    counter version they now show. `version`: the counter as the caller just read it. Costs one read
    when nothing changed.

    max_age > 0 (a live round's poll): while another process folds, a poll waits for it at most
    FOLD_WAIT_SECONDS and then answers with the rows as they are, so under a stream of saves polls do
    not queue (each holding a server thread) behind one fold after another.

    reuse_within > 0 (RANKING_MAX_AGE_SECONDS, for national scale): a poll answers with the rows as they
    are whenever their fold began at most that long ago, so a stream of saves costs one fold per interval
    instead of one per poll (0, the default: every version is folded by the first poll that sees it)."""
    _check(category)
    scope = Scope(round_id, category, bool(drafts))
    digest = rubric_digest(criteria)
    current = _counter(scope) if version is None else version
    mark = _mark(scope)
    if mark is not None and mark.version == current and mark.rubric == digest:
        return current
    started = time.time()
    if (reuse_within > 0 and mark is not None and mark.rubric == digest and mark.version >= 0
            and started - float(mark.folded_at or 0) <= reuse_within):
        return int(mark.version)
    if max_age > 0 and mark is not None and mark.rubric == digest and mark.version >= 0 and not _claim(scope, started):
        deadline = time.monotonic() + FOLD_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.02)
            db.session.rollback()  # a fresh snapshot of the mark
            mark = _mark(scope)
            if mark.version >= current or mark.claimed_at is None:
                break
        # Another fold is under way: answer with the last finished one rather than queue behind it
        # (each waiting poll would hold a server thread). Its data is at most one poll interval old
        # unless a fold itself takes longer than that; the next poll asks again.
        return int(mark.version)
    with write_transaction():
        if mark is None:
            db.session.execute(text(
                "INSERT INTO ranking_marks (round_id, category, drafts, version, rubric, computations, folded_at) "
                "VALUES (:round_id, :category, :drafts, -1, '', 0, 0) ON CONFLICT DO NOTHING"), scope.params())
        mark = _mark(scope, lock=True)
        version = _counter(scope)  # re-read under the lock: a waiter may find the work done
        if mark.version == version and mark.rubric == digest:
            db.session.execute(text(f"UPDATE ranking_marks SET claimed_at = NULL WHERE {_KEY}"), scope.params())
            return version
        if max_age > 0 and mark.rubric == digest and float(mark.folded_at or 0) >= started:
            # Waited behind a fold that began after this poll did: its rows are newer than the poll.
            return int(mark.version)
        touched = None
        if mark.rubric == digest and 0 <= mark.version < version:
            ids = [r[0] for r in db.session.execute(text(
                "SELECT DISTINCT nomination_id FROM ranking_changes WHERE round_id = :round_id "
                "AND category = :category AND version > :since AND version <= :until"),
                scope.params(since=mark.version, until=version))]
            if None not in ids and len(ids) <= WHOLE_AT:
                touched = ids
        _fold(scope, _criteria(criteria), touched)
        db.session.execute(text(
            "UPDATE ranking_marks SET version = :version, rubric = :rubric, computations = computations + 1, "
            f"folded_at = :started, claimed_at = NULL WHERE {_KEY}"),
            scope.params(version=version, rubric=digest, started=started))
        _prune(scope, version)
    return version


def _prune(scope: Scope, version: int) -> None:
    """Delete the changes every mark of the category has passed. A mark more than KEEP_VERSIONS behind
    (a view nobody opened for a long while: the ranking with drafts, say) would hold every change since
    — a table growing with every save — and fold them whole anyway: it is reset to fold whole when next
    read, and its changes go. Marks another process is folding right now are skipped (SKIP LOCKED: two
    lagging folds resetting each other would deadlock); they are about to be current."""
    lagging = ("SELECT round_id, category, drafts FROM ranking_marks WHERE round_id = :round_id "
               "AND category = :category AND version >= 0 AND version < :floor")
    if _dialect() == "postgresql":
        lagging += " FOR UPDATE SKIP LOCKED"
    db.session.execute(text(
        f"UPDATE ranking_marks SET version = -1 WHERE (round_id, category, drafts) IN ({lagging})"),
        scope.params(floor=version - KEEP_VERSIONS))
    db.session.execute(text(
        "DELETE FROM ranking_changes WHERE round_id = :round_id AND category = :category AND version <= "
        "(SELECT MIN(version) FROM ranking_marks WHERE round_id = :round_id AND category = :category "
        "AND version >= 0)"), scope.params())


def computations(round_id: int | None = None) -> int:
    """How many times the derived rows were brought up to date (the benchmark's count)."""
    where = "" if round_id is None else " WHERE round_id = :round_id"
    return int(db.session.execute(text(f"SELECT COALESCE(SUM(computations), 0) FROM ranking_marks{where}"),
                                  {"round_id": round_id}).scalar() or 0)


@dataclass(frozen=True)
class Drift:
    round_id: int
    category: str
    drafts: bool
    method: str
    nomination_id: int
    field: str
    kept: object
    computed: object


_COMPARED = ("rank", "n_scored", "n_assigned", "mean", "trimmed", "median", "zscore", "stdev", "spread", "max_deviation")


def verify(round_id: int | None = None) -> list[Drift]:
    """`flask ranking verify`: every kept ranking (each mark) brought up to date and compared, row by row
    and under every method, with the one-statement computation from the scores (values to 1e-9)."""
    from app.ranking.engine import compute, criteria_of

    where = "" if round_id is None else " WHERE round_id = :round_id"
    marks = db.session.execute(text(f"SELECT round_id, category, drafts FROM ranking_marks{where} "
                                    "ORDER BY round_id, category, drafts"), {"round_id": round_id}).all()
    out: list[Drift] = []
    for rid, category, drafts in marks:
        criteria = criteria_of(rid, category)
        ensure(rid, category, bool(drafts), criteria)
        means = {}
        for method in METHODS:
            want = {r.nomination_id: r for r in compute(rid, category, method=method, include_drafts=bool(drafts),
                                                        criteria=criteria)}
            kept = rows(rid, category, criteria, method=method, drafts=bool(drafts))
            if method == METHODS[0]:
                means = {r.nomination_id: r.criterion_means
                         for r in with_criterion_means(kept, rid, category, drafts=bool(drafts), criteria=criteria)}
            by_id = {r.nomination_id: r for r in kept}
            for nid in sorted(set(want) | set(by_id)):
                got, ref = by_id.get(nid), want.get(nid)
                if got is None or ref is None:
                    out.append(Drift(rid, category, bool(drafts), method, nid, "row", got is not None, ref is not None))
                    continue
                for name in _COMPARED:
                    a, b = getattr(got, name), getattr(ref, name)
                    if _differs(a, b):
                        out.append(Drift(rid, category, bool(drafts), method, nid, name, a, b))
                if method == METHODS[0] and _differs_means(means.get(nid, {}), ref.criterion_means):
                    out.append(Drift(rid, category, bool(drafts), method, nid, "criterion_means",
                                     means.get(nid, {}), ref.criterion_means))
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
            db.session.execute(text(f"DELETE FROM ranking_marks WHERE {_KEY}"), Scope(rid, category, drafts).params())
            audit.record("ranking.rebuild", "round", rid, actor=actor, round_id=rid,
                         before={"category": category, "drafts": drafts,
                                 "differences": len([d for d in found if (d.round_id, d.category, d.drafts)
                                                     == (rid, category, drafts)])},
                         after={"category": category, "drafts": drafts})
        ensure(rid, category, drafts, criteria_of(rid, category))
    return len(scopes)


# --------------------------------------------------------------------------------------- the fold


def _fold(scope: Scope, crit: Criteria, touched: list[int] | None) -> None:
    """Recompute the derived rows of the touched nominations (None: all) and everything that follows."""
    if touched is not None and not touched:
        return
    dialect = _dialect()
    params = scope.params(**crit.params())
    run = db.session.execute
    by_nomination = f"{_KEY} AND {only_ids('nomination_id', touched)}"
    before = set() if touched is None else _reviewers_of(scope, by_nomination)
    run(text(f"DELETE FROM ranking_sheets WHERE {by_nomination}"), params)
    run(text(f"""WITH {ranking_sql.counted_sheets_ctes(crit, scope.drafts, dialect, per_criterion=False,
                                                       only=touched)}
INSERT INTO ranking_sheets (round_id, category, drafts, sheet_id, nomination_id, reviewer_id, total)
SELECT :round_id, :category, :drafts, sheet_id, nomination_id, reviewer_id, total FROM sheet_totals"""), params)
    if touched is None:
        run(text(f"DELETE FROM ranking_reviewers WHERE {_KEY}"), params)
        _insert_reviewers(scope, "1 = 1")
        moved = None
    else:
        moved = _restate_reviewers(scope, before | _reviewers_of(scope, by_nomination))
    run(text(f"DELETE FROM ranking_entries WHERE {_KEY} AND {only_ids('nomination_id', touched)}"), params)
    o = lambda expr: order_value(expr, dialect)  # noqa: E731
    run(text(f"""WITH {aggregate_ctes(crit, scope.drafts, dialect, per_criterion=False, only=touched)}
INSERT INTO ranking_entries (round_id, category, drafts, nomination_id, nominator_id, n_assigned, n_scored, mean,
  trimmed, median, stdev, spread, max_dev, k_mean, k_trimmed, k_median, k_n, k_sd)
SELECT :round_id, :category, :drafts, agg.nomination_id, noms.nominator_id, n_assigned, n_scored, mean, trimmed,
  median, stdev, spread, max_dev, COALESCE(-{o("mean")}, {LAST}), COALESCE(-{o("trimmed")}, {LAST}),
  COALESCE(-{o("median")}, {LAST}), -n_scored, COALESCE({o("stdev")}, {LAST_SD})
FROM agg JOIN noms ON noms.id = agg.nomination_id"""), params)
    if touched is None:
        _analyze("ranking_sheets", "ranking_reviewers", "ranking_entries")
    _restate_z(scope, touched, moved, dialect)
    run(text(f"DELETE FROM ranking_means WHERE {_KEY} AND {only_ids('nomination_id', touched)}"), params)
    run(text(f"""WITH {ranking_sql.counted_sheets_ctes(crit, scope.drafts, dialect, per_criterion=False,
                                                       only=touched)}
INSERT INTO ranking_means (round_id, category, drafts, nomination_id, criterion_id, mean)
SELECT :round_id, :category, :drafts, st.nomination_id, sc.criterion_id, AVG(sc.value)
FROM sheet_totals st
{ranking_sql.join_in_order("scores sc", "sc.sheet_id = st.sheet_id", touched)}
WHERE sc.sheet_id = st.sheet_id AND {crit.in_list("sc.criterion_id")}
GROUP BY st.nomination_id, sc.criterion_id"""), params)
    if touched is None:
        _analyze("ranking_z", "ranking_means")


def _analyze(*tables: str) -> None:
    """Fresh statistics for the planners once a whole category is (re)written, before the next statement
    joins it: without them PostgreSQL takes the new rows for a handful and nests loops over the whole
    category (the z-scores' join: tens of seconds), and SQLite picks the reviewer index for nomination
    lookups. ANALYZE counts the rows this transaction wrote."""
    for table in tables:
        db.session.execute(text(f"ANALYZE {table}"))


def _reviewers_of(scope: Scope, where: str) -> set[int]:
    # No DISTINCT: SQLite would walk the reviewer index for it instead of seeking the nominations.
    return {r[0] for r in db.session.execute(text(
        f"SELECT reviewer_id FROM ranking_sheets WHERE {where}"), scope.params())}


_STATS = ("SELECT reviewer_id, COUNT(*) AS n, AVG(total) AS mean, "
          "AVG(total * total) - AVG(total) * AVG(total) AS var FROM ranking_sheets WHERE {key} AND {only} "
          "GROUP BY reviewer_id")


def _insert_reviewers(scope: Scope, only: str) -> None:
    db.session.execute(text(
        "INSERT INTO ranking_reviewers (round_id, category, drafts, reviewer_id, n, mean, var) "
        f"SELECT :round_id, :category, :drafts, reviewer_id, n, mean, var FROM ({_STATS.format(key=_KEY, only=only)}) s"),
        scope.params())


def _restate_reviewers(scope: Scope, reviewers: set[int]) -> set[int]:
    """Re-derive these reviewers' figures; returns those whose figures moved (their z-scores follow)."""
    if not reviewers:
        return set()
    only = only_ids("reviewer_id", reviewers)
    old = {r[0]: tuple(r[1:]) for r in db.session.execute(text(
        f"SELECT reviewer_id, n, mean, var FROM ranking_reviewers WHERE {_KEY} AND {only}"), scope.params())}
    new = {r[0]: tuple(r[1:]) for r in db.session.execute(text(_STATS.format(key=_KEY, only=only)), scope.params())}
    moved = {r for r in reviewers if old.get(r) != new.get(r)}
    if moved:
        only_moved = only_ids("reviewer_id", moved)
        db.session.execute(text(f"DELETE FROM ranking_reviewers WHERE {_KEY} AND {only_moved}"), scope.params())
        _insert_reviewers(scope, only_moved)
    return moved


def _restate_z(scope: Scope, touched: list[int] | None, moved: set[int] | None, dialect: str) -> None:
    """z-scores of the touched nominations and of every nomination a moved reviewer scored, rewritten
    from their entries. Delete + insert rather than UPDATE … FROM: PostgreSQL nests loops for the
    latter over a whole category (tens of seconds) even with fresh statistics."""
    ids = None
    if touched is not None:
        ids = set(touched)
        if moved:
            ids.update(r[0] for r in db.session.execute(text(
                f"SELECT nomination_id FROM ranking_sheets WHERE {_KEY} AND {only_ids('reviewer_id', moved)}"),
                scope.params()))
        ids = sorted(ids)
    zscore = zscore_of("z.z_mean")
    db.session.execute(text(f"DELETE FROM ranking_z WHERE {_KEY} AND {only_ids('nomination_id', ids)}"),
                       scope.params())
    db.session.execute(text(f"""
INSERT INTO ranking_z (round_id, category, drafts, nomination_id, zscore, k_zscore, k_n, k_sd)
SELECT e.round_id, e.category, e.drafts, e.nomination_id, {zscore},
       COALESCE(-{order_value(zscore, dialect)}, {LAST}), e.k_n, e.k_sd
FROM ranking_entries e
LEFT JOIN (SELECT s.nomination_id, AVG({z_term("s.total", "r.n", "r.mean", "r.var")}) AS z_mean
           FROM ranking_sheets s
           JOIN ranking_reviewers r ON r.round_id = s.round_id AND r.category = s.category
                                   AND r.drafts = s.drafts AND r.reviewer_id = s.reviewer_id
           WHERE {_key("s")} AND {only_ids("s.nomination_id", ids)}
           GROUP BY s.nomination_id) AS z ON z.nomination_id = e.nomination_id
WHERE {_key("e")} AND {only_ids("e.nomination_id", ids)}"""), scope.params())


# --------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class NominatorOption:
    id: int
    name: str
    kind: str


@dataclass(frozen=True)
class TablePage:
    rows: list[RankRow]
    total: int  # rows after filtering
    category_total: int
    page: int
    pages: int
    page_size: int
    first_index: int  # 0-based index of rows[0] in the filtered list
    slots: int
    cut_id: int | None  # the last row inside the award slots, when rows follow it
    cut_page: int | None
    nominators: list[NominatorOption]  # every nominator of the category, in official order

    def page_numbers(self, around: int = 2) -> list[int | None]:
        """1 … 4 5 [6] 7 8 … 70 (None marks a gap)."""
        keep = {1, self.pages, *range(self.page - around, self.page + around + 1)}
        out: list[int | None] = []
        for n in sorted(k for k in keep if 1 <= k <= self.pages):
            if out and out[-1] is not None and n - out[-1] > 1:
                out.append(None)
            out.append(n)
        return out


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
         (SELECT COUNT(*) FROM {_table(m)} x WHERE {_key('x')}
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
        f"SELECT (SELECT COUNT(*) FROM ranking_entries WHERE {_KEY}), (SELECT k.nomination_id FROM {keys} k "
        f"WHERE {_key('k')} ORDER BY {own} LIMIT 1 OFFSET :last)"), {**params, "last": max(slots, 1) - 1}).one()
    category_total = int(category_total)
    if where:
        total = int(run(text(f"SELECT COUNT(*) {_FROM} WHERE {_key('e')}{where}"), params).scalar())
        inside, cut_id = 0, None
        if category_total and slots:
            # The filtered rows among the first `slots` of the whole category; the last of them carries the line.
            own_backwards = ", ".join(f"{c} DESC" for c in own.split(", "))
            bound = (slot_row if slot_row is not None else
                     run(text(f"SELECT k.nomination_id FROM {keys} k WHERE {_key('k')} ORDER BY {own_backwards} "
                              "LIMIT 1"), params).scalar())
            found = run(text(
                f"SELECT e.nomination_id, COUNT(*) OVER () {_FROM} WHERE {_key('e')}{where} AND ({order}) <= "
                f"(SELECT {own} FROM {keys} k WHERE {_key('k')} AND k.nomination_id = :bound) "
                f"ORDER BY {backwards} LIMIT 1"), {**params, "bound": bound}).first()
            if found is not None:
                cut_id, inside = found[0], int(found[1])
    else:  # ranks are 1..n: the first `slots` are inside
        total = category_total
        inside = min(slots, total)
        cut_id = slot_row
    pages = max(1, math.ceil(total / page_size))
    page = min(page, pages)
    start = (page - 1) * page_size
    # The page's ids first, from the method's sort-key index (PostgreSQL would rather hash-join every
    # row of the category and sort them), then their columns.
    if method == "zscore" and where:
        page_ids = (f"SELECT k.nomination_id FROM ranking_z k JOIN ranking_entries e ON e.round_id = k.round_id "
                    f"AND e.category = k.category AND e.drafts = k.drafts AND e.nomination_id = k.nomination_id "
                    f"WHERE {_key('k')}{where} ORDER BY {own} LIMIT :limit OFFSET :offset")
    else:
        page_ids = (f"SELECT k.nomination_id FROM {keys} k WHERE {_key('k')}{_filters(kind, nominator, 'k')[0]} "
                    f"ORDER BY {own} LIMIT :limit OFFSET :offset")
    inner = f"SELECT {_COLUMNS} {_FROM} WHERE {_key('e')} AND e.nomination_id IN ({page_ids})"
    known = None if where else f"ROW_NUMBER() OVER (ORDER BY {_order(method, 'p')}) + :offset"
    rows = [_rank_row(r, method, flag_points) for r in _plain_rows(run(text(
        _ranked(inner, method, known, PAGE_METHODS) + f" ORDER BY {_order(method, 'p')}"),
        {**params, "limit": page_size, "offset": start}))]
    cut_page = None
    if inside and inside < total:
        cut_page = (inside - 1) // page_size + 1
    else:
        cut_id = None
    options = [NominatorOption(r[0], r[1], r[2]) for r in sorted(run(text(
        "SELECT nr.id, nr.name, nr.kind, nr.position FROM nominators nr "
        f"WHERE nr.id IN (SELECT DISTINCT nominator_id FROM ranking_entries WHERE {_KEY})"), params),
        key=lambda r: (KIND_ORDER.get(r[2], 9), r[3], r[0]))]
    return TablePage(rows=rows, total=total, category_total=category_total, page=page, pages=pages,
                     page_size=page_size, first_index=start, slots=slots, cut_id=cut_id, cut_page=cut_page,
                     nominators=options)


def with_criterion_means(rows: list[RankRow], round_id: int, category: str, *, drafts: bool,
                         criteria: list[CriterionInfo]) -> list[RankRow]:
    """The same rows with their per-criterion means (kept with the ranking), read for these rows only."""
    if not rows:
        return rows
    scope = Scope(round_id, category, bool(drafts))
    codes = {c.id: c.code for c in criteria}
    means: dict[int, dict[str, float]] = {}
    for nid, cid, mean in db.session.execute(text(
            f"SELECT nomination_id, criterion_id, mean FROM ranking_means WHERE {_KEY} "
            f"AND {only_ids('nomination_id', [r.nomination_id for r in rows])}"), scope.params()):
        if cid in codes:
            means.setdefault(nid, {})[codes[cid]] = float(mean)
    return [replace(r, criterion_means=means.get(r.nomination_id, {})) for r in rows]


def entry(round_id: int, category: str, criteria: list[CriterionInfo], *, method: str, drafts: bool,
          nomination_id: int) -> RankRow | None:
    """One nomination's row of the (already ensured) ranking, or None if it is not in it."""
    scope = Scope(round_id, category, bool(drafts))
    inner = f"SELECT {_COLUMNS} {_FROM} WHERE {_key('e')} AND e.nomination_id = :nid"
    row = db.session.execute(text(_ranked(inner, method)), scope.params(nid=nomination_id)).mappings().first()
    return None if row is None else _rank_row(row, method, FLAG_SHARE * max_total(criteria))


def rows(round_id: int, category: str, criteria: list[CriterionInfo], *, method: str, drafts: bool) -> list[RankRow]:
    """Every row of the (already ensured) ranking in rank order, ranks by window (verify and tests)."""
    scope = Scope(round_id, category, bool(drafts))
    ranks = ", ".join(f"ROW_NUMBER() OVER (ORDER BY {_order(m)}) AS rank_{m}" for m in METHODS)
    flag_points = FLAG_SHARE * max_total(criteria)
    return [_rank_row(r, method, flag_points) for r in _plain_rows(db.session.execute(text(
        f"SELECT {_COLUMNS}, {ranks} {_FROM} WHERE {_key('e')} ORDER BY {_order(method)}"),
        scope.params()))]
