from flask import Blueprint

bp = Blueprint("deliberation", __name__, url_prefix="/chair")
