"""The live ranking kept up to date (app/ranking/upkeep.py): derived tables, never edited by hand.

Each write that can change a ranking bumps its RankingCounter and, in the same transaction, appends a
RankingChange naming the nomination it touched (NULL: "anything may have changed"). The first poll of
a new version folds the changes since the stored RankingMark into the derived rows: the counted sheets
of the touched nominations, their reviewers' figures, the nominations' aggregates, z-scores and
criterion means (ranks are counted when a page is read). The
whole category is recomputed when a change names no nomination (a phase move, an assignment plan, an
import), when more than WHOLE_AT nominations changed, when the rubric changed and for a mark left far
behind. `flask ranking verify` compares these rows with a computation from the scores.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from app.extensions import db


class _Scope:
    """One kept ranking: (round, category, with drafts or not) — the leading primary-key columns of every
    derived table (sort_order keeps them first: the SQLite tables are clustered by their key)."""

    @declared_attr
    def round_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True, sort_order=-3)

    category: Mapped[str] = mapped_column(String(10), primary_key=True, sort_order=-2)
    drafts: Mapped[bool] = mapped_column(Boolean, primary_key=True, sort_order=-1)


class RankingChange(db.Model):
    """One ranking-relevant write: the counter version it produced and the nomination it touched."""

    __tablename__ = "ranking_changes"
    __table_args__ = (Index("ix_ranking_changes_scope", "round_id", "category", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(Integer)
    nomination_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RankingMark(_Scope, db.Model):
    """Which counter version the derived rows of one (round, category, drafts) show, for which rubric."""

    __tablename__ = "ranking_marks"

    version: Mapped[int] = mapped_column(Integer, default=-1)
    rubric: Mapped[str] = mapped_column(String(40), default="")
    computations: Mapped[int] = mapped_column(Integer, default=0)
    folded_at: Mapped[float] = mapped_column(Float, default=0.0)  # epoch seconds the last fold began
    claimed_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # a fold in progress since


class RankingSheet(_Scope, db.Model):
    """A sheet that counts in the ranking of its (round, category, drafts), with its total. Kept in
    nomination order (SQLite: the primary key is the table), so a nomination's sheets are one range; the
    reviewer index serves the reviewer's figures and finds the nominations a change of them moves."""

    __tablename__ = "ranking_sheets"
    __table_args__ = (
        Index("ix_ranking_sheets_reviewer", "round_id", "category", "drafts", "reviewer_id", "total", "nomination_id"),
        {"sqlite_with_rowid": False},
    )

    nomination_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sheet_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)


class RankingReviewer(_Scope, db.Model):
    """A reviewer's counted totals in the category: what their z-scores are standardized against."""

    __tablename__ = "ranking_reviewers"

    reviewer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    mean: Mapped[float] = mapped_column(Float)
    var: Mapped[float] = mapped_column(Float)


_LOCAL_KEYS = ("mean", "trimmed", "median")


class RankingEntry(_Scope, db.Model):
    """One active nomination's aggregates and its sort keys under mean, trimmed and median (its z-score:
    RankingZ).

    k_<method> sorts ascending exactly as the ranking orders (the aggregate rounded as order_value()
    does, negated; no aggregate sorts last), then k_n (= -n_scored), k_sd (rounded stdev; none last)
    and the id. Ranks are not stored: one save can move thousands of them (every z-score of its
    reviewer shifts), while a page reads its rows' ranks with one walk of each method's sort-key index
    (app/ranking/kept.py _ranked)."""

    __tablename__ = "ranking_entries"
    __table_args__ = tuple(
        Index(f"ix_ranking_entries_k_{m}", "round_id", "category", "drafts", f"k_{m}", "k_n", "k_sd",
              "nomination_id") for m in _LOCAL_KEYS
    ) + (Index("ix_ranking_entries_nominator", "round_id", "category", "drafts", "nominator_id"),
         {"sqlite_with_rowid": False})

    nomination_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nominator_id: Mapped[int] = mapped_column(Integer)
    n_assigned: Mapped[int] = mapped_column(Integer, default=0)
    n_scored: Mapped[int] = mapped_column(Integer, default=0)
    mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    trimmed: Mapped[float | None] = mapped_column(Float, nullable=True)
    median: Mapped[float | None] = mapped_column(Float, nullable=True)
    stdev: Mapped[float | None] = mapped_column(Float, nullable=True)
    spread: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_dev: Mapped[float | None] = mapped_column(Float, nullable=True)
    k_mean: Mapped[float] = mapped_column(Float, default=1.0)
    k_trimmed: Mapped[float] = mapped_column(Float, default=1.0)
    k_median: Mapped[float] = mapped_column(Float, default=1.0)
    k_n: Mapped[int] = mapped_column(Integer, default=0)
    k_sd: Mapped[float] = mapped_column(Float, default=0.0)


class RankingZ(_Scope, db.Model):
    """A nomination's z-score and its sort key, apart from RankingEntry: one save moves the z-score of
    every nomination its reviewer scored (hundreds of rows), and a narrow row with one index costs a
    fraction of rewriting the wide entry with all of its indexes (PostgreSQL writes a new tuple and an
    entry in every index). k_n and k_sd are the entry's, copied for the index order."""

    __tablename__ = "ranking_z"
    __table_args__ = (
        Index("ix_ranking_z_k", "round_id", "category", "drafts", "k_zscore", "k_n", "k_sd", "nomination_id"),
        {"sqlite_with_rowid": False},
    )

    nomination_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zscore: Mapped[float | None] = mapped_column(Float, nullable=True)
    k_zscore: Mapped[float] = mapped_column(Float, default=1.0)
    k_n: Mapped[int] = mapped_column(Integer, default=0)
    k_sd: Mapped[float] = mapped_column(Float, default=0.0)


class RankingMean(_Scope, db.Model):
    """A nomination's mean value of one criterion over its counted sheets (the page's criterion columns)."""

    __tablename__ = "ranking_means"

    nomination_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    criterion_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mean: Mapped[float] = mapped_column(Float)
