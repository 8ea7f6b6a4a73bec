from flask import Blueprint

bp = Blueprint("rankings", __name__, url_prefix="/rankings")

from . import views  # noqa: E402,F401
