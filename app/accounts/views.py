from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.accounts import operations as users
from app.accounts import throttle
from app.accounts.blueprint import bp
from app.accounts.forms import AccountPasswordForm, LoginForm
from app.accounts.next_url import safe_next
from app.core.authz import home_endpoint
from app.core.errors import UserError
from app.extensions import db, login_manager
from app.models import User

login_manager.login_view = "accounts.login"
login_manager.login_message = "请先登录。"
login_manager.login_message_category = "info"


@login_manager.unauthorized_handler
def _unauthorized():
    """A page asks the browser to sign in; an htmx request (an autosave after the session expired, say)
    gets 401 plus HX-Redirect, so the score panel never swaps the login page into itself."""
    target = url_for("accounts.login", next=request.full_path if request.method == "GET" else None)
    if request.headers.get("HX-Request") == "true":
        resp = make_response("", 401)
        resp.headers["HX-Redirect"] = target
        return resp
    flash("请先登录。", "info")
    return redirect(target)


@login_manager.user_loader
def _load_user(token: str):
    from sqlalchemy import select

    return db.session.scalar(select(User).where(User.session_token == token, User.active.is_(True)))


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for(home_endpoint(current_user)))
    return redirect(url_for("accounts.login"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for(home_endpoint(current_user)))
        return render_template("accounts/login.html", form=form, error=None)
    # Every attempt is counted before anything is checked (throttle.py explains why, and the rules).
    refused = throttle.reserve_login_attempt()
    if refused:
        return _refused(form, refused)
    if not form.validate_on_submit():
        return render_template("accounts/login.html", form=form, error=form.message()), 422
    username = form.username.data
    hint = users.user_id_for(username)
    refused = throttle.reserve_account_attempt(username, hint)
    if refused:
        # No password was checked: the address keeps its unit for the owner's next try.
        throttle.refund_login_attempt()
        return _refused(form, refused)
    user = users.authenticate(username, form.password.data)
    if user is None:
        return render_template("accounts/login.html", form=form, error="用户名或密码不正确，或账号已停用。"), 401
    throttle.refund_login_attempt()
    throttle.refund_account_attempt(username, hint)
    login_user(user)
    users.record_login(user)
    resp = redirect(safe_next(request.args.get("next")) or url_for(home_endpoint(user)), 303)
    throttle.remember_device(resp, user.id)
    return resp


def _refused(form, refused: throttle.Refusal):
    resp = make_response(render_template("accounts/login.html", form=form, error=refused.message), 429)
    resp.headers["Retry-After"] = str(refused.wait_seconds)
    return resp


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    users.end_sessions(current_user)
    logout_user()
    flash("您已安全退出。", "success")
    return redirect(url_for("accounts.login"), 303)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    form = AccountPasswordForm()
    if request.method == "GET":
        return render_template("accounts/account.html", form=form)
    if not form.validate_on_submit():
        flash(form.page_message(), "error")
        return render_template("accounts/account.html", form=form), 422
    try:
        users.change_own_password(current_user, form.current.data, form.new.data)
    except UserError as e:
        flash(e.message, "error")
        form.add_errors(e.field_errors)
        return render_template("accounts/account.html", form=form), e.status
    logout_user()
    flash("密码已修改，所有已登录的会话均已失效，请重新登录。", "success")
    return redirect(url_for("accounts.login"), 303)
