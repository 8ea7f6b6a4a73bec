"""The 推荐单位's pages: parse, authorize (access.unit_of / editable_nomination), one operation, render."""

from __future__ import annotations

from flask import render_template

from app.core.authz import nominator_required
from app.portal.blueprint import bp


@bp.get("/")
@nominator_required
def home():
    return render_template("portal/home.html")


@bp.get("/new/<category>")
@nominator_required
def new(category: str):
    return render_template("portal/home.html")
