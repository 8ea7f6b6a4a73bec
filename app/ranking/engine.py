"""The live ranking: aggregates of reviewer totals per nomination, computed in SQL (see ranking_sql).

Definitions (shown to the chair on the page as well):

* A reviewer total is the sum of one sheet's criterion values. Only sheets that count are used: the
  sheet of an assigned, non-recused reviewer of an active (not withdrawn) nomination, status submitted —
  or, with include_drafts, also a draft, but only a draft that already has a value for every criterion
  (a half-filled draft would drag its nomination down). A submitted sheet always has every criterion.
* n_assigned counts assigned reviewers minus the recused ones (declared recusal or own unit).
* mean: average of the totals. trimmed: drop one highest and one lowest total when n >= 5, else the
  mean. median: the middle total (average of the two middle ones when n is even).
* zscore: every counted total is standardized against its reviewer's totals in the same category
  (z = (total - reviewer mean) / reviewer population stdev; a reviewer with a single total or no spread
  contributes z = 0), the z of a nomination is averaged and shown on a 0–100 scale as 50 + 10·z,
  clamped to 0..100 (a T-score: 50 is an average nomination, 60 one standard deviation above).
* stdev: sample standard deviation (n - 1) of the totals, only when n >= 2; spread: highest - lowest.
* flagged: some reviewer's total is at least FLAG_SHARE of the full marks away from the mean of the
  other reviewers' totals (with two reviewers: they differ by that much).
* rank: ROW_NUMBER over the whole category by the aggregate (desc), then more scores, then lower stdev,
  then lower nomination id; nominations without a counted sheet rank last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import DateTime, select, text

from app.core.errors import UserError
from app.extensions import db
from app.models import CATEGORIES, PHASE_LABELS, Criterion, RankingCounter, Round
from app.models.round import METHODS
from app.ranking import sql as ranking_sql
from app.ranking.sql import Criteria

FLAG_SHARE = 0.15
LEANING_SHARE = 0.05
LEANING_MIN_COMPARED = 3


@dataclass(frozen=True)
class RankRow:
    nomination_id: int
    title: str
    host: str | None
    nominator_id: int
    nominator_name: str
    nominator_kind: str
    nominator_position: int
    rank: int
    aggregate: float | None
    n_scored: int
    n_assigned: int
    mean: float | None
    trimmed: float | None
    median: float | None
    zscore: float | None
    rank_mean: int | None
    rank_trimmed: int | None
    rank_zscore: int | None
    stdev: float | None
    spread: float | None
    criterion_means: dict[str, float]
    flagged: bool
    rank_median: int | None = None
    max_deviation: float | None = None  # largest |total - mean of the other reviewers|

    def rank_by(self, method: str) -> int | None:
        return getattr(self, f"rank_{method}")


@dataclass(frozen=True)
class CriterionInfo:
    id: int
    code: str
    name: str
    max_score: float


@dataclass(frozen=True)
class ReviewerTotal:
    reviewer_id: int
    reviewer_name: str
    username: str
    status: str  # submitted | draft | missing (no sheet yet) | recused
    counted: bool  # part of the aggregates with these settings
    complete: bool  # has a value for every criterion
    total: float | None
    scores: dict[str, float | None]  # by criterion code; empty for a draft unless include_drafts
    comment: str
    submitted_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ReviewerSeverity:
    reviewer_id: int
    reviewer_name: str
    username: str
    n: int
    mean: float
    stdev: float  # population stdev of this reviewer's totals
    lowest: float
    highest: float
    offset: float | None  # mean of (own total - co-reviewers' mean) on shared nominations
    n_compared: int
    panel_mean: float
    panel_stdev: float
    leaning: str | None  # lenient | harsh | None
    panel_n: int = 0


@dataclass(frozen=True)
class ReviewerProgress:
    reviewer_id: int
    reviewer_name: str
    username: str
    assigned: int
    submitted: int
    drafts: int

    @property
    def missing(self) -> int:
        return self.assigned - self.submitted - self.drafts


@dataclass(frozen=True)
class Progress:
    assigned: int
    submitted: int
    drafts: int
    nominations: int
    nominations_complete: int
    nominations_started: int
    reviewers: list[ReviewerProgress] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return 100.0 * self.submitted / self.assigned if self.assigned else 0.0


@dataclass(frozen=True)
class LiveState:
    """The current round, as much as the ranking page needs, and the category's ranking version.

    Read with one plain statement: an idle poll answers 304 from this alone, so it must cost about as
    little as loading the signed-in user.
    """

    id: int
    name: str
    phase: str
    method: str
    slots_unit: int
    slots_activity: int
    version: int

    def slots(self, category: str) -> int:
        return self.slots_unit if category == "unit" else self.slots_activity

    @property
    def phase_label(self) -> str:
        return PHASE_LABELS[self.phase]

    @property
    def is_final(self) -> bool:
        return self.phase == "final"


# One statement per category with the (whitelisted) category inlined: run as driver SQL it skips
# SQLAlchemy's statement compilation and parameter processing — this is the whole cost of an idle poll.
_LIVE_STATE = {
    category: (
        "SELECT r.id, r.name, r.phase, r.method, r.slots_unit, r.slots_activity, COALESCE(c.version, 0) "
        "FROM rounds r LEFT JOIN ranking_counters c ON c.round_id = r.id AND c.category = "
        f"'{category}' ORDER BY r.year DESC LIMIT 1"
    )
    for category in CATEGORIES
}


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def check_category(category: str, method: str | None = None) -> None:
    if category not in CATEGORIES:
        raise UserError(f"未知类别：{category}。", status=404)
    if method is not None and method not in METHODS:
        raise UserError(f"未知的排名方法：{method}。", status=400)


def criteria_of(round_id: int, category: str) -> list[CriterionInfo]:
    rows = db.session.execute(
        select(Criterion.id, Criterion.code, Criterion.name, Criterion.max_score)
        .where(Criterion.round_id == round_id, Criterion.category == category)
        .order_by(Criterion.position, Criterion.id)
    )
    return [CriterionInfo(r.id, r.code, r.name, float(r.max_score)) for r in rows]


def sql_criteria(infos: list[CriterionInfo]) -> Criteria:
    """The rubric as the SQL builders (app/ranking/sql.py) take it."""
    return Criteria(tuple(c.id for c in infos), tuple(c.code for c in infos))


def max_total(infos: list[CriterionInfo]) -> float:
    return float(sum(c.max_score for c in infos))


def version(round_id: int, category: str) -> int:
    """The ranking's version (RankingCounter), bumped by every write that may change it: the ETag source."""
    value = db.session.scalar(
        select(RankingCounter.version).where(RankingCounter.round_id == round_id,
                                             RankingCounter.category == category)
    )
    return int(value or 0)



def live_state(category: str) -> LiveState:
    """The current round (newest year) and the category's ranking version, in one query."""
    check_category(category)
    row = db.session.connection().exec_driver_sql(_LIVE_STATE[category]).first()
    if row is None:
        raise UserError("尚未建立评选批次，请管理员先执行 flask demo seed 或建立批次。", status=404)
    return LiveState(*row)


def compute(round_id: int, category: str, *, method: str | None = None, include_drafts: bool = False,
            criteria: list[CriterionInfo] | None = None, per_criterion: bool = True) -> list[RankRow]:
    """Every active nomination of the category, ordered by rank under `method` (default: the round's).

    per_criterion=False leaves criterion_means empty and skips the scores altogether (the aggregates
    come from the sheet rows)."""
    check_category(category, method)
    if method is None:
        method = db.session.scalar(select(Round.method).where(Round.id == round_id))
        if method is None:
            raise UserError("找不到评选批次。", status=404)
    infos = criteria if criteria is not None else criteria_of(round_id, category)
    crit = sql_criteria(infos)
    sql = ranking_sql.ranking_sql(crit, include_drafts, method, _dialect(), per_criterion=per_criterion)
    params = {"round_id": round_id, "category": category, "flag_points": FLAG_SHARE * max_total(infos),
              **crit.params()}
    result = db.session.execute(text(sql), params)
    return _rank_rows(result.keys(), result.all(), crit, method)


def _opt(value) -> float | None:
    return None if value is None else float(value)


def _rank_rows(keys, rows, crit: Criteria, method: str) -> list[RankRow]:
    """Plain tuples by position: at 7,000 rows, name lookups per field cost as much as the template."""
    ix = {k: i for i, k in enumerate(keys)}
    (i_id, i_title, i_host, i_nominator, i_name, i_kind, i_pos, i_rank, i_agg, i_scored, i_assigned, i_mean,
     i_trimmed, i_median, i_z, i_rmean, i_rtrimmed, i_rz, i_stdev, i_spread, i_flag, i_rmedian, i_dev) = (
        ix[k] for k in ("nomination_id", "title", "host", "nominator_id", "nominator_name", "nominator_kind",
                        "nominator_position", f"rank_{method}", method, "n_scored", "n_assigned", "mean",
                        "trimmed", "median", "zscore", "rank_mean", "rank_trimmed", "rank_zscore", "stdev",
                        "spread", "flagged", "rank_median", "max_dev"))
    crit_ix = [(code, ix[f"c_{i}"]) for i, code in enumerate(crit.codes) if f"c_{i}" in ix]
    return [
        RankRow(
            nomination_id=r[i_id], title=r[i_title], host=r[i_host], nominator_id=r[i_nominator],
            nominator_name=r[i_name], nominator_kind=r[i_kind], nominator_position=r[i_pos], rank=int(r[i_rank]),
            aggregate=_opt(r[i_agg]), n_scored=int(r[i_scored]), n_assigned=int(r[i_assigned]),
            mean=_opt(r[i_mean]), trimmed=_opt(r[i_trimmed]), median=_opt(r[i_median]), zscore=_opt(r[i_z]),
            rank_mean=int(r[i_rmean]), rank_trimmed=int(r[i_rtrimmed]), rank_zscore=int(r[i_rz]),
            stdev=_opt(r[i_stdev]), spread=_opt(r[i_spread]),
            criterion_means={code: float(r[j]) for code, j in crit_ix if r[j] is not None},
            flagged=bool(r[i_flag]), rank_median=int(r[i_rmedian]), max_deviation=_opt(r[i_dev]),
        )
        for r in rows
    ]


def reviewer_totals(round_id: int, nomination_id: int, include_drafts: bool = False, *,
                    criteria: list[CriterionInfo] | None = None) -> list[ReviewerTotal]:
    """Each assigned reviewer of one nomination with their sheet: criterion values, total, comment, status.

    A draft's values and comment are shown only with include_drafts; recused reviewers are listed as such.
    """
    if criteria is None:
        category = db.session.scalar(
            text("SELECT category FROM nominations WHERE id = :nid AND round_id = :rid"),
            {"nid": nomination_id, "rid": round_id},
        )
        if category is None:
            raise UserError("找不到该推荐对象。", status=404)
        criteria = criteria_of(round_id, category)
    crit = sql_criteria(criteria)
    stmt = text(ranking_sql.breakdown_sql(crit)).columns(
        submitted_at=DateTime(timezone=True), updated_at=DateTime(timezone=True)
    )
    rows = db.session.execute(stmt, {"round_id": round_id, "nomination_id": nomination_id, **crit.params()})
    out = []
    for r in rows.mappings():
        complete = r["sheet_id"] is not None and int(r["n_values"] or 0) == len(crit.ids) and bool(crit.ids)
        if r["recused"]:
            status = "recused"
        elif r["sheet_id"] is None:
            status = "missing"
        else:
            status = r["status"]
        counted = complete and (status == "submitted" or (include_drafts and status == "draft"))
        visible = status == "submitted" or (include_drafts and status == "draft")
        scores = {code: _opt(r[f"c_{i}"]) for i, code in enumerate(crit.codes)} if visible else {}
        out.append(ReviewerTotal(
            reviewer_id=r["reviewer_id"], reviewer_name=r["reviewer_name"], username=r["username"],
            status=status, counted=counted, complete=complete,
            total=_opt(r["total"]) if visible and complete else None, scores=scores,
            comment=(r["comment"] or "") if visible else "", submitted_at=r["submitted_at"],
            updated_at=r["updated_at"],
        ))
    return out


def severity(round_id: int, category: str, include_drafts: bool = False, *,
             criteria: list[CriterionInfo] | None = None) -> list[ReviewerSeverity]:
    """Each reviewer's mean and spread of totals in the category, against the panel and co-reviewers."""
    check_category(category)
    infos = criteria if criteria is not None else criteria_of(round_id, category)
    crit = sql_criteria(infos)
    rows = db.session.execute(text(ranking_sql.severity_sql(crit, include_drafts, _dialect())),
                              {"round_id": round_id, "category": category, **crit.params()})
    threshold = LEANING_SHARE * max_total(infos)
    out = []
    for r in rows.mappings():
        n_panel = int(r["panel_n"])
        panel_mean = float(r["panel_sum"]) / n_panel
        panel_var = float(r["panel_sum_sq"]) / n_panel - panel_mean * panel_mean
        offset = _opt(r["offset_mean"])
        leaning = None
        if offset is not None and int(r["n_compared"]) >= LEANING_MIN_COMPARED and abs(offset) >= threshold:
            leaning = "lenient" if offset > 0 else "harsh"
        out.append(ReviewerSeverity(
            reviewer_id=r["reviewer_id"], reviewer_name=r["reviewer_name"], username=r["username"],
            n=int(r["n"]), mean=float(r["mean"]), stdev=max(float(r["var_pop"]), 0.0) ** 0.5,
            lowest=float(r["lowest"]), highest=float(r["highest"]), offset=offset,
            n_compared=int(r["n_compared"]), panel_mean=panel_mean, panel_stdev=max(panel_var, 0.0) ** 0.5,
            leaning=leaning, panel_n=n_panel,
        ))
    return out


def progress(round_id: int, category: str) -> Progress:
    """Submitted sheets of those assigned (recusals excluded), per reviewer and overall."""
    check_category(category)
    params = {"round_id": round_id, "category": category}
    rows = db.session.execute(text(ranking_sql.progress_sql()), params).mappings().all()
    noms = db.session.execute(text(ranking_sql.nominations_done_sql()), params).mappings().one()
    reviewers = [ReviewerProgress(r["reviewer_id"], r["reviewer_name"], r["username"], int(r["assigned"]),
                                  int(r["submitted"]), int(r["drafts"])) for r in rows]
    first = rows[0] if rows else None
    return Progress(
        assigned=int(first["total_assigned"]) if first else 0,
        submitted=int(first["total_submitted"]) if first else 0,
        drafts=int(first["total_drafts"]) if first else 0,
        nominations=int(noms["nominations"]), nominations_complete=int(noms["complete"]),
        nominations_started=int(noms["started"]), reviewers=reviewers,
    )
