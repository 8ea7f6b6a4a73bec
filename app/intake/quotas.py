"""A nominator's quota (推荐名额) in a category: its own override, else the round's default for its kind.

Its own module so 形式审查 (which counts against quotas) and nominations (which re-runs 形式审查 after
each write) need not import each other; `nominations.quota_for` is the name other areas call."""

from __future__ import annotations

from app.models import Nominator, Round


def quota_for(rnd: Round, nominator: Nominator, category: str) -> int:
    override = nominator.quota_unit if category == "unit" else nominator.quota_activity
    return override if override is not None else rnd.quota(nominator.kind, category)
