"""The 盖章件: the scan of the printed, stamped 推荐表 — a PDF, or a JPEG/PNG photo of the page. Judged by
content, never by the file name: a PDF must start with its signature, end with its end marker and open
with at least one page; an image goes through the same check and re-encoding as every photo."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from flask import current_app

from app.core import storage
from app.core.errors import UserError
from app.intake import uploads
from app.models import Attachment

# A scanned page or two; a phone photo of the page is checked against the photo limit instead.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
FIELD = "stamped"


@dataclass
class Checked:
    data: bytes
    mime: str
    ext: str
    photo: uploads.CleanPhoto | None = None


def max_bytes() -> int:
    return int(current_app.config.get("UPLOAD_MAX_STAMPED_BYTES") or DEFAULT_MAX_BYTES)


def _refuse(message: str):
    return UserError(message, {FIELD: message})


def _check_pdf(data: bytes, name: str) -> None:
    if b"%%EOF" not in data[-2048:]:
        raise _refuse(f"「{name}」不是完整的 PDF 文件（文件可能没有传完），请重新扫描或导出后上传。")
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        # pypdf logs what it repairs; a scan that needs repair but opens is fine.
        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise _refuse(f"「{name}」是加密的 PDF，请上传未加密的扫描件。")
        pages = len(reader.pages)
    except UserError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError):
        raise _refuse(f"「{name}」已损坏，无法作为 PDF 打开。") from None
    if pages < 1:
        raise _refuse(f"「{name}」没有页面。")


def check(data: bytes, filename: str) -> Checked:
    name = uploads.display_name(filename)
    if not data:
        raise _refuse("请选择盖章件文件（PDF 或 JPG/PNG 图片）。")
    if data[:5] == b"%PDF-":
        if len(data) > max_bytes():
            raise _refuse(f"盖章件「{name}」超过 {max_bytes() // 1024 // 1024} MB，请降低扫描分辨率后再上传。")
        _check_pdf(data, name)
        return Checked(data, "application/pdf", "pdf")
    if data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n":
        try:
            photo = uploads.check_photo(data, filename)
        except UserError as e:
            raise _refuse(e.message) from None
        return Checked(photo.data, photo.mime, photo.ext, photo)
    raise _refuse(f"「{name}」不是 PDF、JPG 或 PNG 文件；盖章件请上传扫描的 PDF 或清晰的照片（按文件内容识别）。")


def store(checked: Checked, filename: str) -> Attachment:
    """Write the files; the caller adds the row in its transaction (and discards on failure)."""
    if checked.photo is not None:
        att = uploads.store_photo(checked.photo, filename)
        att.kind = "stamped"
        return att
    stored = storage.save_bytes(checked.data, checked.ext)
    return Attachment(kind="stamped", stored_name=stored, thumb_name=None, original_name=uploads.display_name(filename),
                      mime=checked.mime, size_bytes=len(checked.data))
