"""XLSX exports (openpyxl): the ranking with per-criterion and per-reviewer scores, and the approved
lists. Chinese headers, a frozen bold header row, column widths from the content (a CJK character
counts double). Numbers are written as numbers, never as formatted text."""

from __future__ import annotations

import io
import unicodedata

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from app.core.spreadsheet_safety import append_row
from app.deliberation import operations as decisions
from app.models import CATEGORIES, CATEGORY_LABELS, KIND_LABELS, METHOD_LABELS
from app.reports import queries
from app.reports.documents import XLSX_MIME, Document, _draft_mark, _prefix, check_category, safe_filename
from app.rounds import phases as rounds

_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="E8E8E8")
_NUMBER_FORMAT = "0.00"
_MAX_WIDTH = 60


def _display_width(value) -> int:
    if value is None:
        return 0
    text = str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _write_table(ws, headers: list[str], rows: list[list], number_columns: set[int] = frozenset(),
                 wrap_columns: set[int] = frozenset()) -> None:
    append_row(ws, headers)
    for cell in ws[1]:
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for row in rows:
        # User text (titles, comments) must stay text, or =HYPERLINK(...) would run in the reader's Excel.
        append_row(ws, row)
    ws.freeze_panes = "A2"
    widths = [_display_width(h) for h in headers]
    for row in rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], _display_width(value if not isinstance(value, float) else f"{value:.2f}"))
    for i, width in enumerate(widths, start=1):
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = min(_MAX_WIDTH, max(6, width + 2))
        if i - 1 in number_columns:
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = _NUMBER_FORMAT
        if i - 1 in wrap_columns:
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    if rows:
        ws.auto_filter.ref = ws.dimensions


def _save(wb: Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _num(value):
    return None if value is None else float(value)


def ranking_xlsx(round_id: int, category: str, *, include_drafts: bool = False) -> Document:
    """Sheet 排名: one row per nomination in rank order with every aggregate, the per-criterion means
    and each reviewer's total. Sheet 评分明细: one row per reviewer × nomination with every criterion."""
    from app.ranking import engine as ranking

    rnd, category = rounds.get(round_id), check_category(category)
    rows = ranking.compute(rnd.id, category, include_drafts=include_drafts)
    crits = queries.criteria(rnd.id, category)
    people, cells = queries.score_matrix(rnd.id, category, include_drafts=include_drafts)
    decided = decisions._decisions_by_nomination(rnd.id, category)
    is_activity = category == "activity"

    headers = ["排名", "活动名称" if is_activity else "单位名称"] + (["主办单位"] if is_activity else []) + [
        "推荐单位", "推荐单位类别", f"综合得分（{METHOD_LABELS[rnd.method]}）", "平均分", "去掉最高最低分后平均",
        "中位数", "标准分（0–100）", "有效评分数", "分配数", "标准差", "极差",
    ]
    first_number = len(headers) - 9
    headers += [f"{c.name}平均" for c in crits]
    headers += [f"{p.display_name}（{p.username}）" for p in people]
    headers += ["分歧较大", "审定结果"]
    # --- robustness: three columns here, and the sheet 稳健性与一致性 below
    from app.stats import report as stats_report

    robust = stats_report.for_document(rnd.id, category)
    headers += ["稳健性", "线内比例", "排名区间（5%–95%）"]
    body = []
    for r in rows:
        dec = decided.get(r.nomination_id)
        line = [r.rank, r.title] + ([r.host or ""] if is_activity else []) + [
            r.nominator_name, KIND_LABELS.get(r.nominator_kind, r.nominator_kind), _num(r.aggregate), _num(r.mean),
            _num(r.trimmed), _num(r.median), _num(r.zscore), r.n_scored, r.n_assigned, _num(r.stdev), _num(r.spread),
        ]
        line += [_num((r.criterion_means or {}).get(c.code)) for c in crits]
        for p in people:
            cell = cells.get((r.nomination_id, p.id))
            line.append(float(sum(cell["scores"].values())) if cell and cell["scores"] else None)
        line += ["是" if r.flagged else "", decisions.OUTCOME_LABELS.get(dec.outcome, "") if dec else "未审定"]
        line += _robust_cells(robust["places"].get(str(r.nomination_id)))
        body.append(line)
    numbers = set(range(first_number, first_number + 5)) | {first_number + 7, first_number + 8}
    numbers |= set(range(first_number + 9, first_number + 9 + len(crits) + len(people)))

    wb = Workbook()
    ws = wb.active
    ws.title = "排名"
    _write_table(ws, headers, body, number_columns=numbers)

    detail = wb.create_sheet("评分明细")
    d_headers = ["排名", "活动名称" if is_activity else "单位名称", "评审专家"] + \
        [f"{c.name}（{c.max_score:g}）" for c in crits] + ["合计", "状态", "评审意见"]
    d_rows = []
    for r in rows:
        for p in people:
            cell = cells.get((r.nomination_id, p.id))
            if not cell:
                continue
            values = [_num(cell["scores"].get(c.id)) for c in crits]
            d_rows.append([r.rank, r.title, p.display_name] + values
                          + [float(sum(cell["scores"].values())), "已提交" if cell["status"] == "submitted" else "草稿",
                             cell["comment"]])
    _write_table(detail, d_headers, d_rows, number_columns=set(range(3, 4 + len(crits))),
                 wrap_columns={len(d_headers) - 1})
    detail.column_dimensions[get_column_letter(len(d_headers))].width = _MAX_WIDTH

    info = wb.create_sheet("说明")
    _write_table(info, ["项目", "内容"], [
        ["评选批次", rnd.name], ["类别", CATEGORY_LABELS[category]], ["评分方法", METHOD_LABELS[rnd.method]],
        ["推荐名额", rnd.slots(category)], ["评审专家人数", queries.reviewer_count(rnd.id, category)],
        ["计入草稿", "是" if include_drafts else "否（仅计入已提交的评分表）"], ["阶段", rnd.phase_label],
    ])
    _robust_sheet(wb.create_sheet("稳健性与一致性"), robust)
    return Document(_save(wb), safe_filename(f"{_prefix(rnd, category)}评审排名.xlsx"), XLSX_MIME)


def _robust_cells(place: dict | None) -> list:
    if not place or place["share"] is None:
        return ["无评分" if place else "", None, ""]
    from app.stats.robustness import LABELS

    return [LABELS[place["label"]], round(place["share"], 3), f"{place['rank_lo']}–{place['rank_hi']}"]


def _robust_sheet(ws, robust: dict) -> None:
    """The agreement figures (totals and each criterion), the method sensitivity and how they were made."""
    def f(x):
        return None if x is None else round(float(x), 4)

    rows = [[a["name"], a["reviewers"], a["nominations"], a["complete"],
             *(f((a["icc"] or {}).get(k)) for k in ("icc1_1", "icc2_1", "icc3_1", "icc1_k", "icc2_k", "icc3_k")),
             a["icc2_1_band"] or "", f(a["alpha"]), a["alpha_band"], f(a["kendall_w"]), a["w_band"] or ""]
            for a in robust["agreement"]]
    _write_table(ws, ["指标", "专家人数", "推荐对象", "全部专家均评", "ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)",
                      "ICC(2,k)", "ICC(3,k)", "ICC(2,1)判读", "Krippendorff α（等距）", "α判读", "Kendall W", "W判读"], rows)
    sens = robust["sensitivity"]
    tail = [[], ["说明", robust["agreement_text"]], ["判读标准", robust["bands_text"]],
            ["稳健性", robust["thresholds_text"]],
            ["计算", f"{robust['computed_at_text']}（北京时间），排名版本 {robust['version']}，方法 {robust['method_label']}，"
                     f"重抽样 {robust['resamples']} 次，随机种子 {robust['seed']}（仅计入已提交的评分表）"],
            [], ["方法敏感性", *(m["label"] for m in sens["methods"])],
            ["比本批次方法多入线", *(sens["counts"][m["code"]]["in"] for m in sens["methods"])],
            ["比本批次方法多出线", *(sens["counts"][m["code"]]["out"] for m in sens["methods"])], [],
            ["换方法会跨线的推荐对象（排名 名称）", *(m["label"] for m in sens["methods"])]]
    tail += [[f"{r['official_rank'] or '—'} {r['title']}", *("线内" if r["sides"][m["code"]] else "线外"
                                                          for m in sens["methods"])] for r in sens["changed"]]
    for line in tail:
        append_row(ws, line)


def approved_list_xlsx(round_id: int, category: str | None = None) -> Document:
    """The approved list(s) in the published order; no personal information."""
    rnd = rounds.get(round_id)
    cats = [check_category(category)] if category else list(CATEGORIES)
    wb = Workbook()
    wb.remove(wb.active)
    for cat in cats:
        is_activity = cat == "activity"
        ws = wb.create_sheet(CATEGORY_LABELS[cat])
        headers = ["序号", "推荐单位类别", "推荐单位", "活动名称" if is_activity else "单位名称"] + \
            (["主办单位"] if is_activity else []) + ["审定意见"]
        rows = []
        for group in queries.approved_groups(rnd.id, cat):
            for nominator in group.nominators:
                for item in nominator.items:
                    rows.append([item.number, group.heading, nominator.name, item.title]
                                + ([item.host or ""] if is_activity else []) + [item.opinion])
        _write_table(ws, headers, rows)
    name = f"{_prefix(rnd, category)}名单" if category else f"{rnd.year}年全国科普日审定通过名单"
    name += _draft_mark(rnd) + ".xlsx"
    return Document(_save(wb), safe_filename(name), XLSX_MIME)
