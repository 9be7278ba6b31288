"""Setting up the command for an incident from the plan and the on-duty roster."""

import logging

from sqlalchemy import select

from app.extensions import db
from app.organisation.models import (
    CommandPost,
    Department,
    GroupMember,
    Person,
    WorkingGroup,
)

log = logging.getLogger(__name__)


def department(code):
    return db.session.scalar(select(Department).filter_by(code=code))


def on_duty(department_id, role):
    """Who holds a role in a department now: the first on-duty person, else nobody."""
    return db.session.scalar(
        select(Person)
        .filter_by(department_id=department_id, role=role, on_duty=True)
        .order_by(Person.id)
        .limit(1)
    )


def liaison_of(department_id):
    return on_duty(department_id, "liaison")


def set_up_command(incident, at):
    """Create the command post and the plan's working groups, filled from who is on duty."""
    document = incident.plan.document
    command = document.get("command", {})
    commander_dept = department(command.get("commander_department", "government"))
    office_dept = department(command.get("office_department", "market_supervision"))
    commander = on_duty(commander_dept.id, "commander") if commander_dept else None

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
            person = liaison_of(dept.id) if dept else None
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


def commander_of(incident):
    post = command_post(incident)
    return post.commander if post else None


def commander_on_duty(plan):
    """The on-duty commander of the department the plan puts in command."""
    code = plan.document.get("command", {}).get("commander_department", "government")
    dept = department(code)
    return on_duty(dept.id, "commander") if dept else None


def office_liaison(incident):
    post = command_post(incident)
    if post is None or post.office_department_id is None:
        return None
    return liaison_of(post.office_department_id)
