"""Imports: read files (.docx forms, the .xlsx template, .zip bundles) → plan (what would be created,
updated, skipped or rejected, and why) → save. The web page shows the plan as a preview and saves only on
confirmation; the CLI prints it, and saves unless --dry-run.

Re-imports: a nomination's key is a hash of its normalized nominator, category and name
(nominations.source_key_for). The same key again updates the stored nomination when something changed
and is skipped when nothing did — a corrected form sent a second time replaces the first, never doubles
it. Photos and a video are added on an update only when the nomination has none yet.

An over-long 简介 is not refused: the first 500 characters are stored, the full text is kept in
Nomination.summary_original, and 形式审查 holds a blocking finding until an admin rewrites it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from datetime import date

from flask import current_app
from sqlalchemy import select

from app.audit import operations as audit
from app.core.errors import UserError
from app.extensions import db
from app.intake import nominations, places, uploads, zip_reader
from app.intake.docx_reader import read_docx
from app.intake.nominations import field_label, fields_for
from app.intake.parsed import MediaRef, ParsedForm, ReadError
from app.intake.text import clean_text, norm_key
from app.intake.xlsx_reader import read_xlsx
from app.models import CATEGORY_LABELS, Attachment, Nominator, Round
from app.models.nomination import SUMMARY_MAX

DOC_MAX_BYTES = 60 * 1024 * 1024
PREVIEW_TTL_SECONDS = 24 * 3600
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass
class Source:
    name: str  # as the admin knows it (the uploaded file name)
    path: str


@dataclass
class Reading:
    """Everything read from a batch of files; media bytes are fetched lazily from the sources."""

    sources: list[Source]
    forms: list[ParsedForm] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    embedded: dict = field(default_factory=dict)  # (file index, docx member or None) → {image index: bytes}
    _zips: dict = field(default_factory=dict)

    def zip(self, file_index: int) -> zipfile.ZipFile:
        if file_index not in self._zips:
            self._zips[file_index], _ = zip_reader.open_zip(self.sources[file_index].path,
                                                            self.sources[file_index].name)
        return self._zips[file_index]

    def media_bytes(self, ref: MediaRef, limit: int) -> bytes:
        if ref.image is not None:
            return self.embedded[(ref.file_index, ref.member)][ref.image]
        zf = self.zip(ref.file_index)
        return zip_reader.read_member(zf, zip_reader.Member(ref.member, zf.getinfo(_raw_name(zf, ref.member))),
                                      limit)

    def media_stream(self, ref: MediaRef):
        zf = self.zip(ref.file_index)
        return zf.open(zf.getinfo(_raw_name(zf, ref.member)))

    def close(self):
        for zf in self._zips.values():
            zf.close()
        self._zips.clear()


def _raw_name(zf: zipfile.ZipFile, decoded: str) -> str:
    for info in zf.infolist():
        if zip_reader._decode(info).replace("\\", "/") == decoded:
            return info.filename
    raise ReadError(f"压缩包中找不到「{decoded}」。")


# --- reading ------------------------------------------------------------------------------------------


def _kind(path: str, name: str) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == OLE_SIGNATURE:
        raise ReadError(f"「{name}」是旧版 Word/Excel 文件（.doc/.xls），请另存为 .docx/.xlsx 后再导入。")
    if not zipfile.is_zipfile(path):
        ext = os.path.splitext(name)[1].lower()
        if ext in zip_reader.PHOTO_EXT | zip_reader.VIDEO_EXT:
            raise ReadError(f"「{name}」是照片或视频：请在推荐对象详情页上传，或与推荐表一起打包成 .zip 导入。")
        raise ReadError(f"「{name}」不是 .docx、.xlsx 或 .zip 文件。")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    return "zip"


def _small(path: str, name: str) -> bytes:
    if os.path.getsize(path) > DOC_MAX_BYTES:
        raise ReadError(f"「{name}」超过 {DOC_MAX_BYTES // 1024 // 1024} MB。")
    with open(path, "rb") as fh:
        return fh.read()


def _hints_for(name: str) -> list[str]:
    """File and folder names, nearest first, without extensions: the best clue to the nominator."""
    parts = [p for p in re.split(r"[\\/]+", name) if p]
    return [os.path.splitext(parts[-1])[0], *reversed(parts[:-1])] if parts else []


def read_sources(sources: list[Source]) -> Reading:
    reading = Reading(sources=sources)
    for i, src in enumerate(sources):
        try:
            kind = _kind(src.path, src.name)
            if kind == "docx":
                forms, embedded = read_docx(_small(src.path, src.name), src.name, file_index=i)
                reading.embedded[(i, None)] = embedded
                for f in forms:
                    f.hints = _hints_for(src.name)
                    for ref in f.media:
                        ref.file_index = i
                reading.forms.extend(forms)
            elif kind == "xlsx":
                rows = read_xlsx(_small(src.path, src.name), src.name, file_index=i)
                for f in rows:
                    f.hints = _hints_for(src.name)  # "长沙市科协推荐汇总.xlsx" names the nominator of every row
                reading.forms.extend(rows)
            else:
                _read_zip(reading, i, src)
        except ReadError as e:
            reading.file_errors.append(e.message)
    return reading


def _read_zip(reading: Reading, i: int, src: Source) -> None:
    zf, members = zip_reader.open_zip(src.path, src.name)
    reading._zips[i] = zf
    by_kind: dict[str, list[zip_reader.Member]] = {"docx": [], "xlsx": [], "photo": [], "video": []}
    ignored = []
    for m in members:
        kind = zip_reader.kind_of(m)
        (by_kind[kind] if kind else ignored).append(m)
    media_of, unmatched = zip_reader.match_media(by_kind["docx"], by_kind["photo"] + by_kind["video"])
    for m in by_kind["docx"]:
        where = f"{src.name} › {m.name}"
        try:
            forms, embedded = read_docx(zip_reader.read_member(zf, m, DOC_MAX_BYTES), where, file_index=i)
        except ReadError as e:
            reading.file_errors.append(e.message)
            continue
        reading.embedded[(i, m.name)] = embedded
        for f in forms:
            f.hints = _hints_for(m.name) + [os.path.splitext(src.name)[0]]
            for ref in f.media:
                ref.file_index, ref.member = i, m.name
            if len(forms) == 1:
                f.media.extend(MediaRef(kind=zip_reader.kind_of(x), name=x.name, file_index=i, member=x.name)
                               for x in media_of[m.name])
            elif media_of[m.name]:
                f.notes.append(f"「{m.name}」含多份推荐表，同目录的照片和视频无法自动对应，请导入后逐项上传。")
        reading.forms.extend(forms)
    for m in by_kind["xlsx"]:
        try:
            reading.forms.extend(read_xlsx(zip_reader.read_member(zf, m, DOC_MAX_BYTES),
                                           f"{src.name} › {m.name}", file_index=i))
        except ReadError as e:
            reading.file_errors.append(e.message)
    if unmatched:
        reading.notes.append(f"「{src.name}」中有 {len(unmatched)} 个照片或视频无法对应到推荐表，未导入："
                             + "、".join(m.name for m in unmatched[:10]) + ("等" if len(unmatched) > 10 else ""))
    if ignored:
        reading.notes.append(f"「{src.name}」中有 {len(ignored)} 个文件不是推荐表、照片或视频，已忽略："
                             + "、".join(m.name for m in ignored[:10]) + ("等" if len(ignored) > 10 else ""))
    if not by_kind["docx"] and not by_kind["xlsx"]:
        reading.file_errors.append(f"「{src.name}」中没有 .docx 推荐表或 .xlsx 导入表。")


# --- nominator matching -------------------------------------------------------------------------------


def _tokens(n: Nominator) -> set[str]:
    tokens = {norm_key(n.name), norm_key(n.short_name)}
    if n.kind == "city" and len(n.short_name or "") >= 3 and n.short_name[-1] in "市州":
        tokens.add(norm_key(n.short_name[:-1]))  # 湘西州 → 湘西
    for suffix in ("科学技术协会", "科协"):
        if n.name.endswith(suffix):
            base = n.name[: -len(suffix)]
            tokens.add(norm_key(base))
            if n.kind == "city" and len(base) >= 3 and base[-1] in "市州":
                tokens.add(norm_key(base[:-1]))
    return {t for t in tokens if len(t) >= 2}


def find_nominator(name: str, everyone: list[Nominator]) -> Nominator | None:
    """An exact (normalized) name or short name."""
    key = norm_key(name)
    if not key:
        return None
    for n in everyone:
        if key in (norm_key(n.name), norm_key(n.short_name)):
            return n
    return None


def guess_nominator(texts: list[str], everyone: list[Nominator]) -> tuple[Nominator | None, str]:
    """The nominator whose name appears in the first text that names exactly one (longest match wins)."""
    tokens = [(n, _tokens(n)) for n in everyone]
    for text in texts:
        key = norm_key(text)
        if not key:
            continue
        best: dict[int, tuple[int, Nominator]] = {}
        for n, toks in tokens:
            length = max((len(t) for t in toks if t in key), default=0)
            if length:
                best[n.id] = (length, n)
        if not best:
            continue
        ranked = sorted(best.values(), key=lambda x: -x[0])
        if len(ranked) == 1 or ranked[0][0] > ranked[1][0]:
            return ranked[0][1], f"根据「{clean_text(text)[:40]}」推断"
    return None, ""


def _self_nominator(title: str, everyone: list[Nominator]) -> Nominator | None:
    """The unit is itself on the list of nominators (a 市科协 or 学会 nominated as 优秀组织单位)."""
    return find_nominator(title, everyone) or find_nominator(title.replace("科学技术协会", "科协"), everyone)


def _city_nominators(city: str, everyone: list[Nominator]) -> list[Nominator]:
    words = {norm_key(city), norm_key(places.city_short(city))}
    return [n for n in everyone if n.kind == "city"
            and any(w and (w in norm_key(n.name) or w in norm_key(n.short_name)) for w in words)]


def attribute_unit(values: dict, everyone: list[Nominator]) -> tuple[Nominator | None, str, str]:
    """A 附件1 form that names no nominator: (nominator, why, "") when its unit is itself a nominator or
    its name and address place it in one 市州 whose 科协 is on the list; (None, "", why not) when they
    point to different 市州 or that 市州 has no single nominator, so the admin is asked."""
    title = values.get("title") or ""
    own = _self_nominator(title, everyone) if title else None
    if own is not None:
        return own, f"单位本身是推荐单位「{own.name}」", ""
    seen: dict[str, list[str]] = {}
    for label, text in (("单位名称", title), ("通讯地址", values.get("address") or "")):
        for place in places.places_in(text):
            seen.setdefault(place.city, [])
            if label not in seen[place.city]:
                seen[place.city].append(label)
    if not seen:
        return None, "", ""
    if len(seen) > 1:
        where = "、".join(f"{'和'.join(labels)}指向{city}" for city, labels in seen.items())
        return None, "", f"{where}，无法确定推荐单位：请选择推荐单位。"
    city, labels = next(iter(seen.items()))
    candidates = _city_nominators(city, everyone)
    if len(candidates) != 1:
        why = "推荐单位名单中没有" if not candidates else "推荐单位名单中有多个"
        return None, "", f"{'和'.join(labels)}位于{city}，但{why}{city}的推荐单位，无法确定推荐单位：请选择推荐单位。"
    return candidates[0], f"根据{'和'.join(labels)}，位于{city}", ""


# --- planning -----------------------------------------------------------------------------------------


@dataclass
class Item:
    index: int
    source: str
    category: str | None
    values: dict = field(default_factory=dict)
    nominator_id: int | None = None
    nominator_name: str = ""
    nominator_note: str = ""
    received: date | None = None
    summary_original: str | None = None
    media: list[MediaRef] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    action: str = "reject"  # create | update | skip | reject
    existing_id: int | None = None
    existing_version: str | None = None  # what the plan compared against: a save over a newer edit is refused
    changes: list[str] = field(default_factory=list)
    source_key: str | None = None
    include: bool = True

    @property
    def photos(self) -> list[MediaRef]:
        return [m for m in self.media if m.kind == "photo"]

    @property
    def videos(self) -> list[MediaRef]:
        return [m for m in self.media if m.kind == "video"]

    @property
    def title(self) -> str:
        return self.values.get("title") or ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["received"] = self.received.isoformat() if self.received else None
        data["values"] = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.values.items()}
        data["category_label"] = CATEGORY_LABELS.get(self.category or "", "无法识别")
        data["labels"] = {k: field_label(k, self.category or "unit") for k in self.values}
        data["photo_count"] = len(self.photos)
        data["video_count"] = len(self.videos)
        return data


def _check_media(reading: Reading, item: Item) -> None:
    """Drop photos that would be refused on save (and say why), keep at most the import limit."""
    max_bytes = current_app.config["UPLOAD_MAX_PHOTO_BYTES"]
    kept = []
    for ref in item.photos:
        try:
            uploads.check_photo(reading.media_bytes(ref, max_bytes), ref.name)
            kept.append(ref)
        except (UserError, ReadError) as e:
            item.warnings.append(f"照片不可用，未导入：{e.message}")
    if len(kept) > uploads.PHOTO_IMPORT_MAX:
        item.warnings.append(f"共 {len(kept)} 张照片，只导入前 {uploads.PHOTO_IMPORT_MAX} 张。")
        kept = kept[: uploads.PHOTO_IMPORT_MAX]
    videos = item.videos
    if len(videos) > 1:
        item.warnings.append(f"共 {len(videos)} 个视频，只导入第一个「{videos[0].name}」。")
        videos = videos[:1]
    item.media = kept + videos


def plan(reading: Reading, rnd: Round, *, nominator_id: int | None = None, received: date | None = None,
         choices: dict | None = None, check_media: bool = True) -> list[Item]:
    """What saving would do with each form read; saves nothing. `choices` (index → {"nominator_id",
    "include"}) carries the admin's picks from the preview page."""
    choices = choices or {}
    everyone = list(db.session.scalars(select(Nominator).order_by(Nominator.position, Nominator.id)))
    by_id = {n.id: n for n in everyone}
    default = by_id.get(nominator_id) if nominator_id else None
    items: list[Item] = []
    seen_keys: dict[str, int] = {}
    for index, form in enumerate(reading.forms):
        item = Item(index=index, source=form.source, category=form.category, received=form.received or received)
        items.append(item)
        item.warnings.extend(form.notes)
        item.media = list(form.media)
        choice = choices.get(index, {})
        item.include = choice.get("include", True)
        if form.form_year and form.form_year != rnd.year:
            item.warnings.append(f"推荐表标题年份为 {form.form_year} 年，当前批次为 {rnd.year} 年，请确认。")
        if form.category is None:
            item.errors.append("无法判断是附件1（优秀组织单位）还是附件2（优秀活动）推荐表。")
            continue
        raw = dict(form.raw)
        summary = clean_text(raw.get("summary"))
        if len(summary) > SUMMARY_MAX:
            item.summary_original = summary
            raw["summary"] = summary[:SUMMARY_MAX]
            item.warnings.append(f"简介共 {len(summary)} 字，超过 {SUMMARY_MAX} 字：将保存前 {SUMMARY_MAX} 字并保留原文，"
                                 f"形式审查会标记为阻断性问题，需精简后才能进入专家评审。")
        try:
            cleaned = nominations.validate_fields(form.category, raw)
        except UserError as e:
            item.errors.append(e.message)
            continue
        item.values = {k: cleaned.values.get(k) for k in fields_for(form.category)}
        for name, message in cleaned.errors.items():
            label = field_label(name, form.category)
            item.errors.append(message if label in message else f"{label}：{message}")
        item.missing = nominations.missing_labels(cleaned, form.category)
        _resolve_nominator(item, form, choice, default, by_id, everyone)
        if check_media:
            _check_media(reading, item)
        if item.errors or item.nominator_id is None:
            continue
        nominator = by_id[item.nominator_id]
        item.source_key = nominations.source_key_for(nominator.name, form.category, item.title)
        if item.source_key in seen_keys:
            item.errors.append(f"与本次导入的第 {seen_keys[item.source_key] + 1} 项是同一推荐对象（推荐单位、类别、名称相同）。")
            continue
        seen_keys[item.source_key] = index
        _compare_existing(item, rnd)
    return items


def _resolve_nominator(item, form, choice, default, by_id, everyone) -> None:
    chosen = choice.get("nominator_id")
    if chosen and chosen in by_id:
        item.nominator_id, item.nominator_note = chosen, "由管理员选择"
    elif form.nominator_name:
        found = find_nominator(form.nominator_name, everyone)
        if found:
            item.nominator_id, item.nominator_note = found.id, "表中填写"
        else:
            item.errors.append(f"推荐单位「{form.nominator_name}」不在推荐单位名单中，请选择或先在名单中添加。")
    elif default is not None:
        item.nominator_id, item.nominator_note = default.id, "导入时指定"
    else:
        guessed, why = guess_nominator(form.hints + [item.values.get("recommendation") or ""], everyone)
        if guessed is None and form.category == "unit":
            guessed, why, doubt = attribute_unit(item.values, everyone)
            if doubt:
                item.errors.append(doubt)
        if guessed:
            item.nominator_id, item.nominator_note = guessed.id, why
    if item.nominator_id is None and not any("推荐单位" in e for e in item.errors):
        item.errors.append("无法确定推荐单位：请选择推荐单位（命令行用 --nominator 指定）。")
    if item.nominator_id:
        item.nominator_name = by_id[item.nominator_id].name


def _compare_existing(item: Item, rnd: Round) -> None:
    existing = nominations.by_source_key(rnd.id, item.source_key)
    if existing is None:
        item.action = "create"
        return
    item.existing_id = existing.id
    item.existing_version = nominations.version_of(existing)
    if existing.status == "withdrawn":
        item.action = "skip"
        item.warnings.append("该推荐对象已导入并已撤回，本次不再导入；如需恢复请在详情页操作。")
        return
    changes = [field_label(k, existing.category) for k, v in item.values.items() if getattr(existing, k) != v]
    if (item.summary_original or None) != (existing.summary_original or None) and "简介" not in "".join(changes):
        changes.append(field_label("summary", existing.category))
    if existing.photos:
        if item.photos:
            item.warnings.append(f"已有 {len(existing.photos)} 张照片，本次的照片不再重复导入。")
        item.media = [m for m in item.media if m.kind != "photo"]
    if existing.video is not None:
        item.media = [m for m in item.media if m.kind != "video"]
    item.changes = changes
    item.action = "update" if changes or item.media else "skip"
    if item.action == "skip":
        item.warnings.append("已导入过，内容没有变化，跳过。")


# --- saving -------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    created: list = field(default_factory=list)  # (item, nomination id)
    updated: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (item, reason)
    rejected: list = field(default_factory=list)  # (item, reason)
    file_errors: list = field(default_factory=list)

    def summary(self) -> str:
        return (f"新增 {len(self.created)} 项，更新 {len(self.updated)} 项，跳过 {len(self.skipped)} 项，"
                f"未导入 {len(self.rejected)} 项")


def _store_media(reading: Reading, item: Item) -> list:
    max_bytes = current_app.config["UPLOAD_MAX_PHOTO_BYTES"]
    stored = []
    try:
        for ref in item.photos:
            try:
                photo = uploads.check_photo(reading.media_bytes(ref, max_bytes), ref.name)
            except (UserError, ReadError) as e:
                item.warnings.append(f"照片未导入：{e.message}")
                continue
            stored.append(uploads.store_photo(photo, os.path.basename(ref.name)))
        for ref in item.videos[:1]:
            try:
                with reading.media_stream(ref) as stream:
                    name, size, mime = uploads.save_video_stream(stream, ref.name)
            except (UserError, ReadError, zipfile.BadZipFile, zlib.error, EOFError) as e:
                item.warnings.append(f"视频未导入：{getattr(e, 'message', '文件已损坏')}")
                continue
            stored.append(Attachment(kind="video", stored_name=name, original_name=os.path.basename(ref.name),
                                     mime=mime, size_bytes=size))
    except BaseException:
        uploads.discard(stored)
        raise
    return stored


def save(reading: Reading, items: list[Item], rnd: Round, *, actor=None) -> Outcome:
    """Save what the plan says (items the admin left included) as one operation: one transaction that
    calls nominations.create/update for each form, and one re-check of the round after it commits.

    A form refused at this point (someone saved the same nomination since the preview, say) is rolled
    back to its savepoint and reported, without undoing the others; anything else undoes the whole
    import, photo and video files included."""
    out = Outcome(file_errors=list(reading.file_errors))
    stored: list[Attachment] = []
    try:
        with nominations.batch(actor=actor):
            for item in items:
                _save_item(reading, item, rnd, out, stored, actor)
            if out.created or out.updated:
                audit.record("nomination.import", "round", rnd.id, round_id=rnd.id, actor=actor, after={
                    "files": [s.name for s in reading.sources],
                    "created": [nid for _i, nid in out.created], "updated": [nid for _i, nid in out.updated],
                    "skipped": len(out.skipped), "rejected": len(out.rejected)})
    except BaseException:
        uploads.discard(stored)
        raise
    return out


def _save_item(reading: Reading, item: Item, rnd: Round, out: Outcome, stored: list, actor) -> None:
    if item.action == "reject":
        out.rejected.append((item, "；".join(item.errors) or "无法导入"))
        return
    if not item.include:
        out.skipped.append((item, "管理员选择不导入"))
        return
    if item.action == "skip":
        out.skipped.append((item, item.warnings[-1] if item.warnings else "无变化"))
        return
    try:
        media = _store_media(reading, item)
    except OSError:
        out.rejected.append((item, "保存照片或视频时出错"))
        return
    stored.extend(media)  # from here on, a failed import removes these files with everything else
    try:
        with db.session.begin_nested():
            if item.action == "create":
                nom = nominations.create(
                    rnd.id, item.nominator_id, item.category, item.values, actor=actor, source_key=item.source_key,
                    received_at=nominations.received_at_from(item.received) if item.received else None,
                    summary_original=item.summary_original)
            else:
                nom = nominations.update(item.existing_id, item.values, version=item.existing_version,
                                         actor=actor, summary_original=item.summary_original or "")
    except UserError as e:
        uploads.discard(media)
        detail = "；".join(e.field_errors.values()) if e.field_errors else ""
        out.rejected.append((item, e.message + (f"（{detail}）" if detail else "")))
        return
    if media:
        try:
            with db.session.begin_nested():
                uploads.attach(nom.id, media, actor=actor, photo_limit=uploads.PHOTO_IMPORT_MAX,
                               action="attachment.import")
        except UserError as e:
            item.warnings.append(f"照片或视频未导入：{e.message}")
    (out.created if item.action == "create" else out.updated).append((item, nom.id))


# --- previews kept on disk between the upload and the confirmation ------------------------------------


def preview_root() -> str:
    configured = current_app.config.get("IMPORT_PREVIEW_FOLDER")
    root = configured or os.path.join(os.path.dirname(os.path.abspath(current_app.config["UPLOAD_FOLDER"])),
                                      "import_previews")
    os.makedirs(root, exist_ok=True)
    return root


def _folder(token: str) -> str:
    if not _TOKEN.match(token or ""):
        raise UserError("导入预览不存在或已过期，请重新上传。", status=404)
    return os.path.join(preview_root(), token)


def _cleanup() -> None:
    root = preview_root()
    cutoff = time.time() - PREVIEW_TTL_SECONDS
    for name in os.listdir(root):
        path = os.path.join(root, name)
        try:
            if os.path.getmtime(path) < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def new_preview(files, *, user_id: int | None, round_id: int, nominator_id: int | None,
                received: date | None) -> tuple[str, list[Source]]:
    """Save uploaded files (werkzeug FileStorage or (name, bytes)) under a random token; nothing about
    them goes into the cookie session."""
    _cleanup()
    token = secrets.token_urlsafe(24)
    folder = _folder(token)
    os.makedirs(folder)
    sources = []
    for i, f in enumerate(files):
        path = os.path.join(folder, f"source-{i}")
        if isinstance(f, tuple):
            name, data = f
            with open(path, "wb") as fh:
                fh.write(data)
        else:
            name = f.filename or f"文件{i + 1}"
            f.save(path)
        sources.append(Source(os.path.basename(name.replace("\\", "/"))[:200], path))
    meta = {"user_id": user_id, "round_id": round_id, "nominator_id": nominator_id,
            "received": received.isoformat() if received else None, "created": time.time(),
            "sources": [s.name for s in sources], "choices": {}}
    _write_json(folder, "meta.json", meta)
    return token, sources


def _write_json(folder: str, name: str, data) -> None:
    tmp = os.path.join(folder, name + ".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
    os.replace(tmp, os.path.join(folder, name))


def load_preview(token: str, user_id: int | None) -> tuple[dict, list[Source]]:
    folder = _folder(token)
    try:
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        raise UserError("导入预览不存在或已过期，请重新上传。", status=404) from None
    if meta.get("user_id") != user_id:
        raise UserError("导入预览不存在或已过期，请重新上传。", status=404)
    sources = [Source(name, os.path.join(folder, f"source-{i}")) for i, name in enumerate(meta["sources"])]
    return meta, sources


def save_preview_items(token: str, meta: dict, reading: Reading, items: list[Item]) -> None:
    folder = _folder(token)
    _write_json(folder, "meta.json", meta)
    _write_json(folder, "preview.json", {"items": [i.to_json() for i in items],
                                         "file_errors": reading.file_errors, "notes": reading.notes})


def preview_items(token: str) -> dict | None:
    try:
        with open(os.path.join(_folder(token), "preview.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def drop_preview(token: str) -> None:
    shutil.rmtree(_folder(token), ignore_errors=True)


def meta_options(meta: dict) -> dict:
    return {"nominator_id": meta.get("nominator_id"),
            "received": date.fromisoformat(meta["received"]) if meta.get("received") else None,
            "choices": {int(k): v for k, v in (meta.get("choices") or {}).items()}}
