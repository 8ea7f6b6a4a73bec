"""推荐单位 accounts in bulk, from the registry XLSX (推荐单位 / 联系人 / 联系电话 / 电子邮箱).

Read → plan (every row checked against the registry and the accounts; one bad row refuses the whole
file, nothing written) → the admin's preview → apply, one operation. The preview's rows travel back to
the confirm signed with SECRET_KEY (nothing kept on the server; a tampered payload is refused) and are
planned again inside the write transaction, so the confirm writes what the registry is then, not what it
was at upload. One account per unit: a re-import updates the contact data of the unit's account, never
a second one.

openpyxl reads with data_only=True (a formula gives its cached value; nothing is evaluated); the file is
vetted like every uploaded package (app/intake/zip_reader.check_package) before openpyxl inflates it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from app import mail
from app.accounts import credentials
from app.accounts.operations import (
    DISPLAY_NAME_MAX,
    EMAIL_MAX,
    PHONE_MAX,
    USERNAME_MAX,
    USERNAME_PATTERN,
    create_user,
    public,
)
from app.audit import operations as audit
from app.core.database import write_transaction
from app.core.errors import Conflict, UserError
from app.core.spreadsheet_safety import append_row
from app.extensions import db
from app.intake import zip_reader
from app.intake.parsed import ReadError
from app.intake.text import norm_key, norm_label
from app.models import Nominator, User

IMPORT_MAX_BYTES = 2 * 1024 * 1024
IMPORT_MAX_ROWS = 500
PAYLOAD_MAX_AGE = 3600  # seconds between the preview and its 确认导入
COLUMNS = [("推荐单位", 36), ("联系人", 12), ("联系电话", 18), ("电子邮箱", 30), ("用户名（可不填）", 16)]
HEADERS = {
    "推荐单位": "unit", "推荐单位名称": "unit", "单位": "unit", "单位名称": "unit", "单位全称": "unit",
    "联系人": "contact", "联系人姓名": "contact", "姓名": "contact", "负责人": "contact",
    "联系电话": "phone", "电话": "phone", "手机": "phone", "手机号": "phone", "手机号码": "phone",
    "联系方式": "phone", "联系人电话": "phone", "办公电话": "phone",
    "电子邮箱": "email", "邮箱": "email", "电子邮件": "email", "邮件": "email", "email": "email",
    "邮箱地址": "email", "电子邮箱地址": "email", "联系人邮箱": "email",
    "用户名": "username", "登录名": "username", "账号": "username", "登录账号": "username",
}
_BRACKETS = re.compile(r"[（(][^）)]*[）)]")
_USERNAME = re.compile(USERNAME_PATTERN)
_SALT = "kepu-account-import"


def _header(value) -> str | None:
    if value is None:
        return None
    return HEADERS.get(norm_label(_BRACKETS.sub("", str(value))).lower())


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a phone number typed as a number
    return " ".join(str(value).split())


def read(data: bytes, source: str = "上传的文件") -> list[dict]:
    """The data rows of the first sheet with a recognisable header: [{"row", "unit", "contact", "phone",
    "email", "username"}]."""
    from openpyxl import load_workbook

    if len(data) > IMPORT_MAX_BYTES:
        raise UserError(f"文件过大（不超过 {IMPORT_MAX_BYTES // 1024 // 1024} MB）。", {"file": "过大"}, status=413)
    if not data.startswith(b"PK"):
        raise UserError("请上传 Excel .xlsx 格式的表格（旧版 .xls 请先另存为 .xlsx）。", {"file": "格式不对"})
    try:
        zip_reader.check_package(data, source)
    except ReadError as e:
        raise UserError(str(e), {"file": "已拒绝"}) from e
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # noqa: BLE001 — openpyxl raises many kinds for a damaged file
        raise UserError("无法读取该表格文件，请确认是 Excel .xlsx 文件。", {"file": "无法读取"}) from e
    try:
        for sheet in book.worksheets:
            rows = _sheet_rows(sheet)
            if rows is not None:
                return rows
    finally:
        book.close()
    raise UserError("表格中找不到表头：需要「推荐单位」列，以及「联系人」「联系电话」「电子邮箱」中的至少一列。",
                    {"file": "缺少表头"})


def _sheet_rows(sheet) -> list[dict] | None:
    columns: dict[int, str] | None = None
    out: list[dict] = []
    for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        if columns is None:
            mapping: dict[int, str] = {}
            for i, value in enumerate(row):
                name = _header(value)
                if name and name not in mapping.values():
                    mapping[i] = name
            if "unit" in mapping.values() and len(mapping) >= 2:
                columns = mapping
            elif number >= 10:
                return None
            continue
        record = {key: _text(row[i]) if i < len(row) else "" for i, key in columns.items()}
        if not any(record.values()):
            continue
        # A column the file does not have is None: a re-import then keeps what the account has.
        out.append({"row": number, **{k: record.get(k) for k in ("unit", "contact", "phone", "email", "username")}})
        if len(out) > IMPORT_MAX_ROWS:
            raise UserError(f"表格行数过多（不超过 {IMPORT_MAX_ROWS} 行）。", {"file": "过大"})
    return out if columns is not None else None


# ---------------------------------------------------------------------------------------------
# Plan


@dataclass
class PlannedRow:
    row: int
    unit_text: str
    contact: str
    phone: str | None  # None: the file has no such column (keep the account's)
    email: str | None
    username: str
    nominator_id: int | None = None
    unit_name: str = ""
    user_id: int | None = None
    action: str = ""  # create | update | unchanged
    errors: list[str] = field(default_factory=list)

    @property
    def action_label(self) -> str:
        return {"create": "新建账号", "update": "更新联系信息", "unchanged": "无变化"}.get(self.action, "有误")


@dataclass
class Plan:
    rows: list[PlannedRow]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not any(r.errors for r in self.rows)

    @property
    def problems(self) -> list[str]:
        return [f"第 {r.row} 行：" + "；".join(r.errors) for r in self.rows if r.errors]

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action and not r.errors)

    def refusal(self) -> str:
        if not self.rows:
            return "表格中没有数据行。"
        shown = self.problems
        more = f"……共 {len(shown)} 处" if len(shown) > 10 else ""
        return "表格有误，未导入任何账号：" + "；".join(shown[:10]) + more + "。"


def _unit_index() -> tuple[dict[str, Nominator], set[str]]:
    by_key: dict[str, Nominator] = {}
    ambiguous: set[str] = set()
    units = list(db.session.scalars(select(Nominator).order_by(Nominator.id)))
    for n in units:
        by_key[norm_key(n.name)] = n
    for n in units:
        key = norm_key(n.short_name)
        if not key or key in by_key and by_key[key].id != n.id and norm_key(by_key[key].name) == key:
            continue  # a full name wins over someone's short name
        if key in by_key and by_key[key].id != n.id:
            ambiguous.add(key)
        else:
            by_key[key] = n
    return by_key, ambiguous


def default_username(nominator_id: int) -> str:
    return f"dw{nominator_id:03d}"


def plan(raw_rows: list[dict]) -> Plan:
    """Check every row against the registry and the accounts now in the database."""
    by_key, ambiguous = _unit_index()
    accounts: dict[int, User] = {}
    for u in db.session.scalars(select(User).where(User.role == "nominator", User.affiliation_id.is_not(None))
                                .order_by(User.active.desc(), User.id)):
        accounts.setdefault(u.affiliation_id, u)
    taken = {name.casefold(): uid for uid, name in db.session.execute(select(User.id, User.username))}
    seen_units: dict[int, int] = {}
    seen_names: dict[str, int] = {}
    rows: list[PlannedRow] = []
    for raw in raw_rows:
        r = PlannedRow(row=int(raw["row"]), unit_text=raw.get("unit") or "", contact=raw.get("contact") or "",
                       phone=raw.get("phone"), email=raw.get("email"), username=raw.get("username") or "")
        rows.append(r)
        key = norm_key(r.unit_text)
        unit = by_key.get(key) if key not in ambiguous else None
        if not r.unit_text:
            r.errors.append("推荐单位为空")
        elif key in ambiguous:
            r.errors.append(f"简称「{r.unit_text}」对应多个推荐单位，请写全称")
        elif unit is None:
            r.errors.append(f"系统中没有推荐单位「{r.unit_text}」（请先在“推荐单位”中添加，或检查名称）")
        if len(r.contact) > DISPLAY_NAME_MAX:
            r.errors.append(f"联系人不能超过 {DISPLAY_NAME_MAX} 个字")
        if len(r.phone or "") > PHONE_MAX:
            r.errors.append(f"联系电话不能超过 {PHONE_MAX} 个字符")
        if r.email and (len(r.email) > EMAIL_MAX or not mail.is_valid_address(r.email)):
            r.errors.append(f"电子邮箱「{r.email[:60]}」格式不正确")
        if unit is None:
            continue
        r.nominator_id, r.unit_name = unit.id, unit.name
        if unit.id in seen_units:
            r.errors.append(f"推荐单位「{unit.name}」与第 {seen_units[unit.id]} 行重复")
            continue
        seen_units[unit.id] = r.row
        account = accounts.get(unit.id)
        if account is not None:
            r.user_id, r.username = account.id, account.username
            r.contact = r.contact or account.display_name
            r.phone = account.phone if r.phone is None else r.phone
            r.email = account.email if r.email is None else r.email
            changed = (r.contact, r.phone, r.email) != (account.display_name, account.phone, account.email)
            r.action = "update" if changed else "unchanged"
            continue
        r.action = "create"
        if r.username:
            if len(r.username) > USERNAME_MAX or not _USERNAME.match(r.username):
                r.errors.append("用户名只能包含字母、数字、下划线、点和连字符，且不超过 50 个字符")
            elif r.username.casefold() in taken:
                r.errors.append(f"用户名「{r.username}」已被其他账号使用")
        else:
            base, n = default_username(unit.id), 1
            r.username = base
            while r.username.casefold() in taken or r.username.casefold() in seen_names:
                n += 1
                r.username = f"{base}-{n}"
        if r.username.casefold() in seen_names:
            r.errors.append(f"用户名「{r.username}」与第 {seen_names[r.username.casefold()]} 行重复")
        seen_names.setdefault(r.username.casefold(), r.row)
    return Plan(rows)


# ---------------------------------------------------------------------------------------------
# The preview's signed payload


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def sign(raw_rows: list[dict], *, credential: str, mail_invite: bool, actor_id: int | None) -> str:
    return _serializer().dumps({"rows": raw_rows, "credential": credential, "mail": bool(mail_invite),
                                "actor": actor_id})


def unsign(payload: str, *, actor_id: int | None) -> dict:
    try:
        data = _serializer().loads(payload or "", max_age=PAYLOAD_MAX_AGE)
    except BadSignature as e:
        raise UserError("导入内容已过期或无效，请重新上传文件。", status=400) from e
    if not isinstance(data, dict) or data.get("actor") != actor_id or not isinstance(data.get("rows"), list):
        raise UserError("导入内容已过期或无效，请重新上传文件。", status=400)
    return data


# ---------------------------------------------------------------------------------------------
# Apply


@dataclass
class Outcome:
    issued: list[credentials.Issued]
    updated: list[str]
    unchanged: list[str]

    def message(self) -> str:
        return (f"导入完成：新建 {len(self.issued)} 个、更新 {len(self.updated)} 个、"
                f"无变化 {len(self.unchanged)} 个推荐单位账号。")


def apply(raw_rows: list[dict], *, credential: str, mail_invite: bool = False, actor=None) -> Outcome:
    """Create the missing accounts (each with a one-time password or invitation) and update the
    contact data of the existing ones, in one transaction."""
    ahead = plan(raw_rows)
    if not ahead.ok:
        raise UserError(ahead.refusal(), {"file": "有误"})
    prepared = [credentials.prepare(credential) for _ in range(ahead.count("create"))]
    with write_transaction():
        now = plan(raw_rows)
        if not now.ok or now.count("create") != len(prepared):
            raise Conflict("推荐单位或账号在预览之后有变化，请重新上传文件核对。")
        outcome = Outcome([], [], [])
        pool = iter(prepared)
        for r in now.rows:
            if r.action == "create":
                user = create_user(r.username, r.contact or r.unit_name[:DISPLAY_NAME_MAX], "nominator",
                                   affiliation=r.unit_name, email=r.email or "", phone=r.phone or "",
                                   password_hash="!pending", actor=actor)
                outcome.issued.append(credentials.apply(user, next(pool), actor=actor, mail_invite=mail_invite))
            elif r.action == "update":
                user = db.session.get(User, r.user_id)
                before = public(user)
                user.display_name, user.phone, user.email = r.contact, r.phone, r.email
                audit.record("user.update", "user", user.id, before=before, after=public(user), actor=actor)
                outcome.updated.append(r.unit_name)
            else:
                outcome.unchanged.append(r.unit_name)
        audit.record("user.import", "user", None, actor=actor, after={
            "created": len(outcome.issued), "updated": len(outcome.updated), "unchanged": len(outcome.unchanged),
            "credential": credential, "created_units": [i.unit for i in outcome.issued][:60]})
    return outcome


def template_xlsx() -> bytes:
    """The registry with its accounts' contact data (so it round-trips), or blank columns to fill."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    accounts: dict[int, User] = {}
    for u in db.session.scalars(select(User).where(User.role == "nominator").order_by(User.id)):
        accounts.setdefault(u.affiliation_id, u)
    book = Workbook()
    sheet = book.active
    sheet.title = "推荐单位账号"
    sheet.append([c for c, _w in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for n in db.session.scalars(select(Nominator).order_by(Nominator.kind, Nominator.position, Nominator.id)):
        u = accounts.get(n.id)
        append_row(sheet, [n.name, u.display_name if u else "", u.phone if u else "", u.email if u else "",
                           u.username if u else ""])
    for letter, (_c, width) in zip("ABCDE", COLUMNS, strict=True):
        sheet.column_dimensions[letter].width = width
    notes = book.create_sheet("填写说明")
    for line in ("填写说明",
                 "1. 每行一个推荐单位；“推荐单位”须与系统中的名称或简称一致。",
                 "2. 每个推荐单位只有一个账号：重复导入时更新联系人、电话和邮箱，不会重复建号。",
                 "3. 用户名可不填，系统自动生成（如 dw007）；已有账号的单位不改用户名。",
                 "4. 新账号的一次性密码或邀请链接只在导入完成的页面显示一次，请当场打印或发送。"):
        notes.append([line])
    notes.column_dimensions["A"].width = 90
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
