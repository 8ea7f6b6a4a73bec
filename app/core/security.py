"""Security headers on every response. The CSP has no 'unsafe-inline': templates carry no inline
scripts, styles or on* handlers, and htmx's own indicator styles are switched off in its config."""

from flask import Flask, request
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def init_app(app: Flask) -> None:
    hops = int(app.config.get("PROXY_COUNT") or 0)
    if hops:
        # Behind nginx every request comes from 127.0.0.1: without this the login throttle would count
        # the whole province as one client, and secure-cookie/HSTS logic would not see https. Trusted
        # only when configured — otherwise a client could forge X-Forwarded-For to dodge the throttle.
        # Host is left alone: nginx passes the real one (proxy_set_header Host), X-Forwarded-Host it
        # would pass through from the client unchecked.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    @app.after_request
    def _headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        _no_store_when_signed_in(response)
        if app.config.get("PRODUCTION"):
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def _no_store_when_signed_in(response) -> None:
    """A signed-in page (scores, names, phone numbers) must not stay in the browser's cache, where the
    next person at a shared office computer could open it with Back after sign-out. Static files and
    the public login page are left cacheable; a view that chose its own policy (the ranking's ETag
    revalidation, private photo caching) keeps it; a bare "no-cache" is werkzeug's send_file default,
    not a choice, and still lets the browser store the file."""
    if request.endpoint == "static" or response.headers.get("Cache-Control", "no-cache") != "no-cache":
        return
    try:
        signed_in = bool(current_user and current_user.is_authenticated)
    except Exception:  # noqa: BLE001 — an error page whose database is down is still sent
        signed_in = False
    if signed_in:
        response.headers["Cache-Control"] = "no-store"
