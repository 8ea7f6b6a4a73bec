from flask import Blueprint

bp = Blueprint("chair", __name__, url_prefix="/chair")

from . import views  # noqa: E402,F401
