"""The clock every service reads, and the tick that fires due actions exactly once.

A real incident runs on the wall clock; a drill incident on its drill run's simulated
clock. The same functions serve both, so a drill exercises production code.
"""

import logging
from datetime import timedelta

from sqlalchemy import select, update

from app.clock.models import ScheduledAction
from app.drills.models import DrillRun
from app.extensions import db
from app.queue import QUEUE_DEFAULT, get_queue, job_lost
from app.types import utcnow

log = logging.getLogger(__name__)


def now(incident=None):
    """The current instant on the incident's clock."""
    if incident is not None and incident.drill_run_id is not None:
        return db.session.get(DrillRun, incident.drill_run_id).sim_now
    return utcnow()


def schedule(kind, incident, subject_id, due_at):
    """Add a timed action; the same kind, incident, subject and instant is only scheduled
    once."""
    existing = db.session.scalar(
        select(ScheduledAction).filter_by(
            kind=kind, incident_id=incident.id, subject_id=subject_id, due_at=due_at
        )
    )
    if existing is not None:
        if existing.done_at is not None and (existing.outcome or "").startswith("cancelled"):
            # Asked for again after it was called off (a duty retired and assigned anew at
            # the same instant): it fires after all.
            existing.done_at = existing.enqueued_at = existing.outcome = None
        return existing
    action = ScheduledAction(
        kind=kind, incident_id=incident.id, subject_id=subject_id, due_at=due_at
    )
    db.session.add(action)
    db.session.flush()
    return action


def job_id_for(action):
    return f"action-{action.id}"


def tick(at, incident_ids=None):
    """Put every due, not yet enqueued action on the queue; returns how many.

    The job id is fixed by the row, so a duplicate tick re-puts the same job, and the job
    itself claims the row before acting, so it acts once.
    """
    query = select(ScheduledAction).where(
        ScheduledAction.due_at <= at,
        ScheduledAction.enqueued_at.is_(None),
        ScheduledAction.done_at.is_(None),
    )
    if incident_ids is not None:
        query = query.where(ScheduledAction.incident_id.in_(incident_ids))
    due = db.session.scalars(query.order_by(ScheduledAction.due_at, ScheduledAction.id)).all()

    queue = get_queue(QUEUE_DEFAULT)
    for action in due:
        queue.enqueue(
            "workers.jobs.run_scheduled_action",
            action.id,
            job_id=job_id_for(action),
            description=f"{action.kind} {action.subject_id}",
            meta={"incident_id": action.incident_id},
        )
        # Only the enqueue mark is written, never over a done row a fast worker finished.
        db.session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.id == action.id, ScheduledAction.done_at.is_(None))
            .values(enqueued_at=utcnow()),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
        log.info("action %s: %s of %s enqueued", action.id, action.kind, action.subject_id)
    return len(due)


def claim(action_id):
    """Mark an action done if nobody has; True when this caller owns it.

    Bookkeeping runs on the wall clock; `due_at` is on the incident's clock.
    """
    result = db.session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.id == action_id, ScheduledAction.done_at.is_(None))
        .values(done_at=utcnow())
    )
    return result.rowcount == 1


def requeue_lost(incident_ids=None, stale_seconds=60, dead_workers=(), min_age_seconds=None):
    """Make enqueued, unfinished actions whose job is lost due again for the next tick.

    Covers a Redis restart without persistence, or a job lost with its worker; the
    arguments are those of the dispatch reconciler.
    """
    age = stale_seconds if min_age_seconds is None else min_age_seconds
    cutoff = utcnow() - timedelta(seconds=age)
    query = select(ScheduledAction).where(
        ScheduledAction.enqueued_at <= cutoff, ScheduledAction.done_at.is_(None)
    )
    if incident_ids is not None:
        query = query.where(ScheduledAction.incident_id.in_(incident_ids))
    connection = get_queue(QUEUE_DEFAULT).connection
    lost = [
        action.id
        for action in db.session.scalars(query)
        if job_lost(job_id_for(action), connection, stale_seconds, dead_workers)
    ]
    if lost:
        db.session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.id.in_(lost), ScheduledAction.done_at.is_(None))
            .values(enqueued_at=None),
            execution_options={"synchronize_session": False},
        )
        log.warning("clock: %d lost actions put back for the next tick", len(lost))
    db.session.commit()
    return len(lost)
