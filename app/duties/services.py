"""Duty assignments on the statutory clock: assign, confirm or object, remind, escalate
along the plan's chain, retire and close.

Every deadline, reminder and escalation is a scheduled action row; leaving the open
states cancels the rows still pending, so a confirmed duty is never chased.
"""

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from app.clock.models import ScheduledAction
from app.clock.services import schedule
from app.coordination.services import notify
from app.duties.models import OPEN_STATUSES, ChecklistItem, Duty, DutyAssignment
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.incidents.services import record
from app.organisation.services import chain_person, commander_of, liaison_of
from app.types import local_iso, utcnow

log = logging.getLogger(__name__)

DUTY_ACTIONS = ("duty_remind", "duty_escalate")


def escalation_of(plan):
    """(chain, minutes between steps) of the plan: who is told, in turn, after a deadline."""
    escalation = plan.document.get("escalation") or {}
    chain = list(escalation.get("chain") or ["office", "commander"])
    return chain, timedelta(minutes=int(escalation.get("escalate_after_minutes", 30)))


def _cancel_pending(assignment, why):
    """Call off the reminders and escalations still waiting for this assignment (marked
    on the wall clock, as the tick's own bookkeeping is)."""
    db.session.execute(
        update(ScheduledAction)
        .where(
            ScheduledAction.kind.in_(DUTY_ACTIONS),
            ScheduledAction.subject_id == assignment.id,
            ScheduledAction.done_at.is_(None),
        )
        .values(done_at=utcnow(), outcome=f"cancelled: {why}"),
        execution_options={"synchronize_session": False},
    )


def _schedule_clock(incident, assignment):
    chain, after = escalation_of(incident.plan)
    schedule("duty_remind", incident, assignment.id, assignment.deadline_at)
    for step in range(len(chain)):
        schedule(
            "duty_escalate", incident, assignment.id, assignment.deadline_at + after * (step + 1)
        )


_UNKNOWN = object()


def assign(incident, duty, at, assignment=_UNKNOWN):
    """Assign one duty (again, if a level change had retired it), start its clock and
    tell the department's liaison on duty. `assignment` is the duty's existing row (or
    None), when the caller has already read it."""
    if assignment is _UNKNOWN:
        assignment = db.session.scalar(
            select(DutyAssignment).filter_by(incident_id=incident.id, duty_id=duty.id)
        )
    if assignment is not None and assignment.status != "retired":
        return assignment, False
    if assignment is None:
        assignment = DutyAssignment(
            incident_id=incident.id, duty_id=duty.id, department_id=duty.department_id
        )
        db.session.add(assignment)
    assignment.status = "assigned"
    assignment.assigned_at = at
    assignment.deadline_at = at + timedelta(minutes=duty.confirm_within_minutes)
    for field in ("confirmed_at", "confirmed_by_id", "objection", "objected_at", "reminded_at"):
        setattr(assignment, field, None)
    for field in ("overdue_at", "escalated_at", "closed_at", "close_note"):
        setattr(assignment, field, None)
    assignment.escalation_step = 0
    db.session.flush()
    _schedule_clock(incident, assignment)

    _page_department(
        incident,
        assignment,
        at,
        key=f"duty-assigned-{assignment.id}-{uuid.uuid4().hex}",
        kind="duty_assigned",
        subject=f"请确认职责：{duty.title}",
        body=f"依据：{duty.legal_basis}；请于 {local_iso(assignment.deadline_at)} 前确认。",
    )
    return assignment, True


def _page_department(incident, assignment, at, **message):
    """Tell the department's liaison on duty now, if anyone is."""
    liaison = liaison_of(assignment.department_id, at)
    if liaison is not None:
        notify(incident=incident, person=liaison, at=at, **message)


def _plan_duties(incident, trigger="level"):
    return db.session.scalars(
        select(Duty).filter_by(plan_id=incident.plan_id, trigger=trigger).order_by(Duty.id)
    ).all()


def assign_duties(incident, at):
    """Assign every duty of the plan that applies at the incident's level."""
    assignments = [
        assign(incident, duty, at)[0]
        for duty in _plan_duties(incident)
        if duty.applies_at(incident.level, incident.kind)
    ]
    log.info("incident %s: %d duties assigned", incident.id, len(assignments))
    return assignments


def assign_on_report(incident, at):
    """The duties a suspected food poisoning starts at once, before any level is set."""
    return [assign(incident, duty, at)[0] for duty in _plan_duties(incident, "suspected_poisoning")]


def reconcile_duties(incident, at):
    """After a level change: keep the duties the new level asks for, assign those it adds
    and retire those it drops. Returns counts of each."""
    counts = {"assigned": 0, "kept": 0, "retired": 0}
    held = {
        a.duty_id: a
        for a in db.session.scalars(select(DutyAssignment).filter_by(incident_id=incident.id))
    }
    for duty in _plan_duties(incident):
        assignment = held.get(duty.id)
        if duty.applies_at(incident.level, incident.kind):
            _, created = assign(incident, duty, at, assignment)
            counts["assigned" if created else "kept"] += 1
        elif assignment is not None and assignment.status in OPEN_STATUSES + ("confirmed",):
            assignment.status = "retired"
            assignment.closed_at = at
            assignment.close_note = f"level {incident.level} does not ask for this duty"
            _cancel_pending(assignment, "retired by a level change")
            counts["retired"] += 1
    return counts


def _own_department(assignment, person, department_id):
    """Only the department's own people answer for it; `department_id` is that of a
    signed-in user who is not paged as a person."""
    if department_id is None and person is not None:
        department_id = person.department_id
    if department_id != assignment.department_id:
        raise Forbidden("a liaison confirms or objects only for their own department")


def _open(assignment):
    if assignment.status not in OPEN_STATUSES:
        raise Conflict(f"the assignment is {assignment.status}")


def confirm(assignment, person, at, department_id=None):
    """A liaison confirms the duty for their own department; confirming twice is a no-op."""
    _own_department(assignment, person, department_id)
    if assignment.status == "confirmed":
        return assignment
    _open(assignment)
    assignment.status = "confirmed"
    assignment.confirmed_at = at
    assignment.confirmed_by_id = person.id if person is not None else None
    _cancel_pending(assignment, "confirmed")
    late = " (late)" if at > assignment.deadline_at else ""
    record(
        assignment_incident(assignment),
        "duty_confirmed",
        f"{assignment.department.name}: {assignment.duty.title}{late}",
        at,
    )
    return assignment


def object_to(assignment, person, reason, at, department_id=None):
    """A liaison objects to the duty, with a reason that goes to the commander; the clock
    stops until the commander decides."""
    _own_department(assignment, person, department_id)
    if not reason or not reason.strip():
        raise InvalidInput("an objection needs a reason", {"reason": ["required"]})
    if assignment.status != "assigned":
        raise Conflict(f"the assignment is {assignment.status}")
    incident = assignment_incident(assignment)
    assignment.status = "objected"
    assignment.objection = reason.strip()
    assignment.objected_at = at
    _cancel_pending(assignment, "objected")
    commander = commander_of(incident, at)
    if commander is not None:
        notify(
            key=f"duty-objection-{assignment.id}-{uuid.uuid4().hex}",
            kind="duty_objection",
            subject=f"职责异议：{assignment.department.name}",
            body=f"{assignment.duty.title}：{assignment.objection}",
            incident=incident,
            person=commander,
            at=at,
        )
    record(incident, "duty_objected", f"{assignment.department.name}: {reason.strip()}", at)
    return assignment


def decide_objection(assignment, *, uphold, reason, at):
    """The commander upholds the duty (assigned again, with a fresh deadline) or withdraws
    it (closed), with a reason."""
    if not reason or not reason.strip():
        raise InvalidInput("a decision needs a reason", {"reason": ["required"]})
    if assignment.status != "objected":
        raise Conflict("only an objected assignment waits for a decision")
    incident = assignment_incident(assignment)
    if uphold:
        assignment.status = "assigned"
        assignment.deadline_at = at + timedelta(minutes=assignment.duty.confirm_within_minutes)
        assignment.escalation_step = 0
        _schedule_clock(incident, assignment)
        _page_department(
            incident,
            assignment,
            at,
            key=f"duty-upheld-{assignment.id}-{uuid.uuid4().hex}",
            kind="duty_assigned",
            subject=f"异议未采纳，请确认职责：{assignment.duty.title}",
            body=f"{reason.strip()}；请于 {local_iso(assignment.deadline_at)} 前确认。",
        )
    else:
        assignment.status = "closed"
        assignment.closed_at = at
        assignment.close_note = reason.strip()
    verdict = "upheld" if uphold else "withdrawn"
    record(incident, "duty_objection_decided", f"{assignment.department.name}: {verdict}", at)
    return assignment


def close(assignment, note, at):
    """Close an assignment: its work is done or no longer needed."""
    if assignment.status in ("closed", "retired"):
        return assignment
    assignment.status = "closed"
    assignment.closed_at = at
    assignment.close_note = note
    _cancel_pending(assignment, "closed")
    return assignment


def close_all(incident, note, at):
    """Close every assignment of an incident whose response has ended."""
    rows = db.session.scalars(select(DutyAssignment).filter_by(incident_id=incident.id)).all()
    for assignment in rows:
        close(assignment, note, at)
    return len(rows)


def assignment_incident(assignment):
    from app.incidents.models import Incident

    return db.session.get(Incident, assignment.incident_id)


def remind(assignment, at):
    """At the deadline: mark overdue and remind the department, unless it has answered."""
    if assignment.status != "assigned":
        return f"not reminded: {assignment.status}"
    incident = assignment_incident(assignment)
    assignment.overdue_at = at
    assignment.reminded_at = at
    _page_department(
        incident,
        assignment,
        at,
        key=f"duty-remind-{assignment.id}-{assignment.deadline_at.timestamp():.0f}",
        kind="duty_reminder",
        subject=f"职责确认已超时：{assignment.duty.title}",
        body="请立即确认，逾期将上报指挥部。",
    )
    record(incident, "duty_overdue", f"{assignment.department.name}: reminded", at)
    return "reminded"


def take_chain_step(row, chain, incident, at):
    """Move a late row (a duty assignment, a task's share) one step up the escalation
    chain: returns (step, the person it reaches or None), or None when the chain is used
    up. `escalated_at` keeps the first step's instant."""
    if row.escalation_step >= len(chain):
        return None
    step = chain[row.escalation_step]
    row.escalation_step += 1
    if row.escalated_at is None:
        row.escalated_at = at
    return step, chain_person(incident, step, at)


def escalate(assignment, at):
    """After each grace period: tell the next step of the plan's chain, unless the
    department has answered."""
    if assignment.status != "assigned":
        return f"not escalated: {assignment.status}"
    incident = assignment_incident(assignment)
    chain, _ = escalation_of(incident.plan)
    taken = take_chain_step(assignment, chain, incident, at)
    if taken is None:
        return "chain exhausted"
    step, person = taken
    if person is not None:
        notify(
            key=(
                f"duty-escalate-{assignment.id}-{assignment.deadline_at.timestamp():.0f}"
                f"-{assignment.escalation_step}"
            ),
            kind="duty_escalation",
            subject=f"职责未确认：{assignment.department.name}",
            body=f"{assignment.duty.title}（截止 {local_iso(assignment.deadline_at)}）",
            incident=incident,
            person=person,
            at=at,
        )
    if person is None:
        record(
            incident, "duty_escalated", f"{assignment.department.name}: {step}, nobody on duty", at
        )
        return f"escalated to {step}: nobody on duty"
    record(incident, "duty_escalated", f"{assignment.department.name}: to {step}", at)
    return f"escalated to {step}"


def hand_over(person):
    """Someone who cannot be reached any more: whoever is on duty for their department
    now is told of every duty it still has to answer, in each open incident."""
    from app.clock.services import now
    from app.incidents.models import Incident

    rows = db.session.scalars(
        select(DutyAssignment)
        .join(Incident, Incident.id == DutyAssignment.incident_id)
        .where(
            DutyAssignment.department_id == person.department_id,
            DutyAssignment.status.in_(OPEN_STATUSES),
            Incident.status != "closed",
        )
        .order_by(DutyAssignment.id)
    ).all()
    told = 0
    for assignment in rows:
        incident = assignment_incident(assignment)
        at = now(incident)
        standing_in = liaison_of(assignment.department_id, at)
        if standing_in is None or standing_in.id == person.id:
            continue
        notify(
            key=f"duty-handover-{assignment.id}-{uuid.uuid4().hex}",
            kind="duty_handover",
            subject=f"接替确认职责：{assignment.duty.title}",
            body=f"{person.name} 暂无法联系；请于 {local_iso(assignment.deadline_at)} 前确认。",
            incident=incident,
            person=standing_in,
            at=at,
        )
        told += 1
    log.info("person %s unreachable: %d duties handed over", person.code, told)
    return told


def status_of(assignment):
    """The status a person reads: overdue and escalated are stages of an open duty."""
    if assignment.status == "assigned" and assignment.escalated_at is not None:
        return "escalated"
    if assignment.status == "assigned" and assignment.overdue_at is not None:
        return "overdue"
    return assignment.status


def reconcile_checklist(incident, at):
    """Keep the checklist lines the incident's level and phase ask for, retire the open
    lines they no longer ask for, and add the new ones. Returns counts of each."""
    from app.process.services import checklist_for

    counts = {"added": 0, "kept": 0, "retired": 0}
    # Before a level is confirmed, the warning lines are those of the suggested level.
    level = incident.level or incident.suggested_level
    wanted = {}
    if level is not None and incident.phase is not None:
        items = checklist_for(incident.plan, level, incident.phase, incident.kind)
        wanted = {item["code"]: item for item in items}
    existing = {
        (item.phase, item.code): item
        for item in db.session.scalars(select(ChecklistItem).filter_by(incident_id=incident.id))
    }
    for (phase, code), item in existing.items():
        if item.status == "open" and (phase != incident.phase or code not in wanted):
            item.status = "retired"
            item.retired_at = at
            counts["retired"] += 1
    for code, entry in wanted.items():
        item = existing.get((incident.phase, code))
        if item is None:
            db.session.add(
                ChecklistItem(
                    incident_id=incident.id,
                    phase=incident.phase,
                    code=code,
                    level=level,
                    text=entry["text"],
                    text_en=entry.get("text_en"),
                    measure=entry.get("measure"),
                    status="open",
                    created_at=at,
                )
            )
            counts["added"] += 1
        elif item.status == "retired":
            item.status, item.retired_at, item.level = "open", None, level
            counts["added"] += 1
        else:
            item.level = level
            counts["kept"] += 1
    db.session.flush()
    return counts


def tick_off(item, person, at, user=None):
    """Mark a checklist line done, saying who did."""
    if item.status == "retired":
        raise Conflict("the checklist line was retired by a level or phase change")
    if item.status == "done":
        return item
    item.status, item.done_at = "done", at
    item.done_by_id = person.id if person is not None else None
    item.done_by_user_id = user.id if user is not None else None
    return item
