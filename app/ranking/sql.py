"""The SQL behind the live ranking, written once for SQLite and PostgreSQL.

Every aggregate is computed by the database (GROUP BY and window functions); Python only formats.
Portability notes, because "the same ranking on both engines" is a requirement:

* No STDDEV/PERCENTILE (SQLite has neither): variance is AVG(x*x) - AVG(x)^2, clamped at 0; the median
  uses ROW_NUMBER over the reviewer totals of one nomination.
* Scores are multiples of the criterion step; with a binary step (0.5, 0.25, 1) sums and sums of
  squares are exact doubles and every mean, median, trimmed mean and standard deviation is the same
  IEEE result on both engines. The z-score average (and any sum of a decimal step such as 0.1) adds
  inexact terms in an engine-specific order; the ORDER BY of every rank therefore compares values
  rounded to 9 decimals (order_value), so a last-bit difference never reorders a tie. SQRT needs SQLite's math functions (built in since 3.35; Debian's build has them).
* Integer division ((n + 1) / 2 for the median position) truncates on both engines.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.review import recusals  # the 回避 rule has one home; here as SQL text

ORDER_DECIMALS = 9
# A reviewer whose totals in the category have (almost) no spread cannot be standardized: z = 0.
ZERO_VARIANCE = 1e-9


@dataclass(frozen=True)
class Criteria:
    """The criteria of one round × category, in rubric order; ids become bound parameters."""

    ids: tuple[int, ...]
    codes: tuple[str, ...]

    def params(self) -> dict:
        out = {f"crit_{i}": cid for i, cid in enumerate(self.ids)}
        out["n_criteria"] = len(self.ids)
        return out

    def in_list(self, column: str) -> str:
        if not self.ids:
            return "1 = 0"
        return f"{column} IN ({', '.join(f':crit_{i}' for i in range(len(self.ids)))})"

    def pivot(self, value: str, criterion: str, agg: str = "SUM", prefix: str = ", ") -> str:
        """One column c_i per criterion (conditional aggregation: a pivot without dialect extensions)."""
        return "".join(
            f"{prefix}{agg}(CASE WHEN {criterion} = :crit_{i} THEN {value} END) AS c_{i}"
            for i in range(len(self.ids))
        )

    def columns(self, table: str, agg: str | None = None) -> str:
        if agg:
            return "".join(f", {agg}({table}.c_{i}) AS c_{i}" for i in range(len(self.ids)))
        return "".join(f", {table}.c_{i}" for i in range(len(self.ids)))


def order_value(expr: str, dialect: str) -> str:
    """The sort key of an aggregate, rounded to 1e-9 so last-bit noise never reorders a tie.

    PostgreSQL: FLOOR(x * 1e9 + 0.5) in doubles (half the cost of a NUMERIC cast in a 7,000-row sort).
    SQLite: the native ROUND(x, 9) — its FLOOR is a Python function SQLAlchemy registers on every
    connection (slow, and it raises on NULL).
    """
    if dialect == "postgresql":
        return f"FLOOR({expr} * {10 ** ORDER_DECIMALS} + 0.5)"
    return f"ROUND({expr}, {ORDER_DECIMALS})"


def _status_filter(include_drafts: bool) -> str:
    return "s.status IN ('submitted', 'draft')" if include_drafts else "s.status = 'submitted'"


def only_ids(column: str, ids) -> str:
    """`column IN (…)` over integer ids (inlined: they are ints), or TRUE for None (every row). A
    restricted statement names the ids on every table it starts from, so the planner seeks them
    instead of scanning (a materialized CTE's size is unknown to SQLite)."""
    if ids is None:
        return "1 = 1"
    return f"{column} IN ({', '.join(str(int(i)) for i in ids) or 'NULL'})"


def eligible_ctes(only=None) -> str:
    """CTEs `noms` (active nominations of :round_id / :category; with `only`, just those ids) and
    `eligible`: assigned reviewer × nomination pairs that are not recused (a declared recusal, or the
    reviewer's own unit)."""
    return f"""
noms AS (
  SELECT n.id, n.nominator_id
  FROM nominations n
  WHERE n.round_id = :round_id AND n.category = :category AND n.status = 'active' AND {only_ids("n.id", only)}
),""" + """
eligible AS (
  SELECT a.reviewer_id, a.nomination_id
  FROM assignments a
  """ + join_in_order("noms", "noms.id = a.nomination_id", only) + """
  JOIN users u ON u.id = a.reviewer_id
  WHERE """ + _seek("a.nomination_id", "noms.id = a.nomination_id", only) + \
        recusals.not_recused_sql("a.reviewer_id", "a.nomination_id", "u.affiliation_id", "noms.nominator_id") + """
)"""


def join_in_order(table: str, on: str, only) -> str:
    """A join, or — restricted to a few nominations — SQLite's CROSS JOIN, which keeps the written order:
    start from the few rows and seek the next table by index. Left to itself SQLite puts the
    materialized CTE (size unknown) outside and builds a Bloom filter over all 49,000 rows inside.
    PostgreSQL treats CROSS JOIN + WHERE as any inner join."""
    return f"JOIN {table} ON {on}" if only is None else f"CROSS JOIN {table}"


def _seek(column: str, on: str, only) -> str:
    return "" if only is None else f"{only_ids(column, only)} AND {on} AND "


def counted_sheets_ctes(criteria: Criteria, include_drafts: bool, dialect: str, *,
                        per_criterion: bool = True, only=None) -> str:
    """eligible_ctes() plus `sheet_totals`: one row per counted sheet — a submitted (or, with drafts, a
    draft) sheet of an eligible pair with a value for every criterion — with its total and (unless
    per_criterion=False) its per-criterion values c_0..c_{n-1}. A sheet of an unassigned or recused
    reviewer never counts.

    The total and the number of values come from the sheet row itself (review_sheets.total / n_values,
    written with the scores: app/review/totals.py), so the ranking's aggregates read 49,000 sheet rows
    instead of grouping 196,000 scores; only the per-criterion columns still join the scores, and only
    the counted sheets' ones. `>= :n_criteria` equals `= :n_criteria` (n_values counts the category's
    criteria only) but gives PostgreSQL a sane row estimate. `dialect` is kept for the callers: both
    engines now run the same shape.
    """
    status = _status_filter(include_drafts)
    on = "s.reviewer_id = e.reviewer_id AND s.nomination_id = e.nomination_id"
    counted = f"""{eligible_ctes(only)},
counted AS (
  SELECT s.id AS sheet_id, s.reviewer_id, s.nomination_id, s.total
  FROM eligible e
  {join_in_order("review_sheets s", on, only)}
  WHERE {"" if only is None else on + " AND "}{status} AND s.n_values >= :n_criteria AND s.n_values > 0
)"""
    if not per_criterion:
        return counted + """,
sheet_totals AS (SELECT sheet_id, reviewer_id, nomination_id, total FROM counted)"""
    return counted + f""",
sheet_totals AS (
  SELECT ct.sheet_id, ct.reviewer_id, ct.nomination_id, ct.total
         {criteria.pivot("sc.value", "sc.criterion_id", agg="MAX")}
  FROM counted ct
  JOIN scores sc ON sc.sheet_id = ct.sheet_id
  WHERE {criteria.in_list("sc.criterion_id")}
  GROUP BY ct.sheet_id, ct.reviewer_id, ct.nomination_id, ct.total
)"""


def z_term(total: str, n: str, mean: str, var: str) -> str:
    """One counted total standardized against its reviewer's totals in the category; a reviewer with a
    single total or (almost) no spread contributes 0."""
    return f"CASE WHEN {n} > 1 AND {var} > {ZERO_VARIANCE} THEN ({total} - {mean}) / SQRT({var}) ELSE 0 END"


def zscore_of(z_mean: str) -> str:
    """The nomination's mean z on the shown 0–100 scale: 50 + 10·z, clamped."""
    return (f"CASE WHEN {z_mean} IS NULL THEN NULL WHEN 50 + 10 * {z_mean} < 0 THEN 0 "
            f"WHEN 50 + 10 * {z_mean} > 100 THEN 100 ELSE 50 + 10 * {z_mean} END")


def aggregate_ctes(criteria: Criteria, include_drafts: bool, dialect: str, *, per_criterion: bool = True,
                   only=None) -> str:
    """The CTE chain through `agg`: one row per active nomination with every aggregate (and, with
    per_criterion, the criterion means c_i). With `only` the chain is restricted to those nominations:
    every aggregate but zscore is then still exact (they depend on the nomination's own sheets only);
    zscore needs every sheet of its reviewers (app/ranking/upkeep.py recomputes it).

    trimmed = (sum - max - min) / (n - 2): exactly "drop one highest and one lowest total" without a
    window. max_dev (the largest distance of a total from the mean of the *other* totals) is
    n / (n - 1) * max(highest - mean, mean - lowest), again without a window. Only the median needs
    ROW_NUMBER, over a narrow projection.
    """
    # per_criterion=False: no c_i columns at all (the live page fetches the shown rows' means apart).
    shown = criteria if per_criterion else Criteria((), ())
    return f"""{counted_sheets_ctes(criteria, include_drafts, dialect, per_criterion=per_criterion, only=only)},
reviewer_stats AS (
  SELECT reviewer_id, COUNT(*) AS r_n, AVG(total) AS r_mean,
         AVG(total * total) - AVG(total) * AVG(total) AS r_var
  FROM sheet_totals
  GROUP BY reviewer_id
),
per_nom AS (
  SELECT st.nomination_id,
         COUNT(*) AS n_scored,
         AVG(st.total) AS mean,
         CASE WHEN COUNT(*) >= 5 THEN (SUM(st.total) - MAX(st.total) - MIN(st.total)) / (COUNT(*) - 2)
              ELSE AVG(st.total) END AS trimmed,
         AVG({z_term("st.total", "rs.r_n", "rs.r_mean", "rs.r_var")}) AS z_mean,
         AVG(st.total * st.total) - AVG(st.total) * AVG(st.total) AS var_pop,
         MIN(st.total) AS lowest,
         MAX(st.total) AS highest
         {shown.columns("st", "AVG")}
  FROM sheet_totals st
  JOIN reviewer_stats rs ON rs.reviewer_id = st.reviewer_id
  GROUP BY st.nomination_id
),
ordered AS (
  SELECT nomination_id, total, ROW_NUMBER() OVER w AS pos, COUNT(*) OVER w AS n
  FROM sheet_totals
  WINDOW w AS (PARTITION BY nomination_id ORDER BY total, sheet_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
),
medians AS (
  SELECT nomination_id, AVG(total) AS median
  FROM ordered
  WHERE pos = (n + 1) / 2 OR pos = (n + 2) / 2
  GROUP BY nomination_id
),
assigned AS (
  SELECT nomination_id, COUNT(*) AS n_assigned FROM eligible GROUP BY nomination_id
),
agg AS (
  SELECT noms.id AS nomination_id,
         COALESCE(asg.n_assigned, 0) AS n_assigned,
         COALESCE(p.n_scored, 0) AS n_scored,
         p.mean, p.trimmed, md.median,
         {zscore_of("p.z_mean")} AS zscore,
         CASE WHEN p.n_scored >= 2
              THEN SQRT((CASE WHEN p.var_pop > 0 THEN p.var_pop ELSE 0 END) * p.n_scored / (p.n_scored - 1))
              END AS stdev,
         p.highest - p.lowest AS spread,
         CASE WHEN p.n_scored >= 2
              THEN (CASE WHEN p.highest - p.mean > p.mean - p.lowest THEN p.highest - p.mean
                         ELSE p.mean - p.lowest END) * p.n_scored / (p.n_scored - 1)
              END AS max_dev
         {shown.columns("p")}
  FROM noms
  LEFT JOIN per_nom p ON p.nomination_id = noms.id
  LEFT JOIN medians md ON md.nomination_id = noms.id
  LEFT JOIN assigned asg ON asg.nomination_id = noms.id
)"""


def ranking_sql(criteria: Criteria, include_drafts: bool, method: str, dialect: str, *,
                per_criterion: bool = True) -> str:
    """One statement: every active nomination of the category with all four aggregates and their ranks.

    Parameters: :round_id, :category, :flag_points, plus Criteria.params(). The four ranks are
    ROW_NUMBERs over a narrow projection (aggregate_ctes' agg).
    """
    def o(expr: str) -> str:
        return order_value(expr, dialect)

    def rank(expr: str) -> str:
        # Deterministic tie-break: aggregate desc, more scores, lower dispersion, lower id;
        # nominations without a score (NULL aggregate) rank last.
        return (f"ROW_NUMBER() OVER (ORDER BY {o(expr)} DESC NULLS LAST, n_scored DESC, "
                f"{o('stdev')} ASC NULLS LAST, nomination_id ASC)")

    return f"""
WITH {aggregate_ctes(criteria, include_drafts, dialect, per_criterion=per_criterion)},
ranks AS (
  SELECT nomination_id,
         {rank("mean")} AS rank_mean,
         {rank("trimmed")} AS rank_trimmed,
         {rank("median")} AS rank_median,
         {rank("zscore")} AS rank_zscore
  FROM agg
)
SELECT agg.*, ranks.rank_mean, ranks.rank_trimmed, ranks.rank_median, ranks.rank_zscore,
       nm.title, nm.host, nm.nominator_id, nr.name AS nominator_name, nr.kind AS nominator_kind,
       nr.position AS nominator_position,
       CASE WHEN agg.max_dev >= :flag_points THEN 1 ELSE 0 END AS flagged
FROM agg
JOIN ranks ON ranks.nomination_id = agg.nomination_id
JOIN nominations nm ON nm.id = agg.nomination_id
JOIN nominators nr ON nr.id = nm.nominator_id
ORDER BY ranks.rank_{method}
"""


def severity_sql(criteria: Criteria, include_drafts: bool, dialect: str) -> str:
    """Per reviewer of the category: their totals against the panel, and against their co-reviewers.

    offset = mean over their sheets of (their total - the mean of the other reviewers' totals of the same
    nomination), over nominations someone else also scored: independent of which nominations they got.
    Panel figures are window aggregates over the grouped rows (one statement).
    """
    return f"""
WITH {counted_sheets_ctes(criteria, include_drafts, dialect, per_criterion=False)},
nom_sums AS (
  SELECT nomination_id, COUNT(*) AS n, SUM(total) AS s FROM sheet_totals GROUP BY nomination_id
)
SELECT st.reviewer_id, u.display_name AS reviewer_name, u.username,
       COUNT(*) AS n,
       AVG(st.total) AS mean,
       AVG(st.total * st.total) - AVG(st.total) * AVG(st.total) AS var_pop,
       MIN(st.total) AS lowest, MAX(st.total) AS highest,
       AVG(CASE WHEN ns.n > 1 THEN st.total - (ns.s - st.total) / (ns.n - 1) END) AS offset_mean,
       COUNT(CASE WHEN ns.n > 1 THEN 1 END) AS n_compared,
       SUM(SUM(st.total)) OVER () AS panel_sum,
       SUM(SUM(st.total * st.total)) OVER () AS panel_sum_sq,
       SUM(COUNT(*)) OVER () AS panel_n
FROM sheet_totals st
JOIN nom_sums ns ON ns.nomination_id = st.nomination_id
JOIN users u ON u.id = st.reviewer_id
GROUP BY st.reviewer_id, u.display_name, u.username
ORDER BY u.username
"""


def progress_sql() -> str:
    """Per reviewer of the category: eligible assignments, submitted and draft sheets; totals by window."""
    return f"""
WITH {eligible_ctes()}
SELECT e.reviewer_id, u.display_name AS reviewer_name, u.username,
       COUNT(*) AS assigned,
       COUNT(CASE WHEN s.status = 'submitted' THEN 1 END) AS submitted,
       COUNT(CASE WHEN s.status = 'draft' THEN 1 END) AS drafts,
       SUM(COUNT(*)) OVER () AS total_assigned,
       SUM(COUNT(CASE WHEN s.status = 'submitted' THEN 1 END)) OVER () AS total_submitted,
       SUM(COUNT(CASE WHEN s.status = 'draft' THEN 1 END)) OVER () AS total_drafts
FROM eligible e
JOIN users u ON u.id = e.reviewer_id
LEFT JOIN review_sheets s ON s.reviewer_id = e.reviewer_id AND s.nomination_id = e.nomination_id
GROUP BY e.reviewer_id, u.display_name, u.username
ORDER BY u.username
"""


def nominations_done_sql() -> str:
    """How many active nominations of the category have every eligible sheet submitted."""
    return f"""
WITH {eligible_ctes()},
per_nom AS (
  SELECT noms.id,
         COUNT(e.reviewer_id) AS assigned,
         COUNT(CASE WHEN s.status = 'submitted' THEN 1 END) AS submitted
  FROM noms
  LEFT JOIN eligible e ON e.nomination_id = noms.id
  LEFT JOIN review_sheets s ON s.reviewer_id = e.reviewer_id AND s.nomination_id = e.nomination_id
  GROUP BY noms.id
)
SELECT COUNT(*) AS nominations,
       COUNT(CASE WHEN assigned > 0 AND submitted = assigned THEN 1 END) AS complete,
       COUNT(CASE WHEN submitted > 0 THEN 1 END) AS started
FROM per_nom
"""


def breakdown_sql(criteria: Criteria) -> str:
    """Every reviewer assigned to one nomination, with their sheet (if any) and its values."""
    return f"""
WITH nom AS (
  SELECT id, nominator_id FROM nominations WHERE id = :nomination_id AND round_id = :round_id
),
sheet AS (
  SELECT s.id AS sheet_id, s.reviewer_id, s.status, s.comment, s.submitted_at, s.updated_at,
         COUNT(sc.id) AS n_values, SUM(sc.value) AS total
         {criteria.pivot("sc.value", "sc.criterion_id")}
  FROM review_sheets s
  LEFT JOIN scores sc ON sc.sheet_id = s.id AND {criteria.in_list("sc.criterion_id")}
  WHERE s.nomination_id = :nomination_id
  GROUP BY s.id, s.reviewer_id, s.status, s.comment, s.submitted_at, s.updated_at
)
SELECT u.id AS reviewer_id, u.display_name AS reviewer_name, u.username,
       CASE WHEN {recusals.recused_sql("u.id", "nom.id", "u.affiliation_id", "nom.nominator_id")}
            THEN 1 ELSE 0 END AS recused,
       sheet.sheet_id, sheet.status, sheet.comment, sheet.submitted_at, sheet.updated_at,
       sheet.n_values, sheet.total
       {criteria.columns("sheet")}
FROM assignments a
JOIN nom ON nom.id = a.nomination_id
JOIN users u ON u.id = a.reviewer_id
LEFT JOIN sheet ON sheet.reviewer_id = a.reviewer_id
ORDER BY u.username
"""
