"""The tus 1.0.0 endpoints (/portal/uploads: a unit's staff for their editable nominations, the admin for
the intake pages') and the portal's video part (/portal/nominations/<id>/video) with its no-JavaScript
fallback. Parse headers or the form, authorize (the owner of the upload; the nomination the user may
still change), call one operation, answer.

CSRF: the tus routes are not exempt. flask-wtf checks every POST/PATCH/DELETE, and besides a form field it
accepts the X-CSRFToken header, which tus-js-client sends through its `headers` option; HEAD and OPTIONS
change nothing. A cross-site page can neither read the token nor set a custom header on a cross-origin
request without a CORS preflight, which this server never grants.
"""

from __future__ import annotations

from functools import wraps

from flask import Response, flash, request, url_for
from flask_login import current_user

from app.core.authz import nominator_required, role_required
from app.core.errors import UserError
from app.core.htmx import render, see_other
from app.intake import forms as intake_forms
from app.portal import access
from app.tus import operations, protocol, store
from app.tus.blueprint import bp

# The intake pages' admin uploads videos the same resumable way (templates/intake/detail.html).
uploader_required = role_required("nominator", "admin")
_PROTOCOL_ENDPOINTS = {"tus.discover", "tus.create", "tus.head", "tus.patch", "tus.terminate"}


def _user():
    return current_user._get_current_object()


@bp.record_once
def _integrity(state) -> None:
    import os

    path = os.path.join(state.app.static_folder, "vendor", "tus-js-client", "INTEGRITY")
    try:
        with open(path, encoding="ascii") as fh:
            state.app.jinja_env.globals["TUS_INTEGRITY"] = fh.read().strip()
    except OSError:
        state.app.jinja_env.globals["TUS_INTEGRITY"] = ""


@bp.app_template_global()
def video_state(nomination) -> dict:
    """The video part's settings (templates/portal/_video.html). Whether the unit may change the video is
    the including page's `editable`: the nomination page has worked it out already."""
    limit = operations.max_bytes()
    return {"max_bytes": limit, "max_mb": limit // 1048576,
            "endpoint": url_for("tus.create"), "part_url": url_for("tus.video", nomination_id=nomination.id)}


@bp.after_request
def _tus_resumable(response: Response) -> Response:
    # Every answer of the protocol endpoints, refusals by the sign-in or CSRF checks included.
    if request.endpoint in _PROTOCOL_ENDPOINTS:
        response.headers["Tus-Resumable"] = protocol.VERSION
        response.headers["Cache-Control"] = "no-store"
    return response


def _plain(status: int, message: str = "", headers: dict | None = None) -> Response:
    """tus-js-client shows the body of a refusal: a line of Chinese text, not an HTML page."""
    return Response(message, status, headers=headers or {}, mimetype="text/plain" if message else None)


def tus_endpoint(view):
    """Tus-Resumable must name 1.0.0 (412 otherwise); refusals answer in plain text."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if request.headers.get("Tus-Resumable") != protocol.VERSION:
            return _plain(412, "不支持的 tus 协议版本，本服务器使用 1.0.0。", {"Tus-Version": protocol.VERSION})
        try:
            return view(*args, **kwargs)
        except UserError as e:
            return _plain(e.status, e.message)

    return wrapped


def _expires(upload: store.Upload) -> dict:
    return {"Upload-Expires": protocol.http_date(upload.expires_at)}


# --- the protocol -------------------------------------------------------------------------------------


@bp.route("/portal/uploads", methods=["OPTIONS"])
@bp.route("/portal/uploads/<upload_id>", methods=["OPTIONS"])
def discover(upload_id: str | None = None):
    """What the server offers (versions, extensions, the size limit); public like any OPTIONS."""
    return _plain(204, headers=protocol.offered_headers(operations.max_bytes()))


@bp.post("/portal/uploads")
@uploader_required
@tus_endpoint
def create():
    if "Upload-Defer-Length" in request.headers:
        raise UserError("请在创建上传时给出文件大小（不支持 Upload-Defer-Length）。", status=400)
    length = protocol.non_negative(request.headers.get("Upload-Length"), "Upload-Length")
    meta = protocol.metadata(request.headers.get("Upload-Metadata"))
    nomination_id = protocol.non_negative(meta.get("nomination_id"), "Upload-Metadata nomination_id")
    upload = operations.start(_user(), nomination_id, length, meta.get("filename", ""))
    return _plain(201, headers={"Location": url_for("tus.head", upload_id=upload.id), **_expires(upload)})


@bp.route("/portal/uploads/<upload_id>", methods=["HEAD"])
@uploader_required
@tus_endpoint
def head(upload_id: str):
    upload = operations.owned(_user(), upload_id)
    return _plain(200, headers={"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length),
                                **_expires(upload)})


@bp.route("/portal/uploads/<upload_id>", methods=["PATCH"])
@uploader_required
@tus_endpoint
def patch(upload_id: str):
    if request.mimetype != protocol.OCTET_STREAM:
        raise UserError(f"请求体类型必须是 {protocol.OCTET_STREAM}。", status=415)
    offset = protocol.non_negative(request.headers.get("Upload-Offset"), "Upload-Offset")
    check = protocol.checksum(request.headers.get("Upload-Checksum"))
    upload = operations.append(_user(), upload_id, offset, request.stream, check)
    headers = {"Upload-Offset": str(upload.offset)}
    if not upload.complete:
        headers.update(_expires(upload))
    return _plain(204, headers=headers)


@bp.route("/portal/uploads/<upload_id>", methods=["DELETE"])
@uploader_required
@tus_endpoint
def terminate(upload_id: str):
    operations.terminate(_user(), upload_id)
    return _plain(204)


# --- the portal's video part --------------------------------------------------------------------------


def _part(nomination, *, status: int = 200, error: str = ""):
    try:
        access.editable_nomination(_user(), nomination.id)
        editable = True
    except UserError:  # not editable any more (409)
        editable = False
    return render("portal/video.html", "video", status=status, nomination=nomination, editable=editable,
                  video_error=error)


@bp.get("/portal/nominations/<int:nomination_id>/video")
@nominator_required
def video(nomination_id: int):
    """The video part alone (htmx reloads it after an upload) or as a page of its own."""
    return _part(access.own_nomination(_user(), nomination_id))


@bp.post("/portal/nominations/<int:nomination_id>/video")
@nominator_required
def upload_plain(nomination_id: int):
    """Without JavaScript: the whole file in one multipart POST, then back to the form."""
    nom = access.own_nomination(_user(), nomination_id)
    form = intake_forms.VideoForm()
    try:
        if not form.validate_on_submit():
            errors = form.first_errors()
            csrf = "csrf_token" in errors
            raise UserError(form.error_message() if csrf else next(iter(errors.values()), "请选择视频文件"),
                            status=400 if csrf else 422)
        f = form.video.data
        operations.upload_plain(_user(), nom.id, f.stream, f.filename or "")
    except UserError as e:
        return _part(access.own_nomination(_user(), nomination_id), status=e.status, error=e.message)
    flash("已上传视频。", "success")
    return see_other(url_for("portal.nomination", nomination_id=nom.id) + "#video")
