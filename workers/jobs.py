"""Job entry points. Each loads rows by id in its own app context and calls a service.

A job that fails raises, so RQ records it; every job is safe to run twice.
"""

import logging

from flask import current_app, has_app_context

from app.extensions import db

log = logging.getLogger(__name__)
_app = None


def _get_app():
    """The app of the calling process: the current one in tests, else one made once."""
    global _app
    if has_app_context():
        return current_app._get_current_object()
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def dispatch_supply_task(task_id):
    """Notify the supplier of a supply task, once."""
    from app.clock.services import now
    from app.incidents.models import Incident
    from app.supply.dispatch import claim
    from app.supply.models import SupplyTask
    from app.supply.services import notify_supplier_of_task

    with _get_app().app_context():
        task = db.session.get(SupplyTask, task_id)
        if task is None:
            raise LookupError(f"supply task {task_id} does not exist")
        if not claim(task_id):
            log.info("supply task %s: already dispatched, nothing to do", task_id)
            db.session.rollback()
            return "already done"
        if task.status == "cancelled":
            db.session.commit()
            return "cancelled"

        at = now(db.session.get(Incident, task.incident_id))
        notify_supplier_of_task(task, at)
        if task.status == "created":
            task.status = "notified"
        task.notified_at = at
        task.updated_at = at
        db.session.commit()
        log.info("supply task %s: supplier %s notified", task_id, task.supplier_id)
        return "notified"


def deliver_notifications(delivery_ids):
    """Send a batch of notification deliveries; each is claimed first, so a repeat of the
    job sends nothing twice, and a failure waits in the database for its next try."""
    from rq import get_current_job

    from app.coordination.delivery import deliver

    with _get_app().app_context():
        job = get_current_job()
        outcomes = deliver(delivery_ids, job_id=job.id if job is not None else None)
        db.session.commit()
        return outcomes


def run_scheduled_action(action_id):
    """Carry out a due action (remind, escalate, report, re-allocate), once."""
    from app.clock.models import ScheduledAction
    from app.clock.services import claim, now
    from app.incidents.models import Incident

    with _get_app().app_context():
        action = db.session.get(ScheduledAction, action_id)
        if action is None:
            raise LookupError(f"scheduled action {action_id} does not exist")
        incident = db.session.get(Incident, action.incident_id)
        at = now(incident)
        if not claim(action_id):
            db.session.rollback()
            log.info("action %s: already done", action_id)
            return "already done"

        from app.incidents.services import ORIGIN

        token = ORIGIN.set(f"{action.kind}:{action.subject_id:012d}")
        try:
            outcome = _ACTIONS[action.kind](action, incident, at)
        finally:
            ORIGIN.reset(token)
        action.outcome = outcome
        db.session.commit()
        log.info("action %s: %s of %s -> %s", action_id, action.kind, action.subject_id, outcome)

        if action.kind in MOVES_TASKS:
            from app.supply.dispatch import relay

            relay()
        return outcome


def _duty_remind(action, incident, at):
    from app.duties.models import DutyAssignment
    from app.duties.services import remind

    return remind(db.session.get(DutyAssignment, action.subject_id), at)


def _duty_escalate(action, incident, at):
    from app.duties.models import DutyAssignment
    from app.duties.services import escalate

    return escalate(db.session.get(DutyAssignment, action.subject_id), at)


def _task_remind(action, incident, at):
    from app.coordination.tasks import remind

    return remind(action.subject_id, at)


def _task_escalate(action, incident, at):
    from app.coordination.tasks import escalate

    return escalate(action.subject_id, at)


def _sitrep(action, incident, at):
    """The plan's schedule drafts a report for the command to edit, approve and send."""
    from app.coordination.sitreps import draft_on_schedule

    if incident.status == "closed":
        return "incident closed"
    report = draft_on_schedule(incident, due_at=action.due_at, at=at)
    return f"report no. {report.number} drafted"


def _replan(action, incident, at):
    """A capacity report, a hazard area or a demand change: solve again what it touches."""
    from app.supply.models import CapacityReport, HazardArea, PointOpening
    from app.supply.services import replan_from

    if incident.status == "closed":
        return "incident closed"
    if action.kind == "replan_capacity":
        report = db.session.get(CapacityReport, action.subject_id)
        moved = replan_from(
            incident, at, meal=report.meal, supplier_id=report.supplier_id, since=report.valid_from
        )
    elif action.kind == "replan_hazard":
        if db.session.get(HazardArea, action.subject_id).lifted_at is not None:
            return "hazard area lifted"
        moved = replan_from(incident, at, since=at)
    else:
        opening = db.session.get(PointOpening, action.subject_id)
        moved = replan_from(incident, at, point_id=opening.demand_point_id, since=at)
    return f"{len(moved)} tasks moved"


def _reallocate_supplier(action, incident, at):
    from app.supply.models import SupplierSuspension
    from app.supply.services import reallocate_after_suspension

    suspension = db.session.get(SupplierSuspension, action.subject_id)
    moved = reallocate_after_suspension(suspension, incident, at)
    return f"{len(moved)} tasks re-allocated"


_ACTIONS = {
    "duty_remind": _duty_remind,
    "duty_escalate": _duty_escalate,
    "task_remind": _task_remind,
    "task_escalate": _task_escalate,
    "sitrep": _sitrep,
    "reallocate_supplier": _reallocate_supplier,
    "replan_capacity": _replan,
    "replan_hazard": _replan,
    "replan_demand": _replan,
}
# Actions that cancel and create supply tasks: the relay runs after them at once.
MOVES_TASKS = ("reallocate_supplier", "replan_capacity", "replan_hazard", "replan_demand")
