"""Which unit a nominator speaks for, and which of its nominations it may still change. Every portal
route (and the tus upload server) goes through these: another unit's nomination is a 404, so its
existence is never revealed."""

from __future__ import annotations

from flask import abort

from app.core.database import locked
from app.core.errors import Conflict, UserError
from app.extensions import db
from app.models import PHASE_LABELS, Nomination, Nominator, Round
from app.portal.deadlines import PORTAL_PHASES, deadline_for, deadline_message

EDITABLE_STATUSES = ("draft", "returned")
NOT_EDITABLE = {
    "submitted": "该推荐材料已提交，正在等待省科协受理，不能修改。",
    "active": "该推荐材料已受理，不能再修改。",
    "withdrawn": "该推荐材料已撤回，不能再修改。",
}


def unit_of(user) -> Nominator:
    """The 推荐单位 the signed-in user speaks for; 403 for any other role or an unbound account."""
    if not getattr(user, "is_authenticated", False) or user.role != "nominator" or user.affiliation_id is None:
        abort(403)
    unit = db.session.get(Nominator, user.affiliation_id)
    if unit is None:
        abort(403)
    return unit


def own_nomination(user, nomination_id: int, *, lock: bool = False) -> Nomination:
    """One of the user's unit's nominations (any status but draft of another unit: 404); `lock` takes
    its row lock, inside a write transaction."""
    unit = unit_of(user)
    nom = locked(Nomination, nomination_id) if lock else db.session.get(Nomination, nomination_id)
    if nom is None or nom.nominator_id != unit.id:
        raise UserError("找不到该推荐材料。", status=404)
    return nom


def check_open(rnd: Round, nom: Nomination) -> None:
    """Refuse (409) when the round no longer takes portal changes for this nomination. A returned
    nomination may be fixed after the deadline: the admin's return must not make it late."""
    if rnd.phase not in PORTAL_PHASES:
        raise Conflict(f"评选批次处于「{PHASE_LABELS[rnd.phase]}」阶段，推荐材料已不能在线修改或提交。")
    if nom.status == "draft":
        deadline = deadline_for(rnd, nom.nominator_id)
        if deadline.passed():
            raise Conflict(deadline_message(deadline))


def check_editable(rnd: Round, nom: Nomination) -> None:
    """Refuse (409, the reason in Chinese) unless the unit may still change the nomination: 草稿 or
    退回修改, in a round open for it."""
    if nom.status not in EDITABLE_STATUSES:
        raise Conflict(NOT_EDITABLE.get(nom.status, "该推荐材料不能修改。"))
    check_open(rnd, nom)


def editable_nomination(user, nomination_id: int) -> Nomination:
    """The user's unit's nomination when the unit may still change it, else 404 (not its own) or 409."""
    nom = own_nomination(user, nomination_id)
    check_editable(db.session.get(Round, nom.round_id), nom)
    return nom
