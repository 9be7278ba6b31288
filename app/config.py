"""Settings read from environment variables, parsed strictly so a typo fails at start-up."""

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(ValueError):
    """An environment variable holds a value the application cannot use."""


def _int(name, default, minimum=None, maximum=None):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}: must be at most {maximum}, got {value}")
    return value


def _zone(name, default):
    raw = os.environ.get(name) or default
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}: unknown time zone {raw!r}") from None
    return raw


def _locale(name, default):
    raw = os.environ.get(name) or default
    if raw not in ("zh_CN", "en"):
        raise ConfigError(f"{name}: expected zh_CN or en, got {raw!r}")
    return raw


def _log_level(name, default):
    raw = (os.environ.get(name) or default).upper()
    if raw not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"{name}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {raw!r}")
    return raw


def _database_url(name, default):
    raw = os.environ.get(name) or default
    scheme = raw.split(":", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
        raise ConfigError(
            f"{name}: use sqlite:///PATH or postgresql+psycopg://..., got {scheme}://"
        )
    if scheme == "postgresql":
        raw = "postgresql+psycopg" + raw[len("postgresql") :]
    return raw


def _redis_url(name):
    """A Redis URL that redis-py can read, or None for the bundled server."""
    raw = os.environ.get(name) or None
    if raw is None:
        return None
    from redis.connection import parse_url

    try:
        parse_url(raw)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None
    return raw


def _region(name, default):
    """A region pack: a folder of fixtures/ by name, or a path to one."""
    raw = os.environ.get(name) or default
    fixtures = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
    folder = raw if os.path.isdir(raw) else os.path.join(fixtures, raw)
    if not os.path.isfile(os.path.join(folder, "region.yaml")):
        raise ConfigError(f"{name}: no region.yaml in {folder}")
    return raw


def _max_km(name, default):
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of kilometres, got {raw!r}") from None
    if not 0 <= value <= 1000:  # also refuses NaN
        raise ConfigError(f"{name}: must be from 0 to 1000 km, got {raw!r}")
    return value


def _flag(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _http_url(name):
    """An http(s) URL, or None when unset."""
    raw = os.environ.get(name) or None
    if raw is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: expected an http:// or https:// URL, got {raw!r}")
    return raw


def _seconds(name, default, maximum, minimum=0.0):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if not minimum <= value <= maximum:  # also refuses NaN
        raise ConfigError(f"{name}: must be from {minimum} to {maximum} seconds, got {raw!r}")
    return value


def _notification_settings():
    """Where email and SMS go, and how often a failed delivery is tried again."""
    return {
        # Email over SMTP; with no host, email deliveries are skipped as not configured.
        "BAOGONG_SMTP_HOST": os.environ.get("BAOGONG_SMTP_HOST") or None,
        "BAOGONG_SMTP_PORT": _int("BAOGONG_SMTP_PORT", 25, minimum=1, maximum=65535),
        "BAOGONG_SMTP_USER": os.environ.get("BAOGONG_SMTP_USER") or None,
        "BAOGONG_SMTP_PASSWORD": os.environ.get("BAOGONG_SMTP_PASSWORD") or None,
        "BAOGONG_SMTP_STARTTLS": _flag("BAOGONG_SMTP_STARTTLS", False),
        "BAOGONG_MAIL_FROM": os.environ.get("BAOGONG_MAIL_FROM") or "baogong@baogong.local",
        # The right-hand side of every Message-ID: <key@domain>.
        "BAOGONG_MAIL_DOMAIN": os.environ.get("BAOGONG_MAIL_DOMAIN") or "baogong.local",
        # SMS through an HTTP gateway taking JSON with a bearer token; unset, SMS is skipped.
        "BAOGONG_SMS_URL": _http_url("BAOGONG_SMS_URL"),
        "BAOGONG_SMS_TOKEN": os.environ.get("BAOGONG_SMS_TOKEN") or None,
        # A delivery is tried this many times, waiting base, 2 x base, 4 x base... between.
        "BAOGONG_NOTIFY_MAX_ATTEMPTS": _int("BAOGONG_NOTIFY_MAX_ATTEMPTS", 6, 1, 50),
        "BAOGONG_NOTIFY_BACKOFF_SECONDS": _seconds("BAOGONG_NOTIFY_BACKOFF_SECONDS", 30.0, 3600),
        # One SMTP conversation or HTTP request gives up after this long.
        "BAOGONG_NOTIFY_TIMEOUT_SECONDS": _seconds("BAOGONG_NOTIFY_TIMEOUT_SECONDS", 10, 300, 0.1),
    }


def from_environment(instance_path):
    """Build the Flask config mapping from the environment, with the embedded defaults."""
    sqlite_path = os.path.join(instance_path, "baogong.sqlite3")
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "dev-only-change-me",
        # The sign-in cookie is not sent along with requests started by other sites.
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SQLALCHEMY_DATABASE_URI": _database_url("DATABASE_URL", f"sqlite:///{sqlite_path}"),
        # An empty REDIS_URL means: start the bundled Redis server in the instance folder.
        "REDIS_URL": _redis_url("REDIS_URL"),
        "BAOGONG_TIMEZONE": _zone("BAOGONG_TIMEZONE", "Asia/Shanghai"),
        "BAOGONG_LOG_LEVEL": _log_level("BAOGONG_LOG_LEVEL", "INFO"),
        "BABEL_DEFAULT_LOCALE": _locale("BAOGONG_LOCALE", "zh_CN"),
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        # The region this installation serves (a folder of fixtures/, or a path) and the plan
        # that incidents opened by alerts run on.
        "BAOGONG_REGION": _region("BAOGONG_REGION", "zhenhai"),
        # A supplier or demand point further than this outside the region is refused.
        "BAOGONG_MAX_KM_OUTSIDE": _max_km("BAOGONG_MAX_KM_OUTSIDE", 50.0),
        "BAOGONG_PLAN": os.environ.get("BAOGONG_PLAN") or "zhenhai-catering-supply",
        # An alert that states no expiry counts as expired this long after it was sent.
        "BAOGONG_ALERT_MAX_AGE_HOURS": _int("BAOGONG_ALERT_MAX_AGE_HOURS", 72, minimum=1),
        # The bearer token that may post alerts to the API; unset, posting is off.
        "BAOGONG_INGEST_TOKEN": os.environ.get("BAOGONG_INGEST_TOKEN") or None,
        "BAOGONG_WORKERS": _int("BAOGONG_WORKERS", 2, minimum=1, maximum=16),
        "BAOGONG_JOB_TIMEOUT": _int("BAOGONG_JOB_TIMEOUT", 300, minimum=1),
        # An intent enqueued this long ago whose job is gone is put on the queue again.
        "BAOGONG_RECONCILE_AFTER_SECONDS": _int("BAOGONG_RECONCILE_AFTER_SECONDS", 60, minimum=1),
        **_notification_settings(),
        "API_TITLE": "Baogong API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "JSON_AS_ASCII": False,
        # Import files are at most 20 MiB; a larger body is refused before it is read.
        "MAX_CONTENT_LENGTH": 21 * 1024 * 1024,
    }
