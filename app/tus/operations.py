"""What a resumable upload changes: starting one (for a nomination the unit may still change, or for the
admin one the intake pages may still change), each chunk,
the last byte making it the nomination's video, termination, and the no-JavaScript upload. The database
write goes through app.intake.uploads.add_video_file (the one home of the video rules), one operation that
checks the portal's editability under the nomination's lock. (Deleting the video is the portal's
delete-attachment route.)"""

from __future__ import annotations

import os
import secrets

from flask import current_app

from app.core.errors import Conflict, UserError
from app.intake import nominations, uploads
from app.models import Attachment
from app.portal import access
from app.tus import store

FILENAME_MAX = uploads.NAME_MAX


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


def max_bytes() -> int:
    return int(current_app.config["UPLOAD_MAX_VIDEO_BYTES"])


def editable(user, nomination_id: int):
    """The nomination this user may give a video: the admin's (intake) or the unit's own (portal)."""
    if user.role == "admin":
        return nominations.admin_editable(nomination_id)
    return access.editable_nomination(user, nomination_id)


def _guard(user):
    def check(nom) -> None:
        editable(user, nom.id)

    return check


def start(user, nomination_id: int, length: int, filename: str) -> store.Upload:
    """A new upload of `length` bytes for the unit's nomination. The same user's unfinished uploads for
    that nomination go (choosing a new file means not resuming the old one), and so does anything idle
    past the expiry — so unfinished bytes on disk stay bounded by one video per user and editable
    nomination."""
    nom = editable(user, nomination_id)
    if length == 0:
        raise UserError("视频是空文件。", status=400)
    if length > max_bytes():
        raise UserError(f"视频超过 {_mb(max_bytes())}，请压缩后再上传。", status=413)
    for old in store.uploads():
        if old.owner_id == user.id and old.nomination_id == nom.id:
            try:
                terminate(user, old.id)
            except Conflict:
                pass  # still being written (another tab): the expiry removes it later
    store.prune()
    return store.create(length, user.id, nom.id, (filename or "")[:FILENAME_MAX])


def owned(user, upload_id: str) -> store.Upload:
    """The user's own upload; anyone else's, a finished or an expired one: 404."""
    upload = store.load(upload_id) if store.valid_id(upload_id) else None
    if upload is None or upload.owner_id != user.id:
        raise UserError("找不到该上传（可能已完成、已取消或已过期）。", status=404)
    return upload


def finish(user, upload: store.Upload) -> Attachment:
    """The last byte arrived (the caller holds the upload's lock): check the file as a video and make it
    the nomination's video in one operation, or refuse it — the nomination keeps its old video. Either
    way the upload is gone afterwards."""
    try:
        return uploads.add_video_file(upload.nomination_id, store.part_path(upload), upload.filename,
                                      actor=user, guard=_guard(user))
    finally:
        store.remove(upload.id)


def append(user, upload_id: str, offset: int, stream, check=None) -> store.Upload:
    """One PATCH: the body lands at `offset` if that is where the upload stands (else 409: another
    request got there first, or the client's idea of the offset is stale); the last byte finishes it."""
    owned(user, upload_id)
    try:
        with store.holding(upload_id) as (upload, fh):
            if upload.owner_id != user.id:
                raise UserError("找不到该上传。", status=404)
            if offset != upload.offset:
                raise Conflict(f"上传位置不一致：服务器已收到 {upload.offset:,} 字节，请求从第 {offset:,} 字节开始。"
                               "请刷新后继续上传。")
            store.append(upload, fh, stream, check=check)
            if upload.complete:
                finish(user, upload)
            return upload
    except store.Busy:
        raise Conflict("该上传正在由另一个请求写入，请稍后继续。") from None
    except store.Gone:
        raise UserError("找不到该上传（可能已完成、已取消或已过期）。", status=404) from None


def terminate(user, upload_id: str) -> None:
    """Termination: the user's unfinished upload and its bytes go (409 while a PATCH is writing it)."""
    owned(user, upload_id)
    try:
        with store.holding(upload_id) as (upload, _fh):
            if upload.owner_id == user.id:
                store.remove(upload.id)
    except store.Busy:
        raise Conflict("该上传正在写入，请稍后再取消。") from None
    except store.Gone:
        pass


def upload_plain(user, nomination_id: int, stream, filename: str) -> Attachment:
    """The no-JavaScript form: the whole file in one multipart POST, spooled to disk within the limit,
    then the same check and replacement as a finished resumable upload."""
    editable(user, nomination_id)
    path = os.path.join(store.folder(), f"plain-{secrets.token_hex(16)}.part")
    limit = max_bytes()
    try:
        size = 0
        with open(path, "wb") as fh:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    message = f"视频超过 {_mb(limit)}，请压缩后再上传。"
                    raise UserError(message, {"video": message}, status=413)
                fh.write(chunk)
        return uploads.add_video_file(nomination_id, path, filename, actor=user, guard=_guard(user))
    finally:
        try:
            os.remove(path)
        except OSError:
            pass

