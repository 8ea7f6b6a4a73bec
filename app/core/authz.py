"""Who may do what. Views call these before they call a service; services trust their caller."""

from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required


def role_required(*roles: str):
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


reviewer_required = role_required("reviewer")
staff_required = role_required("chair", "admin")
admin_required = role_required("admin")
nominator_required = role_required("nominator")


def home_endpoint(user) -> str:
    return {
        "reviewer": "review.queue",
        "chair": "ranking.index",
        "admin": "rounds.index",
        "nominator": "portal.home",
    }.get(user.role, "accounts.account")
