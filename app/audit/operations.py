"""The audit log: who did what to which object, before → after, in the same transaction as the change.

Inserted with one prebuilt Core statement: the log sits on the hottest write path (every score
autosave), and skipping the ORM unit of work there measurably shortens the save.
"""

from __future__ import annotations

from flask_login import current_user

from app.extensions import db
from app.models import AuditEvent
from app.models._base import utcnow

_INSERT = AuditEvent.__table__.insert()


def _actor_id(actor) -> int | None:
    if actor is not None:
        return actor.id
    try:
        return current_user.id if current_user and current_user.is_authenticated else None
    except (AttributeError, RuntimeError):  # no request context (CLI)
        return None


def record(action: str, obj_type: str, obj_id: int | None, *, before=None, after=None, reason: str = "",
           round_id: int | None = None, actor=None) -> None:
    db.session.execute(_INSERT, {
        "at": utcnow(), "action": action, "object_type": obj_type, "object_id": obj_id, "round_id": round_id,
        "before": before, "after": after, "reason": reason or "", "actor_id": _actor_id(actor),
    })
