"""Photos and videos of a nomination, for whoever may open the nomination page.

Served inline (the gallery and <video> use them), with Range support so a video can be scrubbed,
privately cached (the stored names are random and never change) and never sniffed.
"""

from __future__ import annotations

import os

from flask import abort, request, send_file
from flask_login import current_user, login_required

from app.core import storage
from app.extensions import db
from app.models import Attachment, Nomination
from app.portal import access
from app.review.blueprint import bp
from app.review.views import _authorize

# Types a browser may render inline; anything else is offered as a download.
INLINE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif", "video/mp4", "video/webm", "video/ogg"}
CACHE_SECONDS = 3600


@bp.route("/review/files/<int:attachment_id>")
@login_required
def attachment(attachment_id: int):
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None:
        abort(404)
    if current_user.role == "nominator":
        # A 推荐单位 opens the files of its own unit's nominations only; another unit's do not exist for it.
        access.own_nomination(current_user, attachment.nomination_id)
    else:
        _authorize(db.session.get(Nomination, attachment.nomination_id))
    if request.args.get("thumb") == "1":
        if attachment.thumb_name:
            name, mime = attachment.thumb_name, "image/jpeg"
        elif attachment.kind == "photo":
            name, mime = attachment.stored_name, attachment.mime
        else:
            abort(404)
    else:
        name, mime = attachment.stored_name, attachment.mime
    try:
        path = storage.path_of(name)
    except ValueError:
        abort(404)
    if not os.path.isfile(path):
        abort(404)
    inline = mime in INLINE_TYPES
    response = send_file(
        path, mimetype=mime if inline else "application/octet-stream", conditional=True,
        as_attachment=not inline, download_name=attachment.original_name or name, max_age=None,
    )
    response.cache_control.no_cache = None
    response.cache_control.private = True
    response.cache_control.max_age = CACHE_SECONDS
    return response
