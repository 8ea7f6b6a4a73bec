"""A .zip of forms with their photos and videos, read in memory — nothing is ever extracted by name.

Refused outright: member names that climb out (".."), absolute or drive paths, encrypted members, too
many entries, and archives whose declared uncompressed size (which zipfile enforces while reading) or
compression ratio says "zip bomb" — the same for a .docx or .xlsx (check_package), which is a zip
archive too, whether uploaded on its own or found inside a .zip. Names from Chinese Windows (GBK without the UTF-8 flag) are decoded.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass

from flask import current_app, has_app_context

from app.intake.parsed import ReadError
from app.intake.text import norm_key

MAX_ENTRIES = 2000
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
MAX_RATIO = 200  # deflate rarely beats ~10:1 on documents and never on photos or video
RATIO_FLOOR = 1024 * 1024  # tiny members may compress absurdly well (blank lines) and that is fine
PHOTO_EXT = {".jpg", ".jpeg", ".png"}
VIDEO_EXT = {".mp4", ".webm", ".m4v", ".mov"}
_JUNK = re.compile(r"(^|/)(__MACOSX/|\._|\.DS_Store$|Thumbs\.db$|desktop\.ini$|~\$)", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class Member:
    name: str  # decoded, "/"-separated
    info: zipfile.ZipInfo

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.name)

    @property
    def base(self) -> str:
        return posixpath.basename(self.name)

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.base)[0]

    @property
    def ext(self) -> str:
        return posixpath.splitext(self.base)[1].lower()


def _decode(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437", errors="replace")
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def _unsafe(name: str) -> bool:
    if not name or "\x00" in name or name.startswith(("/", "\\")) or _DRIVE.match(name):
        return True
    parts = re.split(r"[\\/]+", name)
    return any(p == ".." for p in parts)


def open_zip(data: bytes | str, source: str) -> tuple[zipfile.ZipFile, list[Member]]:
    """Open and vet an archive (bytes or a path); returns the files worth looking at (junk and folders
    left out)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError):
        raise ReadError(f"「{source}」不是有效的 .zip 压缩包。") from None
    try:
        return zf, _vet(zf, source)
    except BaseException:
        zf.close()
        raise


def check_package(data: bytes, source: str) -> None:
    """A .docx or .xlsx is a zip archive too: the same entry, size and compression-ratio limits, before
    python-docx or openpyxl inflates a single part of it."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not an archive at all: the reader says so in its own words
    with zf:
        _vet(zf, source)


def _vet(zf: zipfile.ZipFile, source: str) -> list[Member]:
    infos = zf.infolist()
    # The readers are also used outside a request (tests, scripts): the defaults then apply.
    config = current_app.config if has_app_context() else {}
    max_entries = config.get("IMPORT_MAX_ZIP_ENTRIES", MAX_ENTRIES)
    max_total = config.get("IMPORT_MAX_ZIP_BYTES", MAX_TOTAL_BYTES)
    if len(infos) > max_entries:
        raise ReadError(f"「{source}」包含 {len(infos)} 个文件，超过上限 {max_entries} 个，请分包导入。")
    total = 0
    members = []
    for info in infos:
        name = _decode(info)
        if _unsafe(name):
            raise ReadError(f"「{source}」包含不安全的文件路径「{name}」，已拒绝整个压缩包。")
        if info.flag_bits & 0x1:
            raise ReadError(f"「{source}」中的「{name}」已加密，请去掉密码后重新打包。")
        total += info.file_size
        if total > max_total:
            raise ReadError(f"「{source}」解压后超过 {max_total // 1024 // 1024} MB，请分包导入。")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ReadError(f"「{source}」中的「{name}」压缩比异常（疑似压缩炸弹），已拒绝。")
        if info.is_dir() or name.endswith("/") or _JUNK.search(name):
            continue
        members.append(Member(name=name.replace("\\", "/"), info=info))
    return members


def read_member(zf: zipfile.ZipFile, member: Member, limit: int) -> bytes:
    """The member's bytes, refusing more than `limit` (zipfile stops at the declared size, and a member
    whose data runs past it fails its CRC check)."""
    if member.info.file_size > limit:
        raise ReadError(f"「{member.name}」超过 {limit // 1024 // 1024} MB。")
    try:
        with zf.open(member.info) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
        raise ReadError(f"压缩包中的「{member.name}」已损坏。") from None
    if len(data) > limit:
        raise ReadError(f"「{member.name}」超过 {limit // 1024 // 1024} MB。")
    return data


def kind_of(member: Member) -> str | None:
    if member.ext == ".docx":
        return "docx"
    if member.ext == ".xlsx":
        return "xlsx"
    if member.ext in PHOTO_EXT:
        return "photo"
    if member.ext in VIDEO_EXT:
        return "video"
    return None


def match_media(forms: list[Member], media: list[Member]) -> tuple[dict[str, list[Member]], list[Member]]:
    """Which form each photo or video belongs to: by file-name prefix ("科普进社区-1.jpg" →
    "科普进社区.docx"), else by folder (the nearest folder holding exactly one form, or a folder named
    like a form), else the only form in the archive. Returns form name → media, and the unmatched."""
    by_folder: dict[str, list[Member]] = {}
    for f in forms:
        by_folder.setdefault(f.folder, []).append(f)
    out: dict[str, list[Member]] = {f.name: [] for f in forms}
    unmatched = []
    for m in media:
        owner = _by_prefix(forms, m) or _by_folder(by_folder, forms, m)
        if owner is None and len(forms) == 1:
            owner = forms[0]
        if owner is None:
            unmatched.append(m)
        else:
            out[owner.name].append(m)
    for lst in out.values():
        lst.sort(key=lambda m: m.name)
    return out, unmatched


def _by_prefix(forms: list[Member], m: Member) -> Member | None:
    stem = norm_key(m.stem)
    hits = [f for f in forms if len(norm_key(f.stem)) >= 2 and stem.startswith(norm_key(f.stem))]
    if not hits:
        return None
    hits.sort(key=lambda f: len(norm_key(f.stem)), reverse=True)
    if len(hits) > 1 and len(norm_key(hits[0].stem)) == len(norm_key(hits[1].stem)):
        return None
    return hits[0]


def _ancestors(folder: str):
    while True:
        yield folder
        if not folder:
            return
        folder = posixpath.dirname(folder)


def _by_folder(by_folder: dict[str, list[Member]], forms: list[Member], m: Member) -> Member | None:
    for folder in _ancestors(m.folder):
        here = by_folder.get(folder, [])
        if len(here) == 1:
            return here[0]
        name = norm_key(posixpath.basename(folder))
        if name:
            named = [f for f in forms if norm_key(f.stem).startswith(name) or name.startswith(norm_key(f.stem))]
            if len(named) == 1:
                return named[0]
        if len(here) > 1:
            return None
    return None
