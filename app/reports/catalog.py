"""Which documents exist, in which formats, and how to build one. The downloads page, the job runner
and the CLI all go through `build`, so the same request gives the same file everywhere."""

from __future__ import annotations

from app.core.errors import UserError
from app.models import CATEGORY_LABELS
from app.reports import documents, spreadsheets
from app.reports.documents import Document

KINDS = {
    "list": {"label": "审定通过名单", "formats": ("pdf", "xlsx")},
    "report": {"label": "评审结果报告", "formats": ("pdf", "xlsx")},
    "forms": {"label": "推荐表（审定通过，合订本）", "formats": ("pdf",)},
    "sheets": {"label": "专家评分表（全部专家）", "formats": ("pdf",)},
    # both categories in one document, no category argument
    "publicity": {"label": "公示名单（两类合并，含公示期和异议方式）", "formats": ("pdf",)},
    "notice": {"label": "表扬通报", "formats": ("pdf", "docx")},
}
FORMAT_LABELS = {"pdf": "PDF", "xlsx": "Excel", "docx": "Word"}
WHOLE_ROUND_KINDS = ("publicity", "notice")


def check(kind: str, fmt: str, category: str | None) -> None:
    spec = KINDS.get(kind)
    if spec is None:
        raise UserError(f"未知的文档类型：{kind}。", status=404)
    if fmt not in spec["formats"]:
        raise UserError(f"{spec['label']}不提供 {fmt} 格式。", status=404)
    if category is not None and category not in CATEGORY_LABELS:
        raise UserError("未知类别。", status=404)


def label(kind: str, fmt: str, category: str | None) -> str:
    what = KINDS[kind]["label"]
    if kind == "report" and fmt == "xlsx":
        what = "评审排名（含各指标、各专家评分）"
    if kind in WHOLE_ROUND_KINDS:
        return f"{what}（{FORMAT_LABELS[fmt]}）"
    prefix = CATEGORY_LABELS[category] if category else "全部类别"
    return f"{prefix}{what}（{FORMAT_LABELS[fmt]}）"


def build(kind: str, fmt: str, round_id: int, category: str | None, *,
          reviewer_ids: list[int] | None = None, nomination_id: int | None = None) -> Document:
    check(kind, fmt, category)
    if kind in WHOLE_ROUND_KINDS:
        return _whole_round(kind, fmt, round_id)
    if kind == "list":
        if fmt == "xlsx":
            return spreadsheets.approved_list_xlsx(round_id, category)
        return documents.public_list_pdf(round_id, _required(category))
    if kind == "report":
        if fmt == "xlsx":
            return spreadsheets.ranking_xlsx(round_id, _required(category))
        return documents.result_report_pdf(round_id, _required(category))
    if kind == "forms":
        if nomination_id is not None:
            return documents.nomination_form_pdf(nomination_id)
        return documents.batch_forms_pdf(round_id, _required(category))
    return documents.reviewer_sheets_pdf(round_id, _required(category), reviewer_ids)


def _whole_round(kind: str, fmt: str, round_id: int) -> Document:
    from app.publicity import documents as publicity  # publicity reads reports' queries
    from app.reports import notice

    if kind == "publicity":
        return publicity.publicity_pdf(round_id)
    return notice.notice_docx(round_id) if fmt == "docx" else notice.notice_pdf(round_id)


def _required(category: str | None) -> str:
    if not category:
        raise UserError("请指定类别（unit 或 activity）。")
    return category
