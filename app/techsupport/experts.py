"""Experts called to an incident (专家会商): assigning one for a role, releasing them, and
finding who can be called for an expertise.

Experts are not paged people (they have no Person row or inbox), so each assignment and
release goes on the incident's timeline, where the command reads it; the office calls
the expert by phone.
"""

import logging

from sqlalchemy import select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.services import record
from app.techsupport.models import Expert, ExpertAssignment
from app.techsupport.registry import check_expertise

log = logging.getLogger(__name__)


def locked_expert(expert_id):
    """The expert, read afresh and held until the transaction ends, so two assignments
    of one expert cannot both pass the checks."""
    return db.session.scalar(
        select(Expert)
        .where(Expert.id == expert_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def open_assignments(expert, at=None):
    """The expert's assignments not released (by `at`, when given)."""
    query = select(ExpertAssignment).where(ExpertAssignment.expert_id == expert.id)
    if at is None:
        query = query.where(ExpertAssignment.released_at.is_(None))
    else:
        query = query.where(
            ExpertAssignment.assigned_at <= at,
            ExpertAssignment.released_at.is_(None) | (ExpertAssignment.released_at > at),
        )
    return db.session.scalars(query.order_by(ExpertAssignment.id)).all()


def assign_expert(incident, expert, role, by, at):
    """Call an available expert to the incident for a role; 409 when the expert is not
    available, is already assigned to this incident, or the incident is closed."""
    role = (role or "").strip()
    if not role:
        raise InvalidInput("assignment refused", {"role": ["say what the expert is called for"]})
    if incident.status == "closed":
        raise Conflict(f"incident {incident.id} is closed")
    expert = locked_expert(expert.id)
    if not expert.available:
        raise Conflict(f"expert {expert.code} is not available")
    if any(a.incident_id == incident.id for a in open_assignments(expert)):
        raise Conflict(f"expert {expert.code} is already assigned to incident {incident.id}")

    assignment = ExpertAssignment(
        incident_id=incident.id, expert_id=expert.id, role=role, assigned_by=by, assigned_at=at
    )
    db.session.add(assignment)
    db.session.flush()
    record(incident, "expert_assigned", f"{expert.name} ({expert.code}): {role}", at)
    log.info("incident %s: expert %s assigned as %s", incident.id, expert.code, role)
    return assignment


def release_expert(assignment, at):
    """The expert's work on the incident is over; 409 when already released."""
    if assignment.released_at is not None:
        raise Conflict(f"expert assignment {assignment.id} is already released")
    if at < assignment.assigned_at:
        raise InvalidInput("release refused", {"at": ["before the expert was assigned"]})
    assignment.released_at = at
    db.session.flush()
    from app.incidents.models import Incident

    incident = db.session.get(Incident, assignment.incident_id)
    expert = assignment.expert
    record(incident, "expert_released", f"{expert.name} ({expert.code}): {assignment.role}", at)
    log.info("incident %s: expert %s released", incident.id, expert.code)
    return assignment


def experts_for(expertise, at):
    """Available experts with this expertise (every available expert when None): on-call
    ones first, then those not assigned to any incident at `at`, then by code."""
    return directory(expertise=expertise, available=True, at=at)


def directory(*, at, expertise=None, available=None, on_call=None):
    """The pool filtered by expertise, availability and on call, in the order the office
    calls them: available, on call, not busy at `at` (assigned to no incident), by code."""
    if expertise is not None:
        check_expertise([expertise])
    query = select(Expert)
    if available is not None:
        query = query.filter_by(available=available)
    if on_call is not None:
        query = query.filter_by(on_call=on_call)
    experts = db.session.scalars(query).all()
    if expertise is not None:
        experts = [e for e in experts if expertise in (e.expertise or [])]
    busy = busy_at([e.id for e in experts], at)
    return sorted(experts, key=lambda e: (not e.available, not e.on_call, e.id in busy, e.code))


def busy_at(expert_ids, at):
    """Which of these experts are assigned to an incident at `at`."""
    if not expert_ids:
        return set()
    rows = db.session.scalars(
        select(ExpertAssignment.expert_id).where(
            ExpertAssignment.expert_id.in_(expert_ids),
            ExpertAssignment.assigned_at <= at,
            ExpertAssignment.released_at.is_(None) | (ExpertAssignment.released_at > at),
        )
    )
    return set(rows)


def assignments_of(incident):
    """The incident's expert assignments, open ones first, then newest first."""
    return db.session.scalars(
        select(ExpertAssignment)
        .where(ExpertAssignment.incident_id == incident.id)
        .order_by(ExpertAssignment.released_at.is_not(None), ExpertAssignment.id.desc())
    ).all()
