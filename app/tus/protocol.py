"""The tus 1.0.0 wire format: header names, what this server offers, and the parsing of request headers.
Bad headers are refused with a Chinese message and the status the protocol prescribes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime
from email.utils import format_datetime

from app.core.errors import UserError

VERSION = "1.0.0"
# creation-with-upload and creation-defer-length are not offered: the browser client sends the length
# up front and the body in PATCHes, so one write path (PATCH) holds every rule.
EXTENSIONS = ("creation", "termination", "checksum", "expiration")
OCTET_STREAM = "application/offset+octet-stream"
CHECKSUM_MISMATCH = 460  # the checksum extension's own status code
# Hashes that only detect a damaged chunk (the checksum extension), not a security boundary.
CHECKSUMS = {
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
}
_DIGITS = re.compile(r"[0-9]{1,18}")


def offered_headers(max_size: int) -> dict[str, str]:
    return {"Tus-Version": VERSION, "Tus-Max-Size": str(max_size), "Tus-Extension": ",".join(EXTENSIONS),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)}


def non_negative(value: str | None, header: str) -> int:
    """A header that must hold a plain decimal number (no sign, no '²', no spaces)."""
    if value is None or not _DIGITS.fullmatch(value.strip()):
        raise UserError(f"请求头 {header} 缺失或不是非负整数。", status=400)
    return int(value.strip())


def metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated "key base64(value)" pairs; a key may come without a value."""
    out: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        parts = pair.split(" ")
        if len(parts) > 2 or not parts[0] or parts[0] in out:
            raise UserError("上传信息（Upload-Metadata）格式不正确。", status=400)
        try:
            out[parts[0]] = base64.b64decode(parts[1], validate=True).decode("utf-8") if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError):
            raise UserError("上传信息（Upload-Metadata）格式不正确。", status=400) from None
    return out


def checksum(header: str | None):
    """Upload-Checksum "<algorithm> <base64 digest>" → (new hash object, expected digest), or None."""
    if not header:
        return None
    parts = header.strip().split(" ")
    if len(parts) != 2 or parts[0] not in CHECKSUMS:
        raise UserError(f"不支持的校验算法；可用：{', '.join(CHECKSUMS)}。", status=400)
    try:
        expected = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise UserError("校验值（Upload-Checksum）格式不正确。", status=400) from None
    return CHECKSUMS[parts[0]](), expected


def http_date(moment: datetime) -> str:
    """RFC 9110 date (Upload-Expires)."""
    return format_datetime(moment, usegmt=True)
