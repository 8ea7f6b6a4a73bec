"""Uploaded files live under instance/uploads with random names, never under static/."""

from __future__ import annotations

import io
import os
import secrets

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
