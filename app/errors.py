"""Domain errors raised by services; the HTTP boundary maps them to status codes."""


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


def register_error_handlers(app):
    """Turn domain errors into JSON responses with the right status code."""
    from flask import jsonify

    @app.errorhandler(DomainError)
    def handle_domain_error(error):
        body = {"code": error.status, "status": type(error).__name__, "message": str(error)}
        if isinstance(error, InvalidInput):
            body["errors"] = error.errors
        return jsonify(body), error.status
