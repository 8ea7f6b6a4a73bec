from flask import Blueprint

# No url_prefix: the protocol lives under /portal/uploads, the video part under /portal/nominations.
bp = Blueprint("tus", __name__)
