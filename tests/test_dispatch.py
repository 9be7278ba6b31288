"""The outbox: tasks and intents commit together, the relay and reconciler put jobs on a
real queue, and a real worker notifies each supplier once."""

from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import func, select

from app.coordination.models import Notification
from app.extensions import db
from app.queue import get_queue, get_redis
from app.supply import dispatch
from app.supply.models import DispatchIntent, SupplyTask
from app.supply.services import allocate_meal
from tests.helpers import T0, incident, open_shelters
from workers.jobs import dispatch_supply_task

LUNCH = T0 + timedelta(hours=4)


def _count(model, **filters):
    return db.session.scalar(select(func.count()).select_from(model).filter_by(**filters))


def test_each_task_is_written_with_its_intent(region):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 3000, "ZH-SH-09": 4000})

    run, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    db.session.commit()

    assert run.allocated_meals == 7000
    assert sum(t.meals for t in tasks) == 7000
    assert _count(DispatchIntent, status="pending") == len(tasks)


def test_a_rolled_back_allocation_leaves_neither_tasks_nor_intents(region):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 3000})

    allocate_meal(found, "lunch", LUNCH, T0)
    db.session.rollback()

    assert _count(SupplyTask) == 0
    assert _count(DispatchIntent) == 0


def test_relay_and_worker_notify_every_supplier_once(region, run_worker):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 3000, "ZH-SH-09": 4000})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    db.session.commit()

    assert dispatch.relay() == len(tasks)
    assert dispatch.relay() == 0
    run_worker()

    db.session.expire_all()
    assert _count(DispatchIntent, status="done") == len(tasks)
    assert _count(SupplyTask, status="notified") == len(tasks)
    assert _count(Notification, kind="supply_task") == len(tasks)
    job = Job.fetch(dispatch.job_id_for(tasks[0].id), connection=get_redis())
    assert job.id == f"supply-task-{tasks[0].id}"


def test_a_job_run_twice_notifies_once(region, run_worker):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 500})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    task_id = tasks[0].id
    db.session.commit()

    assert dispatch_supply_task(task_id) == "notified"
    assert dispatch_supply_task(task_id) == "already done"

    assert _count(Notification, kind="supply_task") == 1


def test_reconciler_puts_back_a_job_lost_from_redis(region, run_worker):
    """A worker killed or Redis restarted without persistence must not lose a task."""
    found = incident()
    open_shelters(found, {"ZH-SH-01": 3000})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    db.session.commit()
    dispatch.relay()

    get_redis().flushdb()  # the queue forgets every job
    assert run_worker() == 0
    assert dispatch.reconcile(stale_seconds=0) == len(tasks)
    assert dispatch.relay() == len(tasks)
    run_worker()

    db.session.expire_all()
    assert _count(DispatchIntent, status="done") == len(tasks)
    assert _count(Notification, kind="supply_task") == len(tasks)


def test_reconciler_leaves_queued_jobs_alone(region):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 3000})
    allocate_meal(found, "lunch", LUNCH, T0)
    db.session.commit()
    dispatch.relay()

    assert dispatch.reconcile(stale_seconds=0) == 0


def test_a_cancelled_task_is_not_sent(region, run_worker):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 500})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    tasks[0].status = "cancelled"
    cancelled = tasks[0].key
    db.session.commit()

    dispatch.relay()
    run_worker()

    assert _count(Notification, kind="supply_task") == len(tasks) - 1
    assert _count(Notification, key=f"supply-task-{cancelled}") == 0


def test_a_job_for_a_missing_task_fails_loudly(app):
    with pytest.raises(LookupError):
        dispatch_supply_task(999999)


def _start_by_dead_worker(job_id, worker_name):
    """Leave a job as a SIGKILLed worker leaves it: taken off the queue, marked started."""
    from rq.job import Job

    connection = get_redis()
    job = Job.fetch(job_id, connection=connection)
    queue = get_queue(job.origin)
    queue.remove(job)
    with connection.pipeline() as pipe:
        job.prepare_for_execution(worker_name, pipe)
        pipe.execute()


def test_a_task_held_by_a_dead_worker_is_put_back_and_delivered(region, run_worker):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 3000})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    task_id = tasks[0].id
    db.session.commit()
    dispatch.relay()
    _start_by_dead_worker(dispatch.job_id_for(task_id), "killed-worker")

    assert dispatch.reconcile(60, min_age_seconds=0) == 0  # alive as far as anyone knows
    put_back = dispatch.reconcile(60, dead_workers={"killed-worker"}, min_age_seconds=0)
    assert put_back == 1
    dispatch.relay()
    run_worker()

    db.session.expire_all()
    assert _count(DispatchIntent, status="done") == len(tasks)
    assert _count(Notification, kind="supply_task") == len(tasks)


def test_a_started_job_silent_too_long_is_taken_for_lost(region):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 500})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    task_id = tasks[0].id
    db.session.commit()
    dispatch.relay()
    _start_by_dead_worker(dispatch.job_id_for(task_id), "silent-worker")

    assert dispatch.reconcile(0, min_age_seconds=0) >= 1


def test_the_pool_replaces_a_worker_killed_with_sigkill(app):
    import os
    import signal
    import time

    from workers.pool import WorkerPool

    with WorkerPool(app, 1) as pool:
        victim = pool.processes[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)

        just_died = pool.revive()

        assert just_died == {victim.worker_name}
        assert len(pool.alive()) == 1
        assert pool.processes[0] is not victim
        time.sleep(0.1)


def test_a_job_taken_off_the_queue_but_never_started_is_lost(region):
    """A worker killed between popping a job and starting it leaves it 'queued' nowhere."""
    from app.queue import job_lost

    found = incident()
    open_shelters(found, {"ZH-SH-01": 500})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    task_id = tasks[0].id
    db.session.commit()
    dispatch.relay()
    job_id = dispatch.job_id_for(task_id)

    assert not job_lost(job_id, get_redis(), 60)
    get_queue("dispatch").remove(job_id)
    assert job_lost(job_id, get_redis(), 60)
