"""The database schema, brought up by the migrations when a command finds it missing."""

import logging

from sqlalchemy import inspect

from app.extensions import db

log = logging.getLogger(__name__)


def ensure_schema():
    """Run the migrations on a database that has none of the app's tables yet."""
    from flask_migrate import upgrade

    if inspect(db.session.connection()).has_table("drill_run"):
        return False
    log.info("database: empty, creating the schema")
    db.session.commit()  # the migrations use a connection of their own
    upgrade()
    return True
