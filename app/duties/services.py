"""Duty assignments on the statutory clock: assign, confirm, remind, escalate."""

import logging
from datetime import timedelta

from sqlalchemy import select

from app.clock.services import schedule
from app.coordination.services import notify
from app.duties.models import Duty, DutyAssignment
from app.errors import Conflict, Forbidden
from app.extensions import db
from app.incidents.services import record
from app.organisation.services import commander_of, liaison_of, office_liaison
from app.types import local_iso

log = logging.getLogger(__name__)


def assign_duties(incident, at):
    """Assign every duty of the plan that applies at the incident's level."""
    duties = db.session.scalars(
        select(Duty).filter_by(plan_id=incident.plan_id).order_by(Duty.id)
    ).all()
    escalation = incident.plan.document.get("escalation", {})
    escalate_after = timedelta(minutes=escalation.get("escalate_after_minutes", 30))

    assignments = []
    for duty in duties:
        if not duty.applies_at(incident.level):
            continue
        deadline = at + timedelta(minutes=duty.confirm_within_minutes)
        assignment = DutyAssignment(
            incident_id=incident.id,
            duty_id=duty.id,
            department_id=duty.department_id,
            assigned_at=at,
            deadline_at=deadline,
        )
        db.session.add(assignment)
        db.session.flush()
        schedule("duty_remind", incident, assignment.id, deadline)
        schedule("duty_escalate", incident, assignment.id, deadline + escalate_after)
        liaison = liaison_of(duty.department_id)
        if liaison is not None:
            notify(
                key=f"duty-assigned-{assignment.id}",
                kind="duty_assigned",
                subject=f"请确认职责：{duty.title}",
                body=f"依据：{duty.legal_basis}；请于 {local_iso(deadline)} 前确认。",
                incident=incident,
                person=liaison,
                at=at,
            )
        assignments.append(assignment)
    log.info("incident %s: %d duties assigned", incident.id, len(assignments))
    return assignments


def confirm(assignment, person, at):
    """A liaison confirms the duty for their own department."""
    if person.department_id != assignment.department_id:
        raise Forbidden("a liaison confirms only for their own department")
    if assignment.status == "closed":
        raise Conflict("the assignment is closed")
    if assignment.confirmed_at is not None:
        return assignment
    assignment.status = "confirmed"
    assignment.confirmed_at = at
    assignment.confirmed_by_id = person.id
    late = " (late)" if at > assignment.deadline_at else ""
    record(
        assignment_incident(assignment),
        "duty_confirmed",
        f"{assignment.department.name}: {assignment.duty.title}{late}",
        at,
    )
    return assignment


def assignment_incident(assignment):
    from app.incidents.models import Incident

    return db.session.get(Incident, assignment.incident_id)


def remind(assignment, at):
    """At the deadline: mark overdue and remind the department, unless confirmed."""
    if assignment.confirmed_at is not None or assignment.status == "closed":
        return "confirmed in time"
    incident = assignment_incident(assignment)
    assignment.overdue_at = at
    assignment.reminded_at = at
    liaison = liaison_of(assignment.department_id)
    if liaison is not None:
        notify(
            key=f"duty-remind-{assignment.id}",
            kind="duty_reminder",
            subject=f"职责确认已超时：{assignment.duty.title}",
            body="请立即确认，逾期将上报指挥部。",
            incident=incident,
            person=liaison,
            at=at,
        )
    record(incident, "duty_overdue", f"{assignment.department.name}: reminded", at)
    return "reminded"


def escalate(assignment, at):
    """After the grace period: tell the office and the commander, unless confirmed."""
    if assignment.confirmed_at is not None or assignment.status == "closed":
        return "confirmed before escalation"
    incident = assignment_incident(assignment)
    assignment.escalated_at = at
    for person in (office_liaison(incident), commander_of(incident)):
        if person is None:
            continue
        notify(
            key=f"duty-escalate-{assignment.id}-{person.id}",
            kind="duty_escalation",
            subject=f"职责未确认：{assignment.department.name}",
            body=f"{assignment.duty.title}（截止 {local_iso(assignment.deadline_at)}）",
            incident=incident,
            person=person,
            at=at,
        )
    record(
        incident,
        "duty_escalated",
        f"{assignment.department.name}: to the office and the commander",
        at,
    )
    return "escalated"
