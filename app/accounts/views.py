"""The sign-in and sign-out pages."""

from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import InputRequired, Length

from app.accounts.access import ROLE_NAMES, acting_user
from app.accounts.services import authenticate

bp = Blueprint("accounts", __name__)


@bp.app_context_processor
def _role_names():
    return {"role_names": ROLE_NAMES}


class LoginForm(FlaskForm):
    """Username and password; the form carries its CSRF token."""

    username = StringField(lazy_gettext("Username"), validators=[InputRequired(), Length(max=64)])
    password = PasswordField(
        lazy_gettext("Password"), validators=[InputRequired(), Length(max=1024)]
    )
    next = HiddenField()


class LogoutForm(FlaskForm):
    """Nothing but the CSRF token: another site cannot sign the user out."""


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        return render_template("accounts/login.html", form=form, failed=False)

    if not form.validate_on_submit():
        return render_template("accounts/login.html", form=form, failed=False), 422
    user = authenticate(form.username.data, form.password.data)
    if user is None:
        # One message for an unknown name, a wrong password and a disabled account.
        return render_template("accounts/login.html", form=form, failed=True), 401

    login_user(user)
    return redirect(local_path(form.next.data) or url_for("web.index"))


@bp.post("/logout")
def logout():
    if not LogoutForm().validate_on_submit():
        abort(400, gettext("The sign-out form has expired; reload the page and try again."))
    if acting_user() is not None:
        logout_user()
    return redirect(url_for("web.index"))


def local_path(target):
    """`target` when it is a path on this site, else None: signing in never sends the user
    to another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return None
    return target
