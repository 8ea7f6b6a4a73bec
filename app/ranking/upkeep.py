"""The live ranking, kept up to date by folding in what changed (tables: app/models/ranking.py; reading
them: app/ranking/kept.py).

Why: recomputing a 7,000-nomination category from its 49,000 sheets costs the better part of a second
on SQLite, and the version moves with every score save. A save touches one nomination: its aggregates
(mean, trimmed, median, stdev, spread, max_dev) depend on its own sheets only; its reviewer's figures
change, and with them the z-scores of that reviewer's nominations. Ranks are not stored (one save moves
thousands of them): the pages read them from the sort keys written here. All of it is SQL, with the
same formulas as the one-statement ranking (app/ranking/sql.py aggregate_ctes), which stays the
reference that `flask ranking verify` compares these rows with.

One computation per version, for every worker and server: the derived rows live in the database. The
first poll that sees a new counter version claims the mark row, takes its lock (FOR UPDATE on
PostgreSQL; SQLite's BEGIN IMMEDIATE serialises anyway), re-reads it and folds the changes in; a poll
that finds the mark claimed waits a moment for that fold and otherwise answers with the last finished
one. A poll between changes reads the mark and nothing else.

Versions commit in order (every bump updates the one counter row and holds its lock until commit), so
once version V is visible every change up to V is too: folding (mark, V] and setting the mark to V
never skips one.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from sqlalchemy import text

from app.core.database import write_transaction
from app.extensions import db
from app.ranking import sql as ranking_sql
from app.ranking.engine import CriterionInfo, check_category, sql_criteria
from app.ranking.engine import version as ranking_version  # the counter: a local `version` is the folded one
from app.ranking.sql import Criteria, aggregate_ctes, only_ids, order_value, z_term, zscore_of

METHODS = ("mean", "trimmed", "median", "zscore")
# Beyond this many touched nominations one pass over the whole category is cheaper than the pieces.
WHOLE_AT = 1500
# A mark this many versions behind the newest fold of its category stops holding the change log: it
# folds whole when next read (by then far more than WHOLE_AT nominations have changed, as a rule).
KEEP_VERSIONS = 10 * WHOLE_AT
# A poll that finds another process folding waits this long for its result before it answers with the
# last finished fold (ensure's `live`); a claim this old belongs to a fold that died.
FOLD_WAIT_SECONDS = 1.0
CLAIM_SECONDS = 30.0
LAST = 1.0  # a negated aggregate is <= 0: no aggregate sorts after every real one
LAST_SD = 1e300

def scope_where(alias: str = "") -> str:
    """The condition selecting one kept ranking's rows (of table `alias`, or unqualified)."""
    col = f"{alias}." if alias else ""
    return f"{col}round_id = :round_id AND {col}category = :category AND {col}drafts = :drafts"


SCOPE_WHERE = scope_where()


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


def _mark(scope: Scope, *, lock: bool = False):
    suffix = " FOR UPDATE" if lock and _dialect() == "postgresql" else ""
    return db.session.execute(text(f"SELECT version, rubric, folded_at, claimed_at FROM ranking_marks WHERE {SCOPE_WHERE}"
                                   f"{suffix}"), scope.params()).first()


def _claim(scope: Scope, now: float) -> bool:
    """Announce a fold in a short transaction of its own, so that concurrent polls see it and need not
    queue behind it (a claim older than CLAIM_SECONDS is a crashed fold's, and may be taken over)."""
    with write_transaction():
        taken = db.session.execute(text(
            f"UPDATE ranking_marks SET claimed_at = :now WHERE {SCOPE_WHERE} "
            "AND (claimed_at IS NULL OR claimed_at < :stale)"), scope.params(now=now, stale=now - CLAIM_SECONDS))
    return taken.rowcount == 1


def ensure(round_id: int, category: str, drafts: bool, criteria: list[CriterionInfo], *,
           version: int | None = None, live: bool = False, reuse_within: float = 0.0) -> int:
    """Fold every committed change into the derived rows of (round, category, drafts); returns the
    counter version they now show. `version`: the counter as the caller just read it. Costs one read
    when nothing changed.

    live (a live round's poll): while another process folds, a poll waits for it at most
    FOLD_WAIT_SECONDS and then answers with the rows as they are, so under a stream of saves polls do
    not queue (each holding a server thread) behind one fold after another.

    reuse_within > 0 (RANKING_MAX_AGE_SECONDS, for national scale): a poll answers with the rows as they
    are whenever their fold began at most that long ago, so a stream of saves costs one fold per interval
    instead of one per poll (0, the default: every version is folded by the first poll that sees it)."""
    check_category(category)
    scope = Scope(round_id, category, bool(drafts))
    digest = rubric_digest(criteria)
    current = ranking_version(scope.round_id, scope.category) if version is None else version
    mark = _mark(scope)
    if mark is not None and mark.version == current and mark.rubric == digest:
        return current
    started = time.time()
    if (reuse_within > 0 and mark is not None and mark.rubric == digest and mark.version >= 0
            and started - float(mark.folded_at or 0) <= reuse_within):
        return int(mark.version)
    if mark is None:
        # The mark row first, in a transaction of its own, so that the very first fold can be claimed
        # too: its concurrent polls then wait without a lock or a connection held, not in the INSERT.
        with write_transaction():
            db.session.execute(text(
                "INSERT INTO ranking_marks (round_id, category, drafts, version, rubric, computations, folded_at) "
                "VALUES (:round_id, :category, :drafts, -1, '', 0, 0) ON CONFLICT DO NOTHING"), scope.params())
        mark = _mark(scope)
    if live and not _claim(scope, started):
        # Another process is folding. With rows to show, wait for it a moment and then answer with the
        # last finished fold rather than queue behind it (each waiting poll would hold a server thread):
        # its data is at most one poll interval old unless a fold takes longer than that, and the next
        # poll asks again. With none yet (the first fold, a rubric change) wait for that fold itself.
        usable = mark.rubric == digest and mark.version >= 0
        deadline = time.monotonic() + (FOLD_WAIT_SECONDS if usable else CLAIM_SECONDS)
        while time.monotonic() < deadline:
            time.sleep(0.02 if usable else 0.05)
            db.session.rollback()  # a fresh snapshot of the mark; the connection goes back to the pool
            mark = _mark(scope)
            if (mark.version >= current and mark.rubric == digest) or mark.claimed_at is None:
                break
        if mark.rubric == digest and mark.version >= 0:
            return int(mark.version)
        # the claimer died before finishing: fold here
    with write_transaction():
        mark = _mark(scope, lock=True)
        # Re-read under the lock: a waiter may find the work done.
        version = ranking_version(scope.round_id, scope.category)
        done = mark.version == version and mark.rubric == digest
        # Or waited behind a fold that began after this poll did: its rows are newer than the poll.
        newer = live and mark.rubric == digest and float(mark.folded_at or 0) >= started
        if done or newer:
            db.session.execute(text(f"UPDATE ranking_marks SET claimed_at = NULL WHERE {SCOPE_WHERE}"), scope.params())
            return version if done else int(mark.version)
        touched = None
        if mark.rubric == digest and 0 <= mark.version < version:
            ids = [r[0] for r in db.session.execute(text(
                "SELECT DISTINCT nomination_id FROM ranking_changes WHERE round_id = :round_id "
                "AND category = :category AND version > :since AND version <= :until"),
                scope.params(since=mark.version, until=version))]
            if None not in ids and len(ids) <= WHOLE_AT:
                touched = ids
        _fold(scope, sql_criteria(criteria), touched)
        db.session.execute(text(
            "UPDATE ranking_marks SET version = :version, rubric = :rubric, computations = computations + 1, "
            f"folded_at = :started, claimed_at = NULL WHERE {SCOPE_WHERE}"),
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


# --------------------------------------------------------------------------------------- the fold


def _fold(scope: Scope, crit: Criteria, touched: list[int] | None) -> None:
    """Recompute the derived rows of the touched nominations (None: all) and everything that follows."""
    if touched is not None and not touched:
        return
    dialect = _dialect()
    params = scope.params(**crit.params())
    run = db.session.execute
    by_nomination = f"{SCOPE_WHERE} AND {only_ids('nomination_id', touched)}"
    before = set() if touched is None else _reviewers_of(scope, by_nomination)
    run(text(f"DELETE FROM ranking_sheets WHERE {by_nomination}"), params)
    run(text(f"""WITH {ranking_sql.counted_sheets_ctes(crit, scope.drafts, dialect, per_criterion=False,
                                                       only=touched)}
INSERT INTO ranking_sheets (round_id, category, drafts, sheet_id, nomination_id, reviewer_id, total)
SELECT :round_id, :category, :drafts, sheet_id, nomination_id, reviewer_id, total FROM sheet_totals"""), params)
    if touched is None:
        run(text(f"DELETE FROM ranking_reviewers WHERE {SCOPE_WHERE}"), params)
        _insert_reviewers(scope, "1 = 1")
        moved = None
    else:
        moved = _restate_reviewers(scope, before | _reviewers_of(scope, by_nomination))
    run(text(f"DELETE FROM ranking_entries WHERE {SCOPE_WHERE} AND {only_ids('nomination_id', touched)}"), params)
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
    run(text(f"DELETE FROM ranking_means WHERE {by_nomination}"), params)
    # Over the counted sheets just written above, not the eligibility CTEs again.
    run(text(f"""INSERT INTO ranking_means (round_id, category, drafts, nomination_id, criterion_id, mean)
SELECT st.round_id, st.category, st.drafts, st.nomination_id, sc.criterion_id, AVG(sc.value)
FROM ranking_sheets st
{ranking_sql.join_in_order("scores sc", "sc.sheet_id = st.sheet_id", touched)}
WHERE {scope_where("st")} AND {only_ids("st.nomination_id", touched)} AND sc.sheet_id = st.sheet_id
  AND {crit.in_list("sc.criterion_id")}
GROUP BY st.round_id, st.category, st.drafts, st.nomination_id, sc.criterion_id"""), params)
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
        f"SELECT :round_id, :category, :drafts, reviewer_id, n, mean, var FROM ({_STATS.format(key=SCOPE_WHERE, only=only)}) s"),
        scope.params())


def _restate_reviewers(scope: Scope, reviewers: set[int]) -> set[int]:
    """Re-derive these reviewers' figures; returns those whose figures moved (their z-scores follow)."""
    if not reviewers:
        return set()
    only = only_ids("reviewer_id", reviewers)
    old = {r[0]: tuple(r[1:]) for r in db.session.execute(text(
        f"SELECT reviewer_id, n, mean, var FROM ranking_reviewers WHERE {SCOPE_WHERE} AND {only}"), scope.params())}
    new = {r[0]: tuple(r[1:]) for r in db.session.execute(text(_STATS.format(key=SCOPE_WHERE, only=only)), scope.params())}
    moved = {r for r in reviewers if old.get(r) != new.get(r)}
    if moved:
        only_moved = only_ids("reviewer_id", moved)
        db.session.execute(text(f"DELETE FROM ranking_reviewers WHERE {SCOPE_WHERE} AND {only_moved}"), scope.params())
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
                f"SELECT nomination_id FROM ranking_sheets WHERE {SCOPE_WHERE} AND {only_ids('reviewer_id', moved)}"),
                scope.params()))
        ids = sorted(ids)
    zscore = zscore_of("z.z_mean")
    db.session.execute(text(f"DELETE FROM ranking_z WHERE {SCOPE_WHERE} AND {only_ids('nomination_id', ids)}"),
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
           WHERE {scope_where("s")} AND {only_ids("s.nomination_id", ids)}
           GROUP BY s.nomination_id) AS z ON z.nomination_id = e.nomination_id
WHERE {scope_where("e")} AND {only_ids("e.nomination_id", ids)}"""), scope.params())
