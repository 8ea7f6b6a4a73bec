from flask import render_template

from ..web.authz import reviewer_required
from . import bp


@bp.route("/")
@reviewer_required
def queue():
    return render_template("review/queue.html")
