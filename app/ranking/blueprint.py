from flask import Blueprint

bp = Blueprint("ranking", __name__, url_prefix="/rankings")
