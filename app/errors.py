"""Domain errors raised by services; the HTTP boundary maps them to status codes."""

from flask_babel import lazy_gettext
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.http import HTTP_STATUS_CODES


class DomainError(Exception):
    """A request the domain refuses; the message is meant for the user."""

    status = 400


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    """The change would over-allocate, or collides with a concurrent change."""

    status = 409


class InvalidInput(DomainError):
    """Input refused as a whole; `errors` maps a field or row to its messages."""

    status = 422

    def __init__(self, message, errors=None):
        super().__init__(message)
        self.errors = errors or {}


def error_body(code, message, errors=None):
    """The one JSON shape of every error: flask-smorest's, with `message` always present and
    `errors` (field or row to messages) on every 422."""
    status = HTTP_STATUS_CODES.get(code, "Unknown Error")
    body = {"code": code, "status": status, "message": message}
    if errors is not None or code == 422:
        body["errors"] = errors or {}
    return body


def register_error_handlers(app):
    """Turn domain errors and HTTP errors into JSON responses of one shape.

    Called after the flask-smorest Api is bound: its HTTP error handler, which leaves
    `message` out unless one was passed to abort(), is replaced by this one.
    """

    @app.errorhandler(DomainError)
    def handle_domain_error(error):
        return error_body(error.status, str(error), getattr(error, "errors", None)), error.status

    @app.errorhandler(OperationalError)
    def handle_busy_database(error):
        """SQLite's write lock held past the busy timeout: the request may be tried again."""
        if "locked" not in str(error).lower():
            raise error
        from app.extensions import db

        db.session.rollback()
        message = "the database is busy with another change; try again"
        if not wants_json():
            return _error_page(503, message), 503, {"Retry-After": "5"}
        return error_body(503, message), 503, {"Retry-After": "5"}

    @app.errorhandler(IntegrityError)
    def handle_concurrent_change(error):
        """Two requests raced to write the same row (a plan version, a command post): the
        database kept one; the other is told, not given a 500."""
        from app.extensions import db

        db.session.rollback()
        message = "another change to the same record came first; reload and try again"
        if not wants_json():
            return _error_page(409, message), 409
        return error_body(409, message), 409

    @app.errorhandler(RecursionError)
    def handle_deep_input(error):
        """A body nested thousands deep (JSON or YAML) is refused, not a crash."""
        message = "the input is nested too deeply"
        if not wants_json():
            return _error_page(400, message), 400
        return error_body(400, message), 400

    @app.errorhandler(HTTPException)
    def handle_http_error(error):
        # webargs' abort() leaves the field messages and any headers in `data`.
        data = getattr(error, "data", None) or {}
        errors = data.get("errors", data.get("messages"))
        headers = dict(data.get("headers") or {})
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)

        body = error_body(error.code, data.get("message", error.description), errors)
        if not wants_json():
            return _error_page(error.code, body["message"]), error.code, headers
        return body, error.code, headers


def wants_json():
    """The API answers in JSON; the pages answer a person, in a page."""
    from flask import request

    return request.path.startswith("/api") or request.accept_mimetypes.best == "application/json"


def _error_page(code, message):
    """A page for a person; Werkzeug's own English explanation gives way to ours, in the
    reader's language."""
    from flask import render_template
    from werkzeug.exceptions import default_exceptions

    default = getattr(default_exceptions.get(code), "description", None)
    if message == default and code in PAGE_MESSAGES:
        message = PAGE_MESSAGES[code]
    return render_template("error.html", code=code, status=HTTP_STATUS_CODES.get(code, ""),
                           message=message)  # fmt: skip


# What a page says for an error that carries no message of its own.
PAGE_MESSAGES = {
    400: lazy_gettext("The request could not be understood; reload the page and try again."),
    403: lazy_gettext("You may not do this with your role."),
    404: lazy_gettext("There is no such page."),
    405: lazy_gettext("This page cannot be used that way."),
    413: lazy_gettext("The file or form is too large."),
}
