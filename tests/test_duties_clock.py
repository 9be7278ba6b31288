"""The statutory clock: duties assigned on activation, reminders and escalations fired
through a real worker exactly once, and not at all once confirmed."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock.models import ScheduledAction
from app.clock.services import tick
from app.coordination.models import Notification
from app.duties.models import DutyAssignment
from app.duties.services import confirm
from app.errors import Forbidden
from app.extensions import db
from app.organisation.models import CommandPost, GroupMember, Person, WorkingGroup
from app.organisation.services import department, liaison_of
from tests.helpers import T0, incident, set_clock


def _assignment(found, code):
    return db.session.scalar(
        select(DutyAssignment)
        .join(DutyAssignment.department)
        .where(DutyAssignment.incident_id == found.id)
        .filter_by(code=code)
        .order_by(DutyAssignment.id)
        .limit(1)
    )


def _kinds(found):
    rows = db.session.scalars(select(Notification.kind).filter_by(incident_id=found.id))
    return sorted(rows)


def test_activation_sets_up_command_groups_and_duties(region):
    found = incident(level="II")

    post = db.session.scalar(select(CommandPost).filter_by(incident_id=found.id))
    assert post.commander.role == "commander" and post.commander.on_duty
    groups = db.session.scalars(select(WorkingGroup).filter_by(incident_id=found.id)).all()
    assert groups and all(g.name for g in groups)
    seated = db.session.scalars(
        select(GroupMember).join(WorkingGroup).filter_by(incident_id=found.id)
    )
    assert all(member.person.on_duty for member in seated)
    assigned = db.session.scalar(
        select(func.count(DutyAssignment.id)).filter_by(incident_id=found.id)
    )
    assert assigned == 35


def test_level_iv_assigns_fewer_duties_than_level_ii(region):
    low = incident(level="IV")
    high = incident(level="II")

    def count(found):
        return db.session.scalar(
            select(func.count(DutyAssignment.id)).filter_by(incident_id=found.id)
        )

    assert count(low) < count(high)


def test_deadline_reminds_then_escalates_once(region, run_worker):
    found = incident()
    assignment = _assignment(found, "education")
    deadline = assignment.deadline_at

    set_clock(found, deadline)
    assert tick(deadline, [found.id]) >= 1
    assert tick(deadline, [found.id]) == 0  # a duplicate tick fires nothing new
    run_worker()
    db.session.expire_all()
    assert _assignment(found, "education").overdue_at == deadline
    assert _assignment(found, "education").escalated_at is None

    later = deadline + timedelta(minutes=30)
    set_clock(found, later)
    tick(later, [found.id])
    run_worker()
    run_worker()
    db.session.expire_all()
    assert _assignment(found, "education").escalated_at == later
    escalations = [k for k in _kinds(found) if k == "duty_escalation"]
    commander_and_office = 2
    assert len(escalations) == commander_and_office * sum(
        1
        for a in db.session.scalars(select(DutyAssignment).filter_by(incident_id=found.id))
        if a.escalated_at is not None
    )


def test_a_confirmed_duty_is_never_reminded(region, run_worker):
    found = incident()
    for assignment in db.session.scalars(select(DutyAssignment).filter_by(incident_id=found.id)):
        confirm(assignment, liaison_of(assignment.department_id), T0 + timedelta(minutes=5))
    db.session.commit()

    end = T0 + timedelta(hours=3)
    set_clock(found, end)
    tick(end, [found.id])
    run_worker()

    assert "duty_reminder" not in _kinds(found)
    assert "duty_escalation" not in _kinds(found)
    done = db.session.scalars(
        select(ScheduledAction.outcome).where(ScheduledAction.kind == "duty_remind")
    ).all()
    assert set(done) == {"confirmed in time"}


def test_a_liaison_confirms_only_for_their_own_department(region):
    found = incident()
    assignment = _assignment(found, "education")
    other = liaison_of(department("health").id)

    with pytest.raises(Forbidden):
        confirm(assignment, other, T0)


def test_an_off_duty_liaison_is_not_paged(region):
    found = incident()
    assignment = _assignment(found, "commerce")
    paged = db.session.scalars(
        select(Person)
        .join(Notification, Notification.person_id == Person.id)
        .where(Notification.incident_id == found.id, Notification.kind == "duty_assigned")
    ).all()

    assert assignment is not None
    assert paged and all(person.on_duty for person in paged)
