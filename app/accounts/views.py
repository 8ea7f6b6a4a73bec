from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.accounts import credentials, throttle
from app.accounts import operations as users
from app.accounts.blueprint import bp
from app.accounts.forms import AccountPasswordForm, FirstPasswordForm, LoginForm
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
    if user.must_change_password:
        target = url_for("accounts.set_password")
    else:
        target = safe_next(request.args.get("next")) or url_for(home_endpoint(user))
    resp = redirect(target, 303)
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


# ---------------------------------------------------------------------------------------------
# The forced first password (one-time password, invitation link)

# While a new password is owed, only these stay open: everything else leads to 设置新密码.
_OPEN_WHILE_OWED = {"accounts.set_password", "accounts.logout", "accounts.invite", "accounts.login", "static"}


@bp.before_app_request
def _owe_new_password():
    endpoint = request.endpoint or ""
    # Static files first: they must not cost a user lookup.
    if not endpoint or endpoint in _OPEN_WHILE_OWED or endpoint.endswith(".static"):
        return None
    if not current_user.is_authenticated or not current_user.must_change_password:
        return None
    target = url_for("accounts.set_password")
    if request.headers.get("HX-Request") == "true":
        resp = make_response("", 401)
        resp.headers["HX-Redirect"] = target
        return resp
    return redirect(target, 303)


@bp.route("/account/set-password", methods=["GET", "POST"])
@login_required
def set_password():
    if not current_user.must_change_password:
        return redirect(url_for("accounts.account"), 303)
    form = FirstPasswordForm()
    if request.method == "GET":
        return render_template("accounts/set_password.html", form=form, invite=None)
    if not form.validate_on_submit():
        return render_template("accounts/set_password.html", form=form, invite=None, error=form.page_message()), 422
    try:
        user = credentials.set_first_password(current_user.id, form.new.data)
    except UserError as e:
        form.add_errors({"new": e.field_errors.get("password", "")} if e.field_errors else {})
        return render_template("accounts/set_password.html", form=form, invite=None, error=e.message), e.status
    # The token rotated (every other session ended); this browser continues under the new one.
    login_user(user)
    flash("新密码已设置，其他设备上的登录均已失效。", "success")
    return redirect(url_for(home_endpoint(user)), 303)


@bp.route("/accounts/invite/<token>", methods=["GET", "POST"])
def invite(token: str):
    """An invitation link: opening it shows the form (a link previewer that fetches it uses nothing up);
    setting the password uses the link and signs in."""
    invited = credentials.invitation(token)  # 404 unknown or used, 410 expired: the Chinese error page
    form = FirstPasswordForm()
    context = {"form": form, "invite": invited, "token": token}
    if request.method == "GET":
        return render_template("accounts/set_password.html", **context)
    if not form.validate_on_submit():
        return render_template("accounts/set_password.html", error=form.page_message(), **context), 422
    try:
        user = credentials.accept_invitation(token, form.new.data)
    except UserError as e:
        if e.status in (404, 410):
            raise
        return render_template("accounts/set_password.html", error=e.message, **context), e.status
    if current_user.is_authenticated:
        logout_user()
    login_user(user)
    users.record_login(user)
    flash("密码已设置，欢迎使用。", "success")
    return redirect(url_for(home_endpoint(user)), 303)
