"""Baogong (保供): emergency catering supply coordination.

The application factory wires the extensions, the queue and one blueprint per module.
"""

import logging
import os
import sys

import flask_babel
from flask import Flask, request
from flask_babel import get_locale
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import config, extensions, queue
from app.errors import register_error_handlers
from app.extensions import babel, db, migrate

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


def create_app(test_config=None):
    """Create the app; `test_config` overrides settings read from the environment."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    try:
        app.config.from_mapping(config.from_environment(app.instance_path))
    except config.ConfigError as error:
        # A bad setting stops every entry point (CLI, gunicorn, workers) with one line.
        sys.stderr.write(f"configuration refused: {error}\n")
        raise SystemExit(2) from None
    if test_config:
        app.config.from_mapping(test_config)

    logging.basicConfig(
        level=app.config["BAOGONG_LOG_LEVEL"],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True)
    babel.init_app(app, locale_selector=_select_locale)
    # The locale is chosen per request: a request inside an app context that outlives it
    # (a CLI command, a test) must not keep the language of the one before.
    app.before_request(flask_babel.refresh)
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["zone_name"] = app.config["BAOGONG_TIMEZONE"]
    app.jinja_env.filters["local_time"] = _local_time
    app.json.ensure_ascii = False
    queue.init_app(app)
    _import_models()

    from app.accounts import access

    access.init_app(app)

    # The extension is reached through its module: the package app.api shadows the name.
    extensions.api.init_app(app)
    from app.accounts.views import bp as accounts_bp
    from app.api import routes as api_routes
    from app.coordination.inbox_views import bp as inbox_bp
    from app.coordination.sitrep_views import bp as sitreps_bp
    from app.coordination.task_views import bp as tasks_bp
    from app.duties.views import bp as clock_bp
    from app.process.pages import bp as plans_bp
    from app.techsupport.batch_views import bp as batch_pages_bp
    from app.techsupport.expert_pages import bp as experts_bp
    from app.techsupport.inspection_pages import bp as inspections_bp
    from app.techsupport.trace_views import bp as trace_bp
    from app.web import bp as web_bp

    api_routes.register(extensions.api)
    app.register_blueprint(web_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(plans_bp)
    app.register_blueprint(clock_bp)
    app.register_blueprint(tasks_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(sitreps_bp)
    app.register_blueprint(trace_bp)
    app.register_blueprint(experts_bp)
    app.register_blueprint(inspections_bp)
    app.register_blueprint(batch_pages_bp)
    from app.techsupport.food_safety_views import bp as food_safety_bp

    app.register_blueprint(food_safety_bp)
    register_error_handlers(app)

    from app import cli

    cli.register(app)
    return app


def _local_time(value):
    """Pages show instants in the configured zone; values may be ISO strings or datetimes."""
    from datetime import datetime

    from flask import current_app

    from app.types import local_iso

    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    text = local_iso(value, current_app.config["BAOGONG_TIMEZONE"])
    return text.replace("T", " ")[:16]


def _select_locale():
    """zh-CN unless the user asks for English with ?lang=en or the browser prefers it."""
    asked = request.args.get("lang")
    if asked in ("en", "zh_CN"):
        return asked
    return request.accept_languages.best_match(["zh_CN", "en"], default="zh_CN")


def _import_models():
    """Import every model module so metadata and migrations see all tables."""
    from app.accounts import models as _accounts  # noqa: F401
    from app.alerts import models as _alerts  # noqa: F401
    from app.clock import models as _clock  # noqa: F401
    from app.coordination import models as _coordination  # noqa: F401
    from app.drills import models as _drills  # noqa: F401
    from app.duties import models as _duties  # noqa: F401
    from app.incidents import models as _incidents  # noqa: F401
    from app.organisation import models as _organisation  # noqa: F401
    from app.process import models as _process  # noqa: F401
    from app.supply import models as _supply  # noqa: F401
    from app.techsupport import models as _techsupport  # noqa: F401


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite is shared by the web process and the workers: WAL and a busy timeout."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    # Transactions are begun by SQLAlchemy below, as BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin_immediate(connection):
    """Take SQLite's write lock at the start of a transaction.

    A deferred transaction that reads, then writes after another process committed, fails
    at once with "database is locked"; an immediate one waits its turn instead.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
