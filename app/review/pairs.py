"""A reviewer × nomination pair as the admin's assignment page edits it: both looked up, and the round
locked and still open for hand edits. Shared by assignments (assign/unassign) and recusals (an admin's
回避 on a reviewer's behalf), which must agree on when a pair may still change."""

from __future__ import annotations

from app.core.errors import UserError
from app.extensions import db
from app.models import Nomination, Round, User
from app.rounds import phases as rounds

EDITABLE_PHASES = ("setup", "collecting", "reviewing")


def editable_round(round_id: int) -> Round:
    rnd = rounds.get(round_id, lock=True)
    if rnd.phase not in EDITABLE_PHASES:
        raise UserError(f"评选批次已进入「{rnd.phase_label}」阶段，评审分配不能再调整。", status=409)
    return rnd


def for_edit(reviewer_id: int, nomination_id: int) -> tuple[User, Nomination, Round]:
    nom = db.session.get(Nomination, nomination_id)
    if nom is None:
        raise UserError("找不到该推荐对象。", status=404)
    reviewer = db.session.get(User, reviewer_id)
    if reviewer is None or reviewer.role != "reviewer":
        raise UserError("找不到该评审专家。", status=404)
    return reviewer, nom, editable_round(nom.round_id)


def audit_view(reviewer: User, nom: Nomination) -> dict:
    return {"reviewer": reviewer.username, "reviewer_id": reviewer.id, "nomination_id": nom.id,
            "title": nom.title}
