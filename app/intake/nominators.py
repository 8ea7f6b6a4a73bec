"""The registry of 推荐单位: official order (kind, then position), quota overrides, XLSX import."""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import case, func, select

from app.audit import operations as audit
from app.core.database import write_transaction
from app.core.errors import Conflict, UserError
from app.extensions import db
from app.intake import forms
from app.intake.forms import KIND_ALIASES  # noqa: F401 — part of this module's interface
from app.models import KIND_LABELS, Nomination, Nominator, User

IMPORT_MAX_ROWS = 2000
IMPORT_MAX_BYTES = 5 * 1024 * 1024
HEADERS = ("名称", "简称", "类型", "排序", "优秀组织单位名额", "优秀活动名额")


def kind_order():
    return case({"city": 0, "member": 1, "society": 2}, value=Nominator.kind, else_=3)


def list_nominators() -> list[Nominator]:
    return list(db.session.scalars(select(Nominator).order_by(kind_order(), Nominator.position, Nominator.name)))


def get(nominator_id: int) -> Nominator:
    nominator = db.session.get(Nominator, nominator_id)
    if nominator is None:
        raise UserError("找不到该推荐单位。", status=404)
    return nominator


def usage() -> dict[int, dict[str, int]]:
    """Nominator id -> {'nominations': n, 'users': n} (for the list and for delete checks)."""
    out: dict[int, dict[str, int]] = {}
    for nid, count in db.session.execute(select(Nomination.nominator_id, func.count()).group_by(Nomination.nominator_id)):
        out.setdefault(nid, {"nominations": 0, "users": 0})["nominations"] = count
    for nid, count in db.session.execute(
            select(User.affiliation_id, func.count()).where(User.affiliation_id.is_not(None)).group_by(User.affiliation_id)):
        out.setdefault(nid, {"nominations": 0, "users": 0})["users"] = count
    return out


def public(n: Nominator) -> dict:
    return {"name": n.name, "short_name": n.short_name, "kind": n.kind, "position": n.position,
            "quota_unit": n.quota_unit, "quota_activity": n.quota_activity}


def _clean(text) -> str:
    """A spreadsheet cell as text: NFKC folds full-width digits and spaces; inner whitespace is collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", str(text if text is not None else ""))).strip()


def validate(form: Mapping) -> tuple[dict, dict[str, str]]:
    """Form or import row -> (clean values, field errors), through the registry form's declarations
    (app.intake.forms.NominatorFields). Keys: name, short_name, kind, position, quota_unit,
    quota_activity; kind may be a code or its Chinese label."""
    checked = forms.check(forms.NominatorFields, form)
    return dict(checked.data), forms.first_errors(checked)


QUOTA_FIELDS = ("quota_unit", "quota_activity")
QUOTAS_LOCKED = "本批次已定稿，推荐名额只读。"


def quotas_locked() -> bool:
    """After 定稿 a quota override would rewrite the finished round's quota warnings: read-only."""
    from app.rounds.phases import current_round

    rnd = current_round()
    return rnd is not None and rnd.phase == "final"


def _guard_quotas(before: dict | None, values: dict) -> None:
    """Refuse a quota change (a new override included) while quotas are read-only; other fields stay editable."""
    changed = [k for k in QUOTA_FIELDS if k in values and values[k] != (before or {}).get(k)]
    if changed and quotas_locked():
        raise Conflict(QUOTAS_LOCKED, {k: "已定稿，只读" for k in changed})


def _raise(errors: dict[str, str]) -> None:
    raise UserError("；".join(errors.values()) + "。", errors)


def _next_position(kind: str) -> int:
    return (db.session.scalar(select(func.max(Nominator.position)).where(Nominator.kind == kind)) or 0) + 1


def create(form: Mapping, *, actor=None) -> Nominator:
    values, errors = validate(form)
    if errors:
        _raise(errors)
    with write_transaction():
        if db.session.scalar(select(Nominator.id).where(Nominator.name == values["name"])):
            raise UserError(f"推荐单位「{values['name']}」已存在。", {"name": "已存在"}, status=409)
        _guard_quotas(None, values)
        if values["position"] is None:
            values["position"] = _next_position(values["kind"])
        nominator = Nominator(**values)
        db.session.add(nominator)
        db.session.flush()
        audit.record("nominator.create", "nominator", nominator.id, after=public(nominator), actor=actor)
    return nominator


def update(nominator_id: int, form: Mapping, *, actor=None) -> Nominator:
    values, errors = validate(form)
    if errors:
        _raise(errors)
    with write_transaction():
        nominator = get(nominator_id)
        clash = db.session.scalar(select(Nominator.id).where(Nominator.name == values["name"],
                                                             Nominator.id != nominator_id))
        if clash:
            raise UserError(f"推荐单位「{values['name']}」已存在。", {"name": "已存在"}, status=409)
        if values["position"] is None:
            values["position"] = nominator.position
        before = public(nominator)
        _guard_quotas(before, values)
        for key, value in values.items():
            setattr(nominator, key, value)
        after = public(nominator)
        if after != before:
            audit.record("nominator.update", "nominator", nominator.id, before=before, after=after, actor=actor)
    return nominator


def delete(nominator_id: int, *, actor=None) -> None:
    """Only a nominator nobody refers to (no nominations, no affiliated users) can be deleted."""
    with write_transaction():
        nominator = get(nominator_id)
        used = usage().get(nominator.id, {"nominations": 0, "users": 0})
        if used["nominations"] or used["users"]:
            raise UserError(f"「{nominator.name}」已有 {used['nominations']} 件推荐对象、{used['users']} 个关联账号，"
                            "不能删除。", status=409)
        audit.record("nominator.delete", "nominator", nominator.id, before=public(nominator), actor=actor)
        db.session.delete(nominator)


# ---------------------------------------------------------------------------------------------
# XLSX


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def message(self) -> str:
        return (f"导入完成：新增 {len(self.created)} 个、更新 {len(self.updated)} 个、"
                f"未变 {len(self.unchanged)} 个推荐单位。")


_COLUMN_KEYS = {"名称": "name", "单位名称": "name", "推荐单位": "name", "简称": "short_name", "类型": "kind",
                "类别": "kind", "排序": "position", "序号": "position", "顺序": "position",
                "优秀组织单位名额": "quota_unit", "优秀活动名额": "quota_activity"}


def _read_rows(data: bytes) -> tuple[list[tuple[int, dict]], set[str]]:
    from openpyxl import load_workbook

    if len(data) > IMPORT_MAX_BYTES:
        raise UserError("文件过大（不超过 5 MB）。", {"file": "过大"}, status=413)
    if not data.startswith(b"PK"):
        raise UserError("请上传 .xlsx 格式的表格文件。", {"file": "格式不对"})
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # noqa: BLE001 — openpyxl raises many kinds for a damaged file
        raise UserError("无法读取该表格文件，请确认是 Excel .xlsx 文件。", {"file": "无法读取"}) from e
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    columns = None
    out = []
    for number, row in enumerate(rows, start=1):
        cells = [_clean(c) for c in row]
        if columns is None:
            if "名称" in cells or "单位名称" in cells or "推荐单位" in cells:
                columns = {i: _COLUMN_KEYS[c] for i, c in enumerate(cells) if c in _COLUMN_KEYS}
            elif number >= 10:
                break
            continue
        if not any(cells):
            continue
        record = {key: row[i] if i < len(row) else None for i, key in columns.items()}
        out.append((number, record))
        if len(out) > IMPORT_MAX_ROWS:
            raise UserError(f"表格行数过多（不超过 {IMPORT_MAX_ROWS} 行）。", {"file": "过大"})
    book.close()
    if columns is None:
        raise UserError("表格中找不到表头（需要「名称」「类型」等列）。", {"file": "缺少表头"})
    if "kind" not in columns.values():
        raise UserError("表格缺少「类型」列。", {"file": "缺少列"})
    return out, set(columns.values())


def import_xlsx(data: bytes, *, actor=None) -> ImportResult:
    """Create or update nominators by name. Every row is checked first: one bad row saves nothing."""
    rows, present = _read_rows(data)
    if not rows:
        raise UserError("表格中没有数据行。", {"file": "没有数据"})
    problems = []
    parsed: dict[str, dict] = {}
    for number, record in rows:
        values, errors = validate(record)
        if errors:
            problems.append(f"第 {number} 行：" + "，".join(errors.values()))
        elif values["name"] in parsed:
            problems.append(f"第 {number} 行：名称「{values['name']}」在表格中重复")
        else:
            parsed[values["name"]] = values
    if problems:
        shown = "；".join(problems[:20]) + (f"……共 {len(problems)} 处" if len(problems) > 20 else "")
        raise UserError(f"表格有误，未导入任何数据：{shown}。", {"file": "有误"})
    result = ImportResult()
    with write_transaction():
        existing = {n.name: n for n in db.session.scalars(select(Nominator).where(Nominator.name.in_(parsed)))}
        next_pos: dict[str, int] = {}
        for name, values in parsed.items():
            nominator = existing.get(name)
            _guard_quotas(public(nominator) if nominator else None,
                          {k: v for k, v in values.items() if nominator is None or k in present})
            if nominator is None:
                if values["position"] is None:
                    next_pos.setdefault(values["kind"], _next_position(values["kind"]))
                    values["position"] = next_pos[values["kind"]]
                    next_pos[values["kind"]] += 1
                db.session.add(Nominator(**values))
                result.created.append(name)
                continue
            # A column the file does not have, or a blank order/short name, keeps what is there.
            keep = {k for k in values if k not in present}
            keep |= {k for k in ("position", "short_name") if values[k] in (None, "")}
            before = public(nominator)
            for key, value in values.items():
                if key not in keep:
                    setattr(nominator, key, value)
            (result.updated if public(nominator) != before else result.unchanged).append(name)
        audit.record("nominator.import", "nominator", None, actor=actor, after={
            "created": len(result.created), "updated": len(result.updated), "unchanged": len(result.unchanged),
            "created_names": result.created[:50], "updated_names": result.updated[:50]})
    return result


def template_xlsx() -> bytes:
    """An import template with the headers and the current registry (so it round-trips)."""
    from openpyxl import Workbook

    from app.core.spreadsheet_safety import append_row

    book = Workbook()
    sheet = book.active
    sheet.title = "推荐单位"
    sheet.append(list(HEADERS))
    for n in list_nominators():
        append_row(sheet, [n.name, n.short_name, KIND_LABELS[n.kind], n.position, n.quota_unit, n.quota_activity])
    for letter, width in zip("ABCDEF", (34, 14, 12, 8, 18, 14), strict=True):
        sheet.column_dimensions[letter].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
