"""Errors answer in Chinese: a full page for a browser, a small fragment for htmx."""

from __future__ import annotations

import contextlib

from flask import Flask, make_response, render_template
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from app.core.htmx import is_partial_request
from app.extensions import db

MESSAGES = {
    400: "请求无效，请检查后重试。",
    401: "请先登录。",
    403: "您没有权限访问此内容。",
    404: "找不到您要访问的内容。",
    405: "不支持此操作方式。",
    409: "数据已被修改，请刷新后重试。",
    413: "上传的内容过大。",
    422: "提交的内容有误，请检查后重试。",
    429: "操作过于频繁，请稍后再试。",
    500: "系统内部错误，请稍后再试；您的数据没有丢失。",
}


class UserError(Exception):
    """Bad input a service refuses; the message is shown to the user as is."""

    status = 422

    def __init__(self, message: str, field_errors: dict | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.field_errors = field_errors or {}
        if status:
            self.status = status


class Conflict(UserError):
    status = 409


_BARE_PAGE = ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{status}</title></head>'
              '<body><h1>{message}</h1><p>错误代码 {status}</p><p><a href="/">返回首页</a></p></body></html>')
_BARE_FRAGMENT = '<div class="flash flash-error" role="alert">{message}</div>'


def _render(template: str, status: int, message: str) -> str:
    try:
        return render_template(template, status=status, message=message)
    except Exception:  # noqa: BLE001 — the page needs the database (current user), which may be down
        bare = _BARE_FRAGMENT if template.startswith("errors/_") else _BARE_PAGE
        return bare.format(status=status, message=escape(message))


def _respond(status: int, message: str):
    template = "errors/_message.html" if is_partial_request() else "errors/error.html"
    resp = make_response(_render(template, status, message), status)
    if is_partial_request():
        # Show the message in the page's error region instead of swapping it into the target.
        resp.headers["HX-Retarget"] = "#flash-region"
        resp.headers["HX-Reswap"] = "innerHTML"
    return resp


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(e):
        return _respond(400, "页面已过期或缺少安全校验（CSRF），请刷新页面后重试。")

    @app.errorhandler(UserError)
    def _user_error(e: UserError):
        return _respond(e.status, e.message)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        code = e.code or 500
        return _respond(code, MESSAGES.get(code, e.description or "请求失败。"))

    @app.errorhandler(Exception)
    def _unexpected(e):
        app.logger.exception("unhandled error")
        # A failed statement leaves the session's transaction unusable; the error page must not inherit it.
        with contextlib.suppress(Exception):
            db.session.rollback()
        return _respond(500, MESSAGES[500])
