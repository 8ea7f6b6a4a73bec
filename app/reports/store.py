"""Documents rendered once: a finished job's file is kept under the key of what it was made
from, and an identical later request is answered from here instead of being rendered again.

The key is the job key (kind, format, round, category, the round's data version — RankingCounter, bumped
by every score, decision and phase change — and the phase) plus the round row's own version (its
settings, seal and approval date) and its 表扬通报 settings' version. So a document of a round in 定稿 is rendered once and then served
from storage for as long as the round stays final; reopening it is a phase change, which bumps the data
version, so the next request renders afresh and the superseded file is deleted. A document of a round in
progress is reused exactly while nothing it shows has changed.

Files live in REPORTS_FOLDER/store, shared by every web process and consumer like the job records.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading

from sqlalchemy import select

_SLOT_SEP = "|"


def _folder() -> str:
    # The job records' folder (jobs.folder, which imports this module), then store/.
    from flask import current_app

    root = current_app.config.get("REPORTS_FOLDER") or os.path.join(
        os.path.dirname(os.path.abspath(current_app.config["UPLOAD_FOLDER"])), "reports")
    path = os.path.join(root, "store")
    os.makedirs(path, exist_ok=True)
    return path


def round_version(round_id: int) -> str:
    """The round row's version and its 表扬通报 settings' (文号, 主送, body: a row of their own, which
    neither the round's version nor the data version follows)."""
    from app.extensions import db
    from app.models import NoticeSettings, Round

    row = db.session.execute(
        select(Round.version, NoticeSettings.version).outerjoin(NoticeSettings, NoticeSettings.round_id == Round.id)
        .where(Round.id == round_id)).first()
    return f"{row[0]}n{row[1] or 0}" if row else "0"


def store_key(job_key: str, round_id: int) -> str:
    return f"{job_key}|r{round_version(round_id)}"


def _name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _slot(key: str) -> str:
    # kind|fmt|round|category: one document, whatever its version.
    return _SLOT_SEP.join(key.split(_SLOT_SEP)[:4])


def find(key: str) -> dict | None:
    """The stored document's metadata (path, filename, mimetype, size), or None."""
    base = os.path.join(_folder(), _name(key))
    try:
        with open(base + ".json", encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    if meta.get("key") != key or not os.path.exists(base + ".out"):
        return None
    return {**meta, "path": base + ".out"}


def keep(key: str, output: str, *, filename: str, mimetype: str, size: int) -> None:
    """Keep a finished job's output (a hard link: no copy) and drop the superseded versions of it."""
    folder = _folder()
    base = os.path.join(folder, _name(key))
    tmp = f"{base}.{os.getpid()}.{threading.get_ident()}"
    try:
        os.link(output, tmp + ".out")
    except OSError:
        import shutil

        shutil.copyfile(output, tmp + ".out")
    os.replace(tmp + ".out", base + ".out")
    with open(tmp + ".json", "w", encoding="utf-8") as fh:
        json.dump({"key": key, "slot": _slot(key), "filename": filename, "mimetype": mimetype, "size": size},
                  fh, ensure_ascii=False)
    os.replace(tmp + ".json", base + ".json")
    _drop_superseded(folder, key)


def _drop_superseded(folder: str, key: str) -> None:
    slot = _slot(key)
    for name in os.listdir(folder):
        if not name.endswith(".json") or name.startswith(_name(key)):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as fh:
                meta = json.load(fh)
        except (OSError, ValueError):
            continue
        if meta.get("slot") == slot:
            for ext in (".json", ".out"):
                try:
                    os.remove(path[:-5] + ext)
                except OSError:
                    pass


def link_to(meta: dict, output: str) -> None:
    """Give a job the stored file as its output (a hard link, else a copy)."""
    try:
        os.link(meta["path"], output)
    except FileExistsError:
        pass
    except OSError:
        import shutil

        shutil.copyfile(meta["path"], output)
