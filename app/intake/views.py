from flask import render_template

from ..web.authz import admin_required
from . import bp


@bp.route("/")
@admin_required
def index():
    return render_template("intake/index.html")
