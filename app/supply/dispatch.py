"""From committed supply tasks to the queue: the relay and the reconciler.

A task and its dispatch intent are committed together. The relay puts a job on RQ for
each pending intent, with the task's id as the job id; the reconciler puts back any
intent whose job went missing (a worker killed, Redis restarted). Jobs check the intent
before acting, so a job run twice notifies once.
"""

import logging
from datetime import timedelta

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.types import utcnow
from app.queue import QUEUE_DISPATCH, get_queue
from app.supply.models import DispatchIntent, SupplyTask

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
    # again, and the job's own check makes the repeat harmless.
    queue.enqueue_many(jobs)
    for intent in intents:
        intent.status = "enqueued"
        intent.enqueued_at = utcnow()
        intent.attempts += 1
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


def reconcile(stale_seconds, incident_ids=None):
    """Mark pending again every intent enqueued before the cut-off whose job is not alive.

    Returns how many; the next relay puts them back on the queue.
    """
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    query = select(DispatchIntent).where(
        DispatchIntent.status == "enqueued", DispatchIntent.enqueued_at <= cutoff
    )
    if incident_ids is not None:
        query = query.join(SupplyTask).where(SupplyTask.incident_id.in_(incident_ids))
    connection = get_queue(QUEUE_DISPATCH).connection
    stuck = []
    for intent in db.session.scalars(query):
        try:
            status = Job.fetch(job_id_for(intent.supply_task_id), connection=connection).get_status()
        except NoSuchJobError:
            status = None
        if status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED):
            continue
        stuck.append(intent.id)
    if stuck:
        db.session.execute(
            update(DispatchIntent)
            .where(DispatchIntent.id.in_(stuck), DispatchIntent.status == "enqueued")
            .values(status="pending")
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
