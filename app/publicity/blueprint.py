from flask import Blueprint

# No url_prefix: the public pages live under /gongshi, the staff's under /chair and /admin.
bp = Blueprint("publicity", __name__)
