"""Unfinished uploads on disk: <id>.part (the bytes so far) and <id>.json (offset, length, owner,
nomination, times) in the tus folder inside the upload folder (app.core.storage).

The .json offset is the truth. A PATCH writes bytes, fsyncs them, and only then replaces the .json
(written to a temporary name, fsynced, renamed): after a crash the .json offset is never ahead of the
bytes on disk; bytes beyond it are cut off by the next PATCH. One PATCH (or termination, or the final
attach) at a time per upload: an exclusive flock on the .part, which holds across threads and gunicorn
workers alike.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from flask import current_app
from werkzeug.exceptions import ClientDisconnected

from app.core import storage
from app.core.errors import UserError
from app.core.time import aware, utcnow
from app.tus.protocol import CHECKSUM_MISMATCH

_ID = re.compile(r"[0-9a-f]{32}")
_CHUNK = 256 * 1024


class Busy(Exception):
    """Another request holds this upload."""


class Gone(Exception):
    """No such upload (never created, finished, terminated or expired)."""


@dataclass
class Upload:
    id: str
    length: int
    offset: int
    owner_id: int
    nomination_id: int
    filename: str
    created: str
    updated: str

    @property
    def complete(self) -> bool:
        return self.offset == self.length

    @property
    def expires_at(self) -> datetime:
        return aware(datetime.fromisoformat(self.updated)) + expiry()


def expiry() -> timedelta:
    return timedelta(hours=float(current_app.config["TUS_EXPIRY_HOURS"]))


def folder() -> str:
    path = os.path.join(storage.upload_dir(), "tus")
    os.makedirs(path, exist_ok=True)
    return path


def valid_id(upload_id: str) -> bool:
    return bool(_ID.fullmatch(upload_id or ""))


def _paths(upload_id: str) -> tuple[str, str]:
    if not valid_id(upload_id):
        raise Gone
    base = os.path.join(folder(), upload_id)
    return base + ".part", base + ".json"


def part_path(upload: Upload) -> str:
    return _paths(upload.id)[0]


def save(upload: Upload) -> None:
    storage.write_atomic(_paths(upload.id)[1], json.dumps(asdict(upload), ensure_ascii=False), durable=True)


def create(length: int, owner_id: int, nomination_id: int, filename: str) -> Upload:
    now = utcnow().isoformat()
    upload = Upload(secrets.token_hex(16), length, 0, owner_id, nomination_id, filename, now, now)
    part, _ = _paths(upload.id)
    with open(part, "xb"):
        pass
    save(upload)
    return upload


def load(upload_id: str) -> Upload | None:
    try:
        _, info = _paths(upload_id)
        with open(info, encoding="utf-8") as fh:
            upload = Upload(**json.load(fh))
    except (Gone, OSError, ValueError, TypeError):
        return None
    if upload.expires_at <= utcnow():
        return None
    return upload


def remove(upload_id: str) -> None:
    for path in _paths(upload_id):
        try:
            os.remove(path)
        except OSError:
            pass


def uploads() -> list[Upload]:
    out = []
    for name in sorted(os.listdir(folder())):
        if name.endswith(".json") and (upload := load(name[:-5])) is not None:
            out.append(upload)
    return out


@contextmanager
def holding(upload_id: str, *, wait: float | None = None):
    """The upload, re-read under its exclusive lock, and its .part opened for writing. Busy when another
    request still holds it after `wait` seconds (a PATCH racing this one, or one whose client vanished
    and whose read has not timed out yet); Gone when it does not exist (any more)."""
    part, _ = _paths(upload_id)
    try:
        fh = open(part, "r+b")
    except OSError:
        raise Gone from None
    if wait is None:
        wait = float(current_app.config["TUS_LOCK_WAIT_SECONDS"])
    try:
        give_up = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    raise Busy from None
                time.sleep(0.02)
        upload = load(upload_id)
        if upload is None:
            raise Gone
        yield upload, fh
    finally:
        fh.close()  # closing the file releases the lock


def append(upload: Upload, fh, stream, *, check=None) -> None:
    """Write the request body at the upload's offset and advance it (saved). `check` is
    (hash object, expected digest) from Upload-Checksum: then the chunk counts whole or not at all.
    Without it, the bytes that arrived before a dropped connection are kept, so the client resumes
    from there; the disconnect is then re-raised."""
    start = upload.offset
    remaining = upload.length - start
    fh.truncate(start)
    fh.seek(start)
    written = 0
    dropped: BaseException | None = None
    while True:
        try:
            data = stream.read(min(_CHUNK, remaining - written + 1))
        except (ClientDisconnected, OSError) as e:  # the client went away mid-body (a write error is not this)
            dropped = e if isinstance(e, ClientDisconnected) else ClientDisconnected()
            break
        if not data:
            break
        if written + len(data) > remaining:
            fh.truncate(start)
            raise UserError("上传的内容超出了创建上传时声明的文件大小。", status=413)
        if check is not None:
            check[0].update(data)
        fh.write(data)
        written += len(data)
    if check is not None and (dropped is not None or check[0].digest() != check[1]):
        fh.truncate(start)
        if dropped is not None:
            raise dropped
        raise UserError("分块校验值不符，该分块未保存，请重试。", status=CHECKSUM_MISMATCH)
    fh.flush()
    os.fsync(fh.fileno())
    upload.offset = start + written
    upload.updated = utcnow().isoformat()
    save(upload)
    if dropped is not None:
        raise dropped


def prune() -> int:
    """Remove uploads idle for longer than the expiry (TUS_EXPIRY_HOURS, 24 by default), and stray files
    of the same age; an upload being written right now is left alone. Returns how many went."""
    removed = 0
    cutoff = time.time() - expiry().total_seconds()
    base = folder()
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name)
        stem, ext = os.path.splitext(name)
        if ext == ".json" and valid_id(stem):
            if load(stem) is not None:
                continue
            try:
                with holding(stem, wait=0):
                    pass
            except Busy:
                continue
            except Gone:
                pass  # expired (or unreadable): load() no longer returns it
            remove(stem)
            removed += 1
        elif ext == ".part" and valid_id(stem) and os.path.exists(os.path.join(base, stem + ".json")):
            continue
        else:
            try:
                if os.path.getmtime(path) < cutoff:
                    os.remove(path)
            except OSError:
                pass  # gone already (with its .json above) or just now
    return removed
