"""Uploaded files live under instance/uploads with random names, never under static/."""

from __future__ import annotations

import io
import os
import secrets
import threading

from flask import current_app
from PIL import Image

THUMB_SIZE = (360, 240)


def fsync_dir(path) -> None:
    """Make a rename or a new file in `path` durable: the directory entry is written only once the
    directory itself is synced. A directory that cannot be opened (a platform without it) is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes | str, *, durable: bool = False) -> None:
    """Replace `path` with `data` so that readers in any process see the old file or the new one, never
    half of it (a temporary file of this process and thread, then a rename). `durable`: synced to disk
    before the rename and the directory after it, for state that must survive a power cut."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def upload_dir() -> str:
    path = current_app.config["UPLOAD_FOLDER"]
    os.makedirs(path, exist_ok=True)
    return path


def path_of(stored_name: str) -> str:
    """Absolute path of a stored file; refuses anything that is not one of our plain random names."""
    if not stored_name or os.path.basename(stored_name) != stored_name or stored_name.startswith("."):
        raise ValueError("invalid stored name")
    return os.path.join(upload_dir(), stored_name)


def save_bytes(data: bytes, ext: str) -> str:
    name = f"{secrets.token_hex(16)}.{ext}"
    tmp = path_of(name) + ".part"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path_of(name))
    return name


def save_thumbnail(image: Image.Image) -> str:
    thumb = image.convert("RGB")
    thumb.thumbnail(THUMB_SIZE)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=80, optimize=True)
    return save_bytes(buf.getvalue(), "jpg")


def remove(stored_name: str | None) -> None:
    if stored_name:
        try:
            os.remove(path_of(stored_name))
        except (OSError, ValueError):
            pass
