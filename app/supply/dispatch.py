"""From committed supply tasks to the queue: the relay and the reconciler.

A task and its dispatch intent are committed together. The relay puts a job on RQ for
each pending intent, with the task's id as the job id; the reconciler puts back any
intent whose job went missing (a worker killed, Redis restarted). Jobs check the intent
before acting, so a job run twice notifies once.
"""

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.queue import QUEUE_DISPATCH, get_queue, job_lost
from app.supply.models import DispatchIntent, SupplyTask
from app.types import utcnow

log = logging.getLogger(__name__)

RELAY_BATCH = 500


def job_id_for(task_id):
    return f"supply-task-{task_id}"


def _enqueue(intents):
    queue = get_queue(QUEUE_DISPATCH)
    jobs = [
        queue.prepare_data(
            "workers.jobs.dispatch_supply_task",
            args=(intent.supply_task_id,),
            job_id=job_id_for(intent.supply_task_id),
            description=f"dispatch supply task {intent.supply_task_id}",
            meta={"incident_id": intent.supply_task.incident_id},
        )
        for intent in intents
    ]
    # Enqueue first, then mark: a crash in between leaves a pending intent that is relayed
    # again, and the job's own check makes the repeat harmless. The mark only moves rows
    # still pending, so an intent a fast worker already finished stays done.
    queue.enqueue_many(jobs)
    db.session.execute(
        update(DispatchIntent)
        .where(DispatchIntent.id.in_([i.id for i in intents]), DispatchIntent.status == "pending")
        .values(
            status="enqueued",
            enqueued_at=utcnow(),
            attempts=DispatchIntent.attempts + 1,
        ),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


def relay(incident_ids=None):
    """Put every pending dispatch intent on the queue; returns how many.

    Queue bookkeeping runs on the wall clock, whatever clock the incident runs on.
    """
    count = 0
    while True:
        query = (
            select(DispatchIntent)
            .options(joinedload(DispatchIntent.supply_task))
            .where(DispatchIntent.status == "pending")
        )
        if incident_ids is not None:
            query = query.join(SupplyTask).where(SupplyTask.incident_id.in_(incident_ids))
        intents = db.session.scalars(query.order_by(DispatchIntent.id).limit(RELAY_BATCH)).all()
        if not intents:
            break
        _enqueue(intents)
        count += len(intents)
    db.session.commit()  # end the read, so no lock is held while workers write
    if count:
        log.info("relay: %d supply tasks put on the queue", count)
    return count


def reconcile(stale_seconds, incident_ids=None, dead_workers=(), min_age_seconds=None):
    """Mark pending again every enqueued intent whose job is lost.

    A job is lost when Redis no longer has it, it failed, or the worker running it died
    (named in `dead_workers`, or silent for `stale_seconds`). Only intents enqueued at
    least `min_age_seconds` ago (default: `stale_seconds`) are looked at, to keep the
    look-ups few. Returns how many; the next relay puts them back on the queue.
    """
    age = stale_seconds if min_age_seconds is None else min_age_seconds
    cutoff = utcnow() - timedelta(seconds=age)
    query = select(DispatchIntent).where(
        DispatchIntent.status == "enqueued", DispatchIntent.enqueued_at <= cutoff
    )
    if incident_ids is not None:
        query = query.join(SupplyTask).where(SupplyTask.incident_id.in_(incident_ids))
    connection = get_queue(QUEUE_DISPATCH).connection
    stuck = [
        intent.id
        for intent in db.session.scalars(query)
        if job_lost(job_id_for(intent.supply_task_id), connection, stale_seconds, dead_workers)
    ]
    if stuck:
        db.session.execute(
            update(DispatchIntent)
            .where(DispatchIntent.id.in_(stuck), DispatchIntent.status == "enqueued")
            .values(status="pending"),
            execution_options={"synchronize_session": False},
        )
        log.warning("reconciler: %d stuck dispatch intents put back", len(stuck))
    db.session.commit()
    return len(stuck)


def claim(task_id):
    """Mark a task's intent done if no other run of the job has; True when this one owns it."""
    result = db.session.execute(
        update(DispatchIntent)
        .where(DispatchIntent.supply_task_id == task_id, DispatchIntent.status != "done")
        .values(status="done", done_at=utcnow())
    )
    return result.rowcount == 1


def unfinished(incident_ids=None):
    """How many intents are not done yet."""
    from sqlalchemy import func

    query = select(func.count(DispatchIntent.id)).where(DispatchIntent.status != "done")
    if incident_ids is not None:
        query = query.join(SupplyTask).where(SupplyTask.incident_id.in_(incident_ids))
    return db.session.scalar(query)
