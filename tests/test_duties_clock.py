"""The statutory clock: duties assigned on activation, confirmed or objected to, reminded
at the deadline and escalated along the plan's chain through a real worker, exactly once
across duplicate ticks and lost jobs, and not at all once answered."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock.models import ScheduledAction
from app.clock.services import requeue_lost, tick
from app.coordination.models import Notification
from app.duties.models import ChecklistItem, DutyAssignment
from app.duties.services import close, confirm, decide_objection, object_to, status_of
from app.errors import Conflict, Forbidden, InvalidInput
from app.extensions import db
from app.organisation.models import CommandPost, GroupMember, Person, WorkingGroup
from app.organisation.services import add_shift, department, liaison_of, office_liaison
from app.process.response import end_response, set_level
from app.queue import get_redis
from tests.helpers import T0, first_assignment, incident, set_clock

ESCALATE_AFTER = timedelta(minutes=30)


def _assignment(found, code):
    return first_assignment(found, code)


def _messages(found, kind):
    return db.session.scalars(
        select(Notification).filter_by(incident_id=found.id, kind=kind).order_by(Notification.id)
    ).all()


def _count(found, **where):
    return db.session.scalar(
        select(func.count(DutyAssignment.id)).filter_by(incident_id=found.id, **where)
    )


def _advance(found, at, run_worker, ticks=1):
    set_clock(found, at)
    fired = sum(tick(at, [found.id]) for _ in range(ticks))
    run_worker()
    db.session.expire_all()
    return fired


def _confirm_all_but(found, codes, at):
    """Every department confirms, but for the first duty of each department in `codes`."""
    left = {_assignment(found, code).id for code in codes}
    for assignment in db.session.scalars(select(DutyAssignment).filter_by(incident_id=found.id)):
        if assignment.id not in left:
            confirm(assignment, liaison_of(assignment.department_id, at), at)
    db.session.commit()


def _person(message):
    return db.session.get(Person, message.person_id)


def test_activation_sets_up_command_groups_and_duties(region):
    found = incident(level="II")

    post = db.session.scalar(select(CommandPost).filter_by(incident_id=found.id))
    assert post.commander.role == "commander" and post.commander.on_duty
    groups = db.session.scalars(select(WorkingGroup).filter_by(incident_id=found.id)).all()
    assert {g.code for g in groups} >= {"supply", "food_safety", "medical", "news"}
    seated = db.session.scalars(
        select(GroupMember).join(WorkingGroup).filter_by(incident_id=found.id)
    ).all()
    assert seated and all(member.person.on_duty for member in seated)
    # The level's duties only: the duties of a poisoning report wait for one.
    assert _count(found) == 35
    assert all(
        a.deadline_at == T0 + timedelta(minutes=a.duty.confirm_within_minutes)
        for a in found_assignments(found)
    )


def found_assignments(found):
    return db.session.scalars(select(DutyAssignment).filter_by(incident_id=found.id)).all()


def test_level_iv_assigns_fewer_duties_than_level_ii(region):
    assert _count(incident(level="IV")) < _count(incident(level="II"))


def test_deadline_reminds_then_escalates_along_the_chain_once(region, run_worker):
    found = incident()
    _confirm_all_but(found, {"education"}, T0 + timedelta(minutes=5))
    deadline = _assignment(found, "education").deadline_at

    assert _advance(found, deadline, run_worker, ticks=3) == 1  # duplicate ticks add nothing
    education = _assignment(found, "education")
    assert education.overdue_at == education.reminded_at == deadline
    assert education.escalated_at is None and status_of(education) == "overdue"
    assert len(_messages(found, "duty_reminder")) == 1

    _advance(found, deadline + ESCALATE_AFTER, run_worker, ticks=2)
    escalations = _messages(found, "duty_escalation")
    assert [m.person_id for m in escalations] == [office_liaison(found).id]
    assert _assignment(found, "education").escalated_at == deadline + ESCALATE_AFTER
    assert status_of(_assignment(found, "education")) == "escalated"

    _advance(found, deadline + 2 * ESCALATE_AFTER, run_worker, ticks=2)
    escalations = _messages(found, "duty_escalation")
    commander = db.session.scalar(select(CommandPost).filter_by(incident_id=found.id)).commander
    assert [m.person_id for m in escalations] == [office_liaison(found).id, commander.id]
    # The first escalation keeps its instant; the chain is exhausted after two steps.
    assert _assignment(found, "education").escalated_at == deadline + ESCALATE_AFTER
    _advance(found, deadline + timedelta(hours=5), run_worker)
    assert len(_messages(found, "duty_escalation")) == 2
    assert len(_messages(found, "duty_reminder")) == 1


def test_a_confirmed_duty_is_never_reminded(region, run_worker):
    found = incident()
    _confirm_all_but(found, set(), T0 + timedelta(minutes=5))

    _advance(found, T0 + timedelta(hours=3), run_worker)

    assert not _messages(found, "duty_reminder")
    assert not _messages(found, "duty_escalation")
    outcomes = db.session.scalars(
        select(ScheduledAction.outcome).where(
            ScheduledAction.kind.in_(["duty_remind", "duty_escalate"])
        )
    ).all()
    assert outcomes and set(outcomes) == {"cancelled: confirmed"}


def test_a_reminder_lost_with_its_worker_fires_once_after_the_restart(region, run_worker):
    found = incident()
    _confirm_all_but(found, {"education"}, T0 + timedelta(minutes=5))
    deadline = _assignment(found, "education").deadline_at
    set_clock(found, deadline)

    assert tick(deadline, [found.id]) == 1
    get_redis().flushdb()  # the worker died with the job and Redis kept nothing
    assert tick(deadline, [found.id]) == 0  # enqueued already: a tick alone does not repeat
    assert requeue_lost([found.id], stale_seconds=0, min_age_seconds=0) == 1
    assert tick(deadline, [found.id]) == 1
    tick(deadline, [found.id])
    run_worker()
    # The same job run again, as a restarted worker might: it claims nothing.
    from workers.jobs import run_scheduled_action

    reminded = db.session.scalar(
        select(ScheduledAction.id).filter_by(
            kind="duty_remind", subject_id=_assignment(found, "education").id
        )
    )
    db.session.commit()
    assert run_scheduled_action(reminded) == "already done"
    assert len(_messages(found, "duty_reminder")) == 1


def test_a_liaison_confirms_and_objects_only_for_their_own_department(region):
    found = incident()
    assignment = _assignment(found, "education")
    other = liaison_of(department("health").id)

    with pytest.raises(Forbidden):
        confirm(assignment, other, T0)
    with pytest.raises(Forbidden):
        object_to(assignment, other, "not ours", T0)
    assert assignment.status == "assigned"


def test_an_objection_goes_to_the_commander_and_stops_the_clock(region, run_worker):
    found = incident()
    _confirm_all_but(found, {"education"}, T0 + timedelta(minutes=5))
    assignment = _assignment(found, "education")
    liaison = liaison_of(assignment.department_id)

    with pytest.raises(InvalidInput) as refused:
        object_to(assignment, liaison, "  ", T0 + timedelta(minutes=10))
    assert "reason" in refused.value.errors
    object_to(assignment, liaison, "学校停课，无安置任务", T0 + timedelta(minutes=10))
    db.session.commit()
    [message] = _messages(found, "duty_objection")
    assert "学校停课" in message.body and _person(message).role == "commander"

    _advance(found, T0 + timedelta(hours=3), run_worker)
    assert not _messages(found, "duty_reminder") and status_of(assignment) == "objected"
    with pytest.raises(Conflict):
        object_to(_assignment(found, "education"), liaison, "again", T0 + timedelta(hours=3))


def test_an_upheld_objection_restarts_the_clock_and_a_withdrawn_one_closes(region, run_worker):
    found = incident()
    _confirm_all_but(found, {"education", "health"}, T0 + timedelta(minutes=5))
    education = _assignment(found, "education")
    health = _assignment(found, "health")
    at = T0 + timedelta(minutes=10)
    object_to(education, liaison_of(education.department_id), "不涉及", at)
    object_to(health, liaison_of(health.department_id), "不涉及", at)

    upheld_at = T0 + timedelta(minutes=20)
    decide_objection(education, uphold=True, reason="安置点设在学校", at=upheld_at)
    decide_objection(health, uphold=False, reason="同意", at=upheld_at)
    db.session.commit()
    assert education.status == "assigned"
    assert education.deadline_at == upheld_at + timedelta(minutes=30)
    assert health.status == "closed" and health.close_note == "同意"

    _advance(found, upheld_at + timedelta(minutes=30), run_worker)
    [reminder] = _messages(found, "duty_reminder")
    assert _person(reminder).department.code == "education"


def test_lowering_the_level_retires_duties_and_raising_assigns_them_again(region, run_worker):
    found = incident(level="II")
    higher_only = _assignment(found, "publicity")
    assert higher_only is not None
    at = T0 + timedelta(hours=1)
    _confirm_all_but(found, set(), T0 + timedelta(minutes=5))

    outcome = set_level(found, "IV", reason="预警降级", at=at)
    db.session.commit()
    assert outcome["duties"]["retired"] > 0 and outcome["duties"]["kept"] > 0
    retired = db.session.scalars(
        select(DutyAssignment).filter_by(incident_id=found.id, status="retired")
    ).all()
    assert retired and all(a.closed_at == at for a in retired)
    kept = _count(found, status="confirmed")
    assert kept == outcome["duties"]["kept"]

    later = at + timedelta(hours=1)
    again = set_level(found, "II", reason="预警升级", at=later)
    db.session.commit()
    assert again["duties"]["assigned"] == outcome["duties"]["retired"]
    revived = db.session.get(DutyAssignment, retired[0].id)
    assert revived.status == "assigned" and revived.assigned_at == later
    assert revived.confirmed_at is None and revived.deadline_at == later + timedelta(minutes=30)
    with pytest.raises(Conflict):
        set_level(found, "II", reason="same", at=later)
    with pytest.raises(InvalidInput):
        set_level(found, "II", reason="", at=later)
    with pytest.raises(InvalidInput):
        set_level(found, "V", reason="x", at=later)


def test_ending_the_response_closes_every_duty_and_opens_the_closure_checklist(region):
    found = incident(level="IV")
    response_lines = db.session.scalars(
        select(ChecklistItem).filter_by(incident_id=found.id, phase="response")
    ).all()
    assert response_lines and all(line.status == "open" for line in response_lines)

    end_response(found, at=T0 + timedelta(hours=2), reason="台风影响结束")
    db.session.commit()

    assert found.status == "closed" and found.level is None
    assert _count(found) == _count(found, status="closed")
    pending = db.session.scalar(
        select(func.count(ScheduledAction.id)).filter_by(incident_id=found.id, done_at=None)
    )
    assert pending == 0 or all(
        a.kind == "sitrep"
        for a in db.session.scalars(
            select(ScheduledAction).filter_by(incident_id=found.id, done_at=None)
        )
    )
    assert all(line.status == "retired" for line in response_lines)
    with pytest.raises(Conflict):
        set_level(found, "III", reason="again", at=T0 + timedelta(hours=3))


def test_a_closed_assignment_stays_closed_when_the_level_asks_again(region):
    found = incident(level="II")
    assignment = _assignment(found, "publicity")
    close(assignment, "done", T0 + timedelta(minutes=40))
    set_level(found, "III", reason="down", at=T0 + timedelta(hours=1))
    set_level(found, "II", reason="up", at=T0 + timedelta(hours=2))
    assert db.session.get(DutyAssignment, assignment.id).status == "closed"


def test_the_checklist_keeps_shared_lines_across_a_level_change(region):
    found = incident(level="II")
    before = {
        i.code: i.id
        for i in db.session.scalars(select(ChecklistItem).filter_by(incident_id=found.id))
    }

    counts = set_level(found, "IV", reason="down", at=T0 + timedelta(hours=1))["checklist"]
    db.session.commit()

    after = db.session.scalars(
        select(ChecklistItem).filter_by(incident_id=found.id, status="open")
    ).all()
    assert counts["kept"] > 0 and counts["retired"] > 0
    assert all(item.level == "IV" for item in after)
    kept = [item for item in after if item.code in before]
    assert kept and all(before[item.code] == item.id for item in kept)


def test_the_roster_decides_who_is_paged_and_a_substitute_covers(region):
    commerce = department("commerce")
    standing, substitute = db.session.scalars(
        select(Person).filter_by(department_id=commerce.id, role="liaison").order_by(Person.id)
    ).all()
    assert liaison_of(commerce.id, T0) == standing

    add_shift(
        department_id=commerce.id,
        role="liaison",
        person=substitute,
        substitute=standing,
        starts_at=T0 + timedelta(hours=8),
        ends_at=T0 + timedelta(hours=20),
    )
    db.session.commit()
    assert liaison_of(commerce.id, T0 + timedelta(hours=9)) == substitute
    assert liaison_of(commerce.id, T0 + timedelta(hours=20)) == standing  # the shift is over
    substitute.available = False
    assert liaison_of(commerce.id, T0 + timedelta(hours=9)) == standing
    standing.available = False
    assert liaison_of(commerce.id, T0 + timedelta(hours=9)) is None


def test_the_people_paged_at_activation_are_those_on_shift(region):
    commerce = department("commerce")
    _, night = db.session.scalars(
        select(Person).filter_by(department_id=commerce.id, role="liaison").order_by(Person.id)
    ).all()
    add_shift(
        department_id=commerce.id,
        role="liaison",
        person=night,
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=7),
    )
    found = incident()
    paged = [
        m for m in _messages(found, "duty_assigned") if _person(m).department_id == commerce.id
    ]
    assert paged and all(m.person_id == night.id for m in paged)
    supply = db.session.scalar(select(WorkingGroup).filter_by(incident_id=found.id, code="supply"))
    assert night.id in {member.person_id for member in supply.members}


def test_a_shift_is_refused_naming_the_field(region):
    commerce = department("commerce")
    health_liaison = liaison_of(department("health").id)
    liaison = liaison_of(commerce.id)
    with pytest.raises(InvalidInput) as refused:
        add_shift(
            department_id=commerce.id,
            role="liaison",
            person=health_liaison,
            starts_at=T0,
            ends_at=T0 - timedelta(hours=1),
        )
    assert set(refused.value.errors) == {"person", "ends_at"}
    with pytest.raises(InvalidInput) as refused:
        add_shift(
            department_id=commerce.id,
            role="liaison",
            person=liaison,
            substitute=liaison,
            starts_at=T0,
            ends_at=T0 + timedelta(hours=1),
        )
    assert set(refused.value.errors) == {"substitute"}


def test_a_live_incident_runs_on_the_wall_clock_through_the_relay(app, region, run_worker):
    """Production ticks with the real clock (`queue relay`), through the same code."""
    from app.types import utcnow

    started = utcnow() - timedelta(hours=3)
    found = incident(drill=False, at=started)
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["queue", "relay", "--once"])
    assert result.exit_code == 0, result.output
    run_worker()
    run_worker()
    db.session.expire_all()

    assignments = found_assignments(found)
    assert all(a.reminded_at is not None and a.reminded_at > started for a in assignments)
    assert all(a.escalation_step == 2 for a in assignments)
    assert len(_messages(found, "duty_reminder")) == len(assignments)


def test_a_duty_retired_and_assigned_again_at_one_instant_is_still_chased(region, run_worker):
    found = incident(level="II")
    at = T0 + timedelta(minutes=10)
    boarding = None
    for assignment in found_assignments(found):
        if assignment.duty.code == "edu-boarding-meals":  # levels I and II only
            boarding = assignment
        else:
            confirm(assignment, liaison_of(assignment.department_id), at)
    set_level(found, "IV", reason="down", at=at)
    assert boarding.status == "retired"
    set_level(found, "II", reason="up again", at=at)
    db.session.commit()
    deadline = at + timedelta(minutes=boarding.duty.confirm_within_minutes)
    assert boarding.status == "assigned" and boarding.deadline_at == deadline

    _advance(found, deadline, run_worker)
    # Every duty the level asks for anew waits for a fresh confirmation, this one too.
    reminded = [m.subject for m in _messages(found, "duty_reminder")]
    assert sum(boarding.duty.title in subject for subject in reminded) == 1
