"""A reported suspected food poisoning starts the plan's clock at once: the 2-hour
initial report and the measures, each an assignment with its deadline."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.coordination.models import Notification
from app.duties.models import ChecklistItem, DutyAssignment
from app.duties.services import confirm
from app.errors import InvalidInput
from app.extensions import db
from app.organisation.services import liaison_of
from app.process.response import report_suspected_poisoning, set_level
from app.process.services import latest_plan
from app.supply.services import demand_point_by_code
from tests.helpers import T0, drill_run, set_clock


def _report(**figures):
    plan = latest_plan("zhenhai-catering-supply")
    found = report_suspected_poisoning(
        plan,
        at=T0,
        title="疑似食物中毒（测试）",
        figures={"harmed": 35, **figures},
        demand_point=demand_point_by_code("ZH-SH-01"),
        drill_run=drill_run(),
    )
    db.session.commit()
    return found


def _deadlines(found):
    rows = db.session.scalars(select(DutyAssignment).filter_by(incident_id=found.id))
    return {a.duty.code: (a.department.code, a.deadline_at - a.assigned_at) for a in rows}


def test_a_report_starts_the_initial_report_and_the_measures(region):
    found = _report()

    assert found.kind == "food_safety" and found.status == "open" and found.level is None
    assert found.suggested_level == "IV"  # 30 or more harmed, the shipped plan's table
    assert found.place and found.demand_point_id is not None
    assert _deadlines(found) == {
        "fs-initial-report": ("market_supervision", timedelta(hours=2)),
        "fs-medical-rescue": ("health", timedelta(minutes=30)),
        "fs-seal-and-test": ("market_supervision", timedelta(hours=1)),
        "fs-epidemiological-investigation": ("cdc", timedelta(hours=2)),
    }
    paged = db.session.scalars(
        select(Notification).filter_by(incident_id=found.id, kind="duty_assigned")
    ).all()
    assert len(paged) == 4
    warning = db.session.scalars(
        select(ChecklistItem).filter_by(incident_id=found.id, phase="warning")
    ).all()
    assert all(item.level == "IV" for item in warning)


def test_the_initial_report_is_chased_at_two_hours(region, run_worker):
    from app.clock.services import tick

    found = _report(harmed=120, deaths=1)
    assert found.suggested_level == "II"
    for assignment in db.session.scalars(select(DutyAssignment).filter_by(incident_id=found.id)):
        if assignment.duty.code != "fs-initial-report":
            confirm(assignment, liaison_of(assignment.department_id), T0 + timedelta(minutes=10))
    db.session.commit()

    two_hours = T0 + timedelta(hours=2)
    set_clock(found, two_hours - timedelta(minutes=1))
    tick(two_hours - timedelta(minutes=1), [found.id])
    run_worker()
    assert not db.session.scalars(select(Notification).filter_by(kind="duty_reminder")).all()
    set_clock(found, two_hours)
    tick(two_hours, [found.id])
    tick(two_hours, [found.id])
    run_worker()
    db.session.expire_all()
    [reminder] = db.session.scalars(select(Notification).filter_by(kind="duty_reminder")).all()
    assert "初次报告" in reminder.subject


def test_confirming_the_level_adds_the_level_duties_and_keeps_the_report_ones(region):
    found = _report(harmed=40)
    before = _deadlines(found)

    set_level(found, "IV", reason="确认IV级", at=T0 + timedelta(minutes=20))
    db.session.commit()

    after = _deadlines(found)
    assert set(before) < set(after)
    statuses = {
        a.duty.code: a.status
        for a in db.session.scalars(select(DutyAssignment).filter_by(incident_id=found.id))
    }
    assert all(statuses[code] == "assigned" for code in before)


@pytest.mark.parametrize(
    "figures, field",
    [
        ({"harmed": -1}, "harmed"),
        ({"harmed": 2.5}, "harmed"),
        ({"harmed": True}, "harmed"),
        ({"deaths": 3, "harmed": 2}, "deaths"),
        ({"school": "yes"}, "school"),
    ],
)
def test_a_report_with_bad_figures_is_refused_naming_the_field(region, figures, field):
    plan = latest_plan("zhenhai-catering-supply")
    with pytest.raises(InvalidInput) as refused:
        report_suspected_poisoning(plan, at=T0, title="x", figures=figures, place="某小区")
    assert field in refused.value.errors
    assert db.session.scalars(select(DutyAssignment)).all() == []


def test_a_report_needs_a_place(region):
    plan = latest_plan("zhenhai-catering-supply")
    with pytest.raises(InvalidInput) as refused:
        report_suspected_poisoning(plan, at=T0, title="x", figures={"harmed": 3})
    assert "place" in refused.value.errors
