"""The only module that knows about flask-htmx, so the library can be swapped.

Pages render whole for a normal request and a history restore, and one named block for an htmx
request (jinja2-fragments). Every such response varies on HX-Request so caches keep them apart.
"""

from __future__ import annotations

from flask import Flask, Response, make_response, redirect, render_template
from flask_htmx import HTMX
from jinja2_fragments.flask import render_block

htmx = HTMX()


def init_app(app: Flask) -> None:
    htmx.init_app(app)

    @app.after_request
    def _vary(response: Response) -> Response:
        response.vary.add("HX-Request")
        return response


def is_partial_request() -> bool:
    """An htmx request that wants a fragment (a history restore wants the full page)."""
    return bool(htmx) and not htmx.history_restore_request


def render(template: str, block: str, status: int = 200, **context) -> Response:
    if is_partial_request():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    return make_response(body, status)


def trigger(response: Response, event: str) -> Response:
    existing = response.headers.get("HX-Trigger")
    response.headers["HX-Trigger"] = f"{existing}, {event}" if existing else event
    return response


def see_other(url: str) -> Response:
    """After a successful write: a 303 to `url`, or for htmx an HX-Redirect so the whole page loads
    there (a form that swapped itself must not be left showing its old state)."""
    if is_partial_request():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, 303)
