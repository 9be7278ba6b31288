"""Setting up the command for an incident from the plan and the on-duty roster."""

import logging
from datetime import timedelta

from sqlalchemy import select

from app.errors import InvalidInput
from app.extensions import db
from app.organisation.models import (
    CommandPost,
    Department,
    GroupMember,
    Person,
    RosterShift,
    WorkingGroup,
)
from app.types import local_iso, utcnow

log = logging.getLogger(__name__)


def department(code):
    return db.session.scalar(select(Department).filter_by(code=code))


def on_duty(department_id, role, at=None):
    """Who holds a role in a department at an instant (now by default), or nobody.

    A shift covering the instant decides: its person, or its substitute when the person
    cannot be reached. With no shift, the standing roster: the first on-duty person who
    can be reached, else the first who can (a substitute standing in).
    """
    at = at or utcnow()
    shifts = db.session.scalars(
        select(RosterShift)
        .where(
            RosterShift.department_id == department_id,
            RosterShift.role == role,
            RosterShift.starts_at <= at,
            RosterShift.ends_at > at,
        )
        .order_by(RosterShift.starts_at.desc(), RosterShift.id)
    ).all()
    for shift in shifts:
        for person in (shift.person, shift.substitute):
            if person is not None and person.available:
                return person
    return db.session.scalar(
        select(Person)
        .filter_by(department_id=department_id, role=role, available=True)
        .order_by(Person.on_duty.desc(), Person.id)
        .limit(1)
    )


def liaison_of(department_id, at=None):
    return on_duty(department_id, "liaison", at)


# A roster is kept week by week; a shift longer than a month is a typing error.
MAX_SHIFT = timedelta(days=31)


def add_shift(*, department_id, role, person, starts_at, ends_at, substitute=None, note=None):
    """Put a person on the roster; the substitute must be of the same department and role."""
    errors = {}
    if ends_at <= starts_at:
        errors["ends_at"] = ["must be after starts_at"]
    elif ends_at - starts_at > MAX_SHIFT:
        errors["ends_at"] = [f"a shift lasts at most {MAX_SHIFT.days} days"]
    if person.department_id != department_id or person.role != role:
        errors["person"] = [f"must be a {role} of the department"]
    if substitute is not None and (
        substitute.department_id != department_id or substitute.role != role
    ):
        errors["substitute"] = [f"must be a {role} of the department"]
    if substitute is not None and substitute.id == person.id:
        errors["substitute"] = ["must be someone else"]
    if not errors:
        overlap = db.session.scalar(
            select(RosterShift).where(
                RosterShift.department_id == department_id,
                RosterShift.role == role,
                RosterShift.starts_at < ends_at,
                RosterShift.ends_at > starts_at,
            )
        )
        if overlap is not None:
            errors["starts_at"] = [
                f"overlaps shift {overlap.id} of {overlap.person.name} "
                f"({local_iso(overlap.starts_at)} to {local_iso(overlap.ends_at)}); "
                "one person holds a role at a time"
            ]
    if errors:
        raise InvalidInput("shift refused", errors)
    shift = RosterShift(
        department_id=department_id,
        role=role,
        person_id=person.id,
        substitute_id=substitute.id if substitute else None,
        starts_at=starts_at,
        ends_at=ends_at,
        note=note,
    )
    db.session.add(shift)
    db.session.flush()
    return shift


def set_up_command(incident, at):
    """Create the command post and the plan's working groups, filled from who is on duty."""
    document = incident.plan.document
    command = document.get("command", {})
    commander_dept = department(command.get("commander_department", "government"))
    office_dept = department(command.get("office_department", "market_supervision"))
    commander = on_duty(commander_dept.id, "commander", at) if commander_dept else None

    post = CommandPost(
        incident_id=incident.id,
        commander_id=commander.id if commander else None,
        office_department_id=office_dept.id if office_dept else None,
        set_up_at=at,
    )
    db.session.add(post)

    for entry in document.get("working_groups", []):
        lead = department(entry.get("lead"))
        group = WorkingGroup(
            incident_id=incident.id,
            code=entry["code"],
            name=entry["name"],
            name_en=entry.get("name_en"),
            lead_department_id=lead.id if lead else None,
        )
        db.session.add(group)
        db.session.flush()
        seated = set()
        for code in [entry.get("lead"), *entry.get("members", [])]:
            dept = department(code) if code else None
            person = liaison_of(dept.id, at) if dept else None
            if person is not None and person.id not in seated:
                seated.add(person.id)
                db.session.add(GroupMember(group_id=group.id, person_id=person.id))
    db.session.flush()
    log.info(
        "incident %s: command post set up, commander %s", incident.id, commander and commander.code
    )
    return post


def command_post(incident):
    return db.session.scalar(select(CommandPost).filter_by(incident_id=incident.id))


def commander_of(incident, at=None):
    """The incident's commander, or whoever is on duty for the role if they cannot be
    reached."""
    post = command_post(incident)
    if post is not None and post.commander is not None and post.commander.available:
        return post.commander
    return commander_on_duty(incident.plan, at)


def commander_on_duty(plan, at=None):
    """The on-duty commander of the department the plan puts in command."""
    code = plan.document.get("command", {}).get("commander_department", "government")
    dept = department(code)
    return on_duty(dept.id, "commander", at) if dept else None


def office_liaison(incident, at=None):
    """The liaison on duty at the command's office, or at the office the plan names while
    no command post is set up (a poisoning reported before any level)."""
    post = command_post(incident)
    if post is not None and post.office_department_id is not None:
        return liaison_of(post.office_department_id, at)
    code = incident.plan.document.get("command", {}).get("office_department")
    office = department(code) if code else None
    return liaison_of(office.id, at) if office else None


def chain_person(incident, step, at=None):
    """Who an escalation step of the plan's chain reaches: "office" (the office's liaison
    on duty), "commander" (the incident's commander) or a department code (its liaison)."""
    if step == "office":
        return office_liaison(incident, at)
    if step == "commander":
        return commander_of(incident, at)
    dept = department(step)
    return liaison_of(dept.id, at) if dept else None
