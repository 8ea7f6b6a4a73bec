"""Photos and videos of a nomination.

Photos: JPEG or PNG judged by their content (Pillow), within byte and pixel limits, then re-encoded so
the stored file is exactly one clean image — no trailing bytes, no EXIF (location, camera), rotated
upright — with a thumbnail. Videos: MP4 or WebM judged by their signature, streamed to disk within the
size limit. Everything lands in instance/uploads under a random name (app.core.storage).
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import warnings
from dataclasses import dataclass

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import func, select

from app.audit import operations as audit
from app.core import storage
from app.core.database import locked
from app.core.errors import Conflict, UserError
from app.extensions import db
from app.intake.nominations import ensure_editable, operation, recheck
from app.models import Attachment, Nomination

PHOTO_FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png")}
# The form asks for 3–5 photos: the admin page stops at 5. An import keeps up to PHOTO_IMPORT_MAX of what
# a nominator sent (形式审查 then asks the admin to pick five) rather than silently dropping some.
PHOTO_FORM_MAX = 5
PHOTO_IMPORT_MAX = 10
NAME_MAX = 200
_CHUNK = 1024 * 1024


@dataclass
class CleanPhoto:
    data: bytes
    mime: str
    ext: str
    width: int
    height: int
    image: Image.Image


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


def _display(name: str) -> str:
    return os.path.basename((name or "").replace("\\", "/"))[:NAME_MAX] or "未命名文件"


display_name = _display  # the name an uploaded file is shown under (other upload kinds use it too)


def check_photo(data: bytes, filename: str = "") -> CleanPhoto:
    """Validate one photo and return it re-encoded; raises UserError (nothing stored) otherwise."""
    name = _display(filename)
    max_bytes = current_app.config["UPLOAD_MAX_PHOTO_BYTES"]
    max_pixels = current_app.config["UPLOAD_MAX_PHOTO_PIXELS"]
    if not data:
        raise UserError(f"照片「{name}」是空文件。")
    if len(data) > max_bytes:
        raise UserError(f"照片「{name}」超过 {_mb(max_bytes)}，请压缩后再上传。")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format
            width, height = probe.size
            if fmt not in PHOTO_FORMATS:
                raise UserError(f"「{name}」不是 JPEG 或 PNG 图片，请上传 JPG/PNG 格式的照片。")
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise UserError(f"照片「{name}」尺寸过大（{width}×{height} 像素），"
                                f"上限为 {max_pixels / 1_000_000:.0f} 百万像素。")
            probe.verify()
            # PIL decodes a JPEG cut short without complaint (the missing rows come out grey): the
            # image must end (EOI) after its last scan (SOS) began. Data after the EOI is allowed.
            if fmt == "JPEG" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
                raise OSError("truncated JPEG")
            image = Image.open(io.BytesIO(data))
            image.load()
    except UserError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"「{name}」不是有效的 JPEG 或 PNG 图片。") from None
    except (OSError, SyntaxError, ValueError):
        raise UserError(f"照片「{name}」已损坏或不完整，无法读取。") from None
    mime, ext = PHOTO_FORMATS[fmt]
    icc = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image)
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=90, icc_profile=icc)
    else:
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA")
        image.save(out, "PNG", icc_profile=icc)
    return CleanPhoto(out.getvalue(), mime, ext, image.width, image.height, image)


def video_type(head: bytes) -> tuple[str, str]:
    """(mime, ext) from the first bytes of a video; UserError for anything but MP4 and WebM."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        if head[8:12] == b"qt  ":
            raise UserError("这是 QuickTime（.mov）视频，请转换为 MP4 后再上传。")
        return "video/mp4", "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        if b"webm" not in head[:4096]:
            raise UserError("这是 MKV 视频，请转换为 MP4 或 WebM 后再上传。")
        return "video/webm", "webm"
    raise UserError("视频只接受 MP4 或 WebM 格式（按文件内容识别，不看扩展名）。")


def _check_mp4_boxes(path: str, filename: str) -> None:
    """An MP4 is a run of boxes, each giving its own length: one that runs past the end of the file (an
    upload or a copy cut short) means the video cannot be played to the end."""
    total = os.path.getsize(path)
    pos = 0
    with open(path, "rb") as fh:
        while pos < total:
            fh.seek(pos)
            head = fh.read(16)
            size = int.from_bytes(head[:4], "big") if len(head) >= 8 else -1
            if size == 1:
                size = int.from_bytes(head[8:16], "big") if len(head) >= 16 else -1
            elif size == 0:
                size = total - pos  # the last box runs to the end of the file
            if size < 8 or pos + size > total:
                raise UserError(f"视频「{_display(filename)}」不完整（文件在第 {pos:,} 字节处中断），"
                                f"请重新导出或重新上传完整的视频。")
            pos += size


def save_video_stream(stream, filename: str = "") -> tuple[str, int, str]:
    """Check the signature, then copy the stream to a random name within the size limit.
    Returns (stored_name, size, mime); nothing is left behind on refusal."""
    max_bytes = current_app.config["UPLOAD_MAX_VIDEO_BYTES"]
    head = stream.read(4096)
    if not head:
        raise UserError(f"视频「{_display(filename)}」是空文件。")
    mime, ext = video_type(head)
    name = f"{secrets.token_hex(16)}.{ext}"
    path = storage.path_of(name)
    tmp = path + ".part"
    size = 0
    try:
        with open(tmp, "wb") as fh:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise UserError(f"视频「{_display(filename)}」超过 {_mb(max_bytes)}，请压缩后再上传。")
                fh.write(chunk)
                chunk = stream.read(_CHUNK)
        if mime == "video/mp4":
            _check_mp4_boxes(tmp, filename)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return name, size, mime


def store_photo(photo: CleanPhoto, original_name: str) -> Attachment:
    """Write the files of a checked photo; the caller adds the Attachment in its transaction (and
    calls discard() on failure)."""
    stored = storage.save_bytes(photo.data, photo.ext)
    try:
        thumb = storage.save_thumbnail(photo.image)
    except Exception:
        storage.remove(stored)
        raise
    return Attachment(kind="photo", stored_name=stored, thumb_name=thumb, original_name=_display(original_name),
                      mime=photo.mime, size_bytes=len(photo.data), width=photo.width, height=photo.height)


def discard(attachments) -> None:
    for a in attachments:
        storage.remove(a.stored_name)
        storage.remove(a.thumb_name)


def _counts(nomination_id: int) -> dict[str, int]:
    rows = db.session.execute(select(Attachment.kind, func.count()).where(Attachment.nomination_id == nomination_id)
                              .group_by(Attachment.kind))
    return {k: int(n) for k, n in rows}


def _next_position(nomination_id: int) -> int:
    highest = db.session.scalar(select(func.coalesce(func.max(Attachment.position), -1))
                                .where(Attachment.nomination_id == nomination_id))
    return int(highest) + 1


def _locked_nomination(nomination_id: int) -> Nomination:
    nom = locked(Nomination, nomination_id)
    if nom is None:
        raise UserError("找不到该推荐对象。", status=404)
    ensure_editable(nom.round_id)
    return nom


def _public(a: Attachment) -> dict:
    return {"kind": a.kind, "original_name": a.original_name, "mime": a.mime, "size_bytes": a.size_bytes,
            "width": a.width, "height": a.height, "stored_name": a.stored_name}


def attach(nomination_id: int, attachments: list[Attachment], *, actor=None, photo_limit: int = PHOTO_FORM_MAX,
           action: str = "attachment.add") -> list[Attachment]:
    """Link already stored files to a nomination and re-check the round, all or none; the files are
    removed if refused. (Inside a larger operation that later fails, that operation discards them.)"""
    try:
        with operation():
            nom = _locked_nomination(nomination_id)
            counts = _counts(nom.id)
            photos = sum(1 for a in attachments if a.kind == "photo")
            videos = sum(1 for a in attachments if a.kind == "video")
            if photos and counts.get("photo", 0) + photos > photo_limit:
                raise Conflict(f"每个推荐对象最多 {photo_limit} 张照片，已有 {counts.get('photo', 0)} 张；"
                               f"请先删除不需要的照片。")
            if videos and (counts.get("video", 0) + videos > 1):
                raise Conflict("每个推荐对象只能有一个视频，请先删除原有视频。")
            position = _next_position(nom.id)
            for a in attachments:
                a.nomination_id = nom.id
                a.position = position
                position += 1
                db.session.add(a)
            db.session.flush()
            for a in attachments:
                audit.record(action, "attachment", a.id, after={"nomination_id": nom.id, **_public(a)},
                             round_id=nom.round_id, actor=actor)
            recheck(nom.round_id)
    except BaseException:
        discard(attachments)
        raise
    return attachments


def prepare_photos(files: list[tuple[str, bytes]]) -> list[Attachment]:
    """Check every file, then store them all (unattached): nothing is stored unless all pass. The caller
    attach()es them, or discard()s them when its own checks refuse."""
    files = [(name, data) for name, data in files if name or data]
    if not files:
        raise UserError("请选择要上传的照片。", {"photos": "请选择照片"})
    cleaned = []
    for name, data in files:
        try:
            cleaned.append((name, check_photo(data, name)))
        except UserError as e:
            raise UserError(e.message, {"photos": e.message}) from None
    stored = []
    try:
        for name, photo in cleaned:
            stored.append(store_photo(photo, name))
    except BaseException:
        discard(stored)
        raise
    return stored


def add_photos(nomination_id: int, files: list[tuple[str, bytes]], *, actor=None) -> list[Attachment]:
    """Upload photos from the admin page: every file is checked before any is stored."""
    return attach(nomination_id, prepare_photos(files), actor=actor)


def move_photo(nomination_id: int, attachment_id: int, step: int, *, actor=None) -> None:
    """Move one photo a place earlier (step −1) or later (+1) in the nomination's order; the forms and
    PDFs show photos in this order. Positions are renumbered 0..n−1 as they go."""
    with operation():
        nom = _locked_nomination(nomination_id)
        photos = list(db.session.scalars(select(Attachment).where(Attachment.nomination_id == nom.id,
                                                                  Attachment.kind == "photo")
                                         .order_by(Attachment.position, Attachment.id)))
        index = next((i for i, a in enumerate(photos) if a.id == attachment_id), None)
        if index is None:
            raise UserError("找不到该照片。", status=404)
        target = index + (1 if step > 0 else -1)
        if not 0 <= target < len(photos):
            raise Conflict("这张照片已在最前或最后，不能再移动。")
        before = [a.id for a in photos]
        photos[index], photos[target] = photos[target], photos[index]
        for pos, a in enumerate(photos):
            a.position = pos
        # Videos and scans come after the photos.
        for pos, a in enumerate((a for a in nom.attachments if a.kind != "photo"), start=len(photos)):
            a.position = pos
        audit.record("attachment.reorder", "nomination", nom.id, before={"photos": before},
                     after={"photos": [a.id for a in photos]}, round_id=nom.round_id, actor=actor)


def add_video(nomination_id: int, stream, filename: str, *, actor=None) -> Attachment:
    nom = db.session.get(Nomination, nomination_id)
    if nom is None:
        raise UserError("找不到该推荐对象。", status=404)
    if nom.video is not None:
        raise Conflict("每个推荐对象只能有一个视频，请先删除原有视频。")
    try:
        stored, size, mime = save_video_stream(stream, filename)
    except UserError as e:
        raise UserError(e.message, {"video": e.message}) from None
    att = Attachment(kind="video", stored_name=stored, original_name=_display(filename), mime=mime,
                     size_bytes=size)
    return attach(nomination_id, [att], actor=actor)[0]


def delete_attachment(attachment_id: int, *, actor=None, nomination_id: int | None = None, guard=None) -> None:
    """Remove one photo or video (row first, then its files once the row is gone). `guard(nomination)`,
    if given, runs inside the transaction once the nomination is locked (the portal's editability)."""
    with operation():
        a = locked(Attachment, attachment_id)
        if a is None or (nomination_id is not None and a.nomination_id != nomination_id):
            raise UserError("找不到该附件。", status=404)
        nom = _locked_nomination(a.nomination_id)
        if guard is not None:
            guard(nom)
        files = (a.stored_name, a.thumb_name)
        audit.record("attachment.delete", "attachment", a.id, before={"nomination_id": nom.id, **_public(a)},
                     round_id=nom.round_id, actor=actor)
        db.session.delete(a)
        recheck(nom.round_id)
    # Only once the row is gone for good: a rolled-back delete must still find its files.
    for name in files:
        storage.remove(name)


# --- a video already on disk (a finished resumable upload) ---------------------------------------------


def check_video_file(path: str, filename: str = "") -> tuple[str, str, int]:
    """(mime, ext, size) of a video file on disk, judged by the same rules as a streamed upload."""
    max_bytes = current_app.config["UPLOAD_MAX_VIDEO_BYTES"]
    size = os.path.getsize(path)
    if size == 0:
        raise UserError(f"视频「{_display(filename)}」是空文件。")
    if size > max_bytes:
        raise UserError(f"视频「{_display(filename)}」超过 {_mb(max_bytes)}，请压缩后再上传。")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    mime, ext = video_type(head)
    if mime == "video/mp4":
        _check_mp4_boxes(path, filename)
    return mime, ext, size


def _link_or_copy(source: str, target: str) -> None:
    # A hard link keeps the source for the caller until the write has committed; copy across devices.
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def add_video_file(nomination_id: int, path: str, filename: str, *, actor=None, guard=None) -> Attachment:
    """Check the video at `path` and make it the nomination's video, replacing the one it had, in one
    operation (the old video's removal and the new one's addition are audited together). The file at
    `path` is left for the caller to remove; on refusal the nomination keeps its old video.
    `guard(nomination)`, if given, runs inside the transaction once the nomination is locked."""
    try:
        mime, ext, size = check_video_file(path, filename)
    except UserError as e:
        raise UserError(e.message, {"video": e.message}) from None
    stored = f"{secrets.token_hex(16)}.{ext}"
    _link_or_copy(path, storage.path_of(stored))
    att = Attachment(kind="video", stored_name=stored, original_name=_display(filename), mime=mime,
                     size_bytes=size)
    replaced: list[str] = []
    try:
        with operation():
            nom = _locked_nomination(nomination_id)
            if guard is not None:
                guard(nom)
            for old in db.session.scalars(select(Attachment).where(Attachment.nomination_id == nom.id,
                                                                   Attachment.kind == "video")):
                audit.record("attachment.delete", "attachment", old.id,
                             before={"nomination_id": nom.id, **_public(old)}, round_id=nom.round_id, actor=actor)
                replaced.append(old.stored_name)
                db.session.delete(old)
            db.session.flush()
            attach(nom.id, [att], actor=actor)
    except BaseException:
        storage.remove(stored)
        raise
    # Only once the new row has committed: a rolled-back replacement must still find the old video.
    for name in replaced:
        storage.remove(name)
    return att
