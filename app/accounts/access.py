"""Who is acting: the session cookie on the pages, a bearer token on the API, and the
roles each view needs."""

import functools
import logging

from flask import g, has_request_context, redirect, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_login import current_user
from flask_smorest import abort
from flask_wtf.csrf import generate_csrf

from app.accounts.models import ROLES, User
from app.accounts.services import user_for_token
from app.errors import wants_json
from app.extensions import db, login_manager

log = logging.getLogger(__name__)

# How the pages name each role.
ROLE_NAMES = {
    "commander": lazy_gettext("commander"),
    "liaison": lazy_gettext("liaison"),
    "supplier": lazy_gettext("supplier"),
    "inspector": lazy_gettext("inspector"),
    "drill_controller": lazy_gettext("drill controller"),
    "viewer": lazy_gettext("viewer"),
}


def init_app(app):
    """Bind Flask-Login: pages sign in with the session, the API with bearer tokens."""
    login_manager.init_app(app)
    login_manager.user_loader(_load_from_session)
    login_manager.request_loader(_load_from_token)
    app.before_request(_forget_the_last_user)
    # The sign-out button on every page posts this token.
    app.jinja_env.globals["csrf_token"] = generate_csrf


def _forget_the_last_user():
    """Flask-Login keeps the user in `g`, which requests share when they run inside an app
    context pushed beforehand (tests, pages the drill renders): each request asks anew."""
    g.pop("_login_user", None)


def is_api_request():
    return request.path.startswith("/api")


def _load_from_session(session_id):
    """The signed-in user of a page. The API ignores the cookie a browser sends along by
    itself, so a page of another site cannot make changes there in the user's name. A
    session made before the password changed, or of a user since deactivated, is none."""
    user_id, _, fingerprint = str(session_id).partition(".")
    if is_api_request() or not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_fingerprint() != fingerprint:
        return None
    return user


def _load_from_token(req):
    """The user of `Authorization: Bearer <token>`; unknown and revoked tokens give none."""
    scheme, _, value = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    user = user_for_token(value.strip())
    if user is None:
        log.info("api token: refused for %s %s", req.method, req.path)
        return None
    if db.session.dirty:
        # Loaded before the view runs (require_roles asks first), so only the token's
        # last use is in this transaction.
        db.session.commit()
    return user


def acting_user():
    """The signed-in user of this request, or None (no request, or nobody signed in)."""
    if not has_request_context():
        return None
    user = current_user._get_current_object()
    return user if user is not None and user.is_authenticated else None


def ensure_roles(*roles):
    """Stop the request unless a user with one of `roles` (any role, when none is given)
    is acting: 401 on the API and a redirect to the sign-in page elsewhere when nobody is,
    403 naming the role needed when the role does not fit. Returns the user."""
    user = acting_user()
    if user is None:
        if wants_json():
            abort(
                401,
                message="sign in: send Authorization: Bearer with your API token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        abort(redirect(url_for("accounts.login", next=_here())))

    if roles and user.role not in roles:
        needed = " or ".join(roles)
        log.info("user %s: %s %s refused, needs %s", user.username, request.method,
                 request.path, needed)  # fmt: skip
        if wants_json():
            abort(403, message=f"this needs the role {needed}; {user.username} is {user.role}")
        message = gettext(
            "This needs the role %(needed)s; you are signed in as %(role)s.",
            needed=" / ".join(str(ROLE_NAMES[role]) for role in roles),
            role=ROLE_NAMES[user.role],
        )
        abort(403, message=message)
    return user


def require_roles(*roles):
    """Decorate a view (a page function or a MethodView method, above its flask-smorest
    decorators so nobody learns anything before the check) to need one of `roles`."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")

    def decorate(view):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            ensure_roles(*roles)
            return view(*args, **kwargs)

        return checked

    return decorate


def _here():
    """This page's path and query, for coming back after signing in."""
    return request.full_path.rstrip("?") if request.method == "GET" else request.path
