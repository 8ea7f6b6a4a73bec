from flask import render_template

from ..web.authz import staff_required
from . import bp


@bp.route("/")
@staff_required
def index():
    return render_template("reports/index.html")
