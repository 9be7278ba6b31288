"""A failed rapid test stops the supplier at once and its open tasks move elsewhere,
through a real worker; a drill never touches the supplier's own row."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock.models import ScheduledAction
from app.clock.services import tick
from app.coordination.models import Notification
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.models import TimelineEntry
from app.supply import dispatch
from app.supply.capacity import active_suppliers
from app.supply.models import (
    OPEN_TASK_STATUSES,
    AllocationRun,
    Supplier,
    SupplierSuspension,
    SupplyTask,
)
from app.supply.services import (
    accept_task,
    allocate_meal,
    excluded_suppliers,
    open_suspension,
    start_batch,
    supplier_by_code,
)
from app.techsupport.gate import reinstate_supplier
from app.techsupport.models import Inspection
from app.techsupport.services import record_rapid_test, retain_samples
from tests.helpers import (
    T0,
    bearer,
    csrf_token,
    incident,
    make_user,
    open_shelters,
    set_clock,
    sign_in,
)

LUNCH = T0 + timedelta(hours=4)


def _fail(supplier, found, at):
    return record_rapid_test(
        supplier=supplier,
        incident=found,
        analyte="亚硝酸盐",
        method="快检",
        value=45.0,
        limit=30.0,
        unit="mg/kg",
        tested_by="inspector",
        at=at,
    )


def _planned_lunch(drill=True):
    found = incident(drill=drill)
    open_shelters(found, {"ZH-SH-01": 3960, "ZH-SH-02": 2370, "ZH-SH-05": 3960})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    db.session.commit()
    busiest = max(tasks, key=lambda t: t.meals).supplier
    return found, busiest


def test_a_failed_test_suspends_and_moves_open_tasks(region, run_worker):
    found, supplier = _planned_lunch()
    moved = db.session.scalar(
        select(func.count(SupplyTask.id)).filter_by(supplier_id=supplier.id, incident_id=found.id)
    )

    test = _fail(supplier, found, T0 + timedelta(minutes=30))
    db.session.commit()
    assert not test.passed
    tick(T0 + timedelta(minutes=30), [found.id])
    run_worker()
    dispatch.relay()
    run_worker()

    db.session.expire_all()
    open_left = db.session.scalar(
        select(func.count(SupplyTask.id)).where(
            SupplyTask.supplier_id == supplier.id, SupplyTask.status != "cancelled"
        )
    )
    assert open_left == 0
    replacements = db.session.scalars(
        select(SupplyTask).where(SupplyTask.replaces_id.is_not(None))
    ).all()
    assert replacements and all(t.supplier_id != supplier.id for t in replacements)
    assert all(t.status == "notified" for t in replacements)
    allocated = db.session.scalar(
        select(func.sum(SupplyTask.meals)).where(
            SupplyTask.incident_id == found.id, SupplyTask.status != "cancelled"
        )
    )
    assert allocated == 3960 + 2370 + 3960
    assert moved >= 1
    told = db.session.scalars(
        select(Notification.kind).filter_by(incident_id=found.id, kind="rapid_test_failed")
    ).all()
    assert len(told) == 2  # the commander and market supervision


def test_a_drill_suspension_leaves_the_supplier_row_active(region, run_worker):
    found, supplier = _planned_lunch(drill=True)

    _fail(supplier, found, T0)
    db.session.commit()

    assert db.session.get(Supplier, supplier.id).status == "active"
    suspension = db.session.scalar(select(SupplierSuspension))
    assert suspension.drill and suspension.incident_id == found.id


def test_a_real_suspension_marks_the_supplier(region):
    found, supplier = _planned_lunch(drill=False)

    _fail(supplier, found, T0)
    db.session.commit()

    assert db.session.get(Supplier, supplier.id).status == "suspended"


def test_a_drill_suspension_does_not_reach_other_incidents(region):
    drill, supplier = _planned_lunch(drill=True)
    _fail(supplier, drill, T0)
    db.session.commit()

    other = incident(drill=True)
    open_shelters(other, {"ZH-SH-01": 3960})
    _, tasks = allocate_meal(other, "lunch", LUNCH, T0)

    assert supplier.id in {t.supplier_id for t in tasks}


def test_a_passing_test_changes_nothing(region):
    found, supplier = _planned_lunch()

    test = record_rapid_test(
        supplier=supplier,
        incident=found,
        analyte="亚硝酸盐",
        method="快检",
        value=3.0,
        limit=30.0,
        unit="mg/kg",
        tested_by="inspector",
        at=T0,
    )

    assert test.passed
    assert db.session.scalar(select(func.count(SupplierSuspension.id))) == 0


def test_samples_under_125_grams_are_refused(region):
    found, supplier = _planned_lunch()
    task = db.session.scalar(select(SupplyTask).filter_by(incident_id=found.id).limit(1))
    accept_task(task, T0)
    batch = start_batch(task, dishes=["米饭", "青菜"], at=T0)

    with pytest.raises(InvalidInput):
        retain_samples(batch, at=T0, kept_at="fridge", grams=100)
    samples = retain_samples(batch, at=T0, kept_at="fridge", grams=150)

    assert len(samples) == 2
    assert all(s.keep_until - s.retained_at == timedelta(hours=48) for s in samples)


def test_supplier_codes_are_checked(region):
    with pytest.raises(InvalidInput):
        supplier_by_code("ZH-SUP-999")


# The gate: once only, everywhere it holds, and the way back


def _open_tasks(supplier, found):
    return db.session.scalar(
        select(func.count(SupplyTask.id)).where(
            SupplyTask.supplier_id == supplier.id,
            SupplyTask.incident_id == found.id,
            SupplyTask.status.in_(OPEN_TASK_STATUSES),
        )
    )


def test_a_second_failure_while_suspended_suspends_once_and_moves_tasks_once(region, run_worker):
    found, supplier = _planned_lunch()

    _fail(supplier, found, T0 + timedelta(minutes=10))
    _fail(supplier, found, T0 + timedelta(minutes=20))
    db.session.commit()
    tick(T0 + timedelta(minutes=20), [found.id])
    run_worker()

    assert db.session.scalar(select(func.count(SupplierSuspension.id))) == 1
    actions = db.session.scalars(select(ScheduledAction).filter_by(kind="reallocate_supplier"))
    assert len(actions.all()) == 1
    runs = db.session.scalar(
        select(func.count(AllocationRun.id)).filter_by(incident_id=found.id, trigger="reallocation")
    )
    assert runs == 1
    failures = db.session.scalars(
        select(TimelineEntry.event).filter_by(incident_id=found.id, event="rapid_test_failed")
    ).all()
    assert len(failures) == 2  # each failure is on the timeline and told, the stop is one


def test_a_live_suspension_outside_any_incident_moves_tasks_in_every_live_incident(
    region, run_worker
):
    first, _ = _planned_lunch(drill=False)
    second = incident(drill=False)
    open_shelters(second, {"ZH-SH-01": 3960, "ZH-SH-02": 2370, "ZH-SH-05": 3960})
    # Real incidents share a kitchen's capacity: the second one is planned for dinner.
    _, dinner = allocate_meal(second, "dinner", T0 + timedelta(hours=9, minutes=30), T0)
    db.session.commit()
    lunch = db.session.scalars(select(SupplyTask.supplier_id).filter_by(incident_id=first.id))
    supplier = db.session.get(Supplier, min(set(lunch) & {t.supplier_id for t in dinner}))

    _fail(supplier, None, T0 + timedelta(minutes=30))
    db.session.commit()
    tick(T0 + timedelta(minutes=30), [first.id, second.id])
    run_worker()
    dispatch.relay()
    run_worker()
    db.session.expire_all()

    assert _open_tasks(supplier, first) == 0 and _open_tasks(supplier, second) == 0
    for found in (first, second):
        replacements = db.session.scalars(
            select(SupplyTask).where(
                SupplyTask.incident_id == found.id, SupplyTask.replaces_id.is_not(None)
            )
        ).all()
        assert replacements and all(t.status == "notified" for t in replacements)
        assert all(t.supplier_id != supplier.id for t in replacements)
    suspension = db.session.scalar(select(SupplierSuspension))
    assert suspension.incident_id is None and not suspension.drill


def test_a_drill_result_leaves_the_suppliers_own_row_alone(region):
    found, supplier = _planned_lunch(drill=True)
    before = (supplier.status, supplier.risk_colour)

    _fail(supplier, found, T0)
    db.session.commit()
    db.session.expire_all()

    row = db.session.get(Supplier, supplier.id)
    assert (row.status, row.risk_colour) == before


def _reinspect(supplier, at, found=None, passed=True, purpose="reinspection"):
    row = Inspection(supplier_id=supplier.id, incident_id=found.id if found else None,
                     inspector="ms-inspector-1", purpose=purpose, inspected_at=at,
                     checklist=[], serious_findings=0 if passed else 1, minor_findings=0,
                     passed=passed)  # fmt: skip
    db.session.add(row)
    db.session.flush()
    return row


def _retest(supplier, found, at, value=5.0, analyte="亚硝酸盐", purpose="reinspection"):
    return record_rapid_test(supplier=supplier, incident=found, analyte=analyte, method="快检",
                             value=value, limit=30.0, unit="mg/kg", tested_by="inspector",
                             at=at, purpose=purpose)  # fmt: skip


def _suspended(drill=False):
    found, supplier = _planned_lunch(drill=drill)
    _fail(supplier, found, T0 + timedelta(minutes=30))
    db.session.commit()
    return found, supplier, db.session.scalar(select(SupplierSuspension))


def test_reinstatement_is_refused_without_a_passed_reinspection(region):
    found, supplier, suspension = _suspended()
    _reinspect(supplier, T0, purpose="reinspection")  # before the suspension
    _reinspect(supplier, T0 + timedelta(hours=1), passed=False)
    _reinspect(supplier, T0 + timedelta(hours=1), purpose="routine")
    _retest(supplier, found, T0 + timedelta(hours=2))

    with pytest.raises(Conflict, match="re-inspection") as refused:
        reinstate_supplier(suspension, by="commander", reason="ok", at=T0 + timedelta(hours=3))

    assert "re-test" not in str(refused.value)
    assert suspension.lifted_at is None and supplier.status == "suspended"


def test_reinstatement_is_refused_without_a_passed_retest_of_the_analyte(region):
    found, supplier, suspension = _suspended()
    _reinspect(supplier, T0 + timedelta(hours=1))
    _retest(supplier, found, T0 + timedelta(hours=2), analyte="农药残留")
    _retest(supplier, found, T0 + timedelta(hours=2), purpose="routine")
    _retest(supplier, found, T0 + timedelta(hours=2), value=35.0)

    with pytest.raises(Conflict, match="re-test") as refused:
        reinstate_supplier(suspension, by="commander", reason="ok", at=T0 + timedelta(hours=3))

    assert "亚硝酸盐" in str(refused.value) and "re-inspection (" not in str(refused.value)
    assert db.session.scalar(select(func.count(SupplierSuspension.id))) == 1


def test_reinstatement_with_both_makes_the_supplier_serve_again(region):
    found, supplier, suspension = _suspended(drill=False)
    assert supplier.id in excluded_suppliers(found, [supplier])
    inspection = _reinspect(supplier, T0 + timedelta(hours=1))
    retest = _retest(supplier, found, T0 + timedelta(hours=2))
    at = T0 + timedelta(hours=3)

    reinstate_supplier(suspension, by="commander", reason="整改到位", at=at)
    db.session.commit()

    assert (suspension.lifted_at, suspension.lifted_by, suspension.lift_reason) == (
        at, "commander", "整改到位")  # fmt: skip
    assert (suspension.reinspection_id, suspension.retest_id) == (inspection.id, retest.id)
    assert db.session.get(Supplier, supplier.id).status == "active"
    told = db.session.scalars(select(Notification).filter_by(kind="supplier_reinstated")).all()
    assert len(told) == 2
    events = db.session.scalars(select(TimelineEntry.event).filter_by(incident_id=found.id))
    assert "supplier_reinstated" in events.all()
    with pytest.raises(Conflict, match="lifted"):
        reinstate_supplier(suspension, by="commander", reason="again", at=at)

    later = incident(drill=False)
    assert supplier.id not in excluded_suppliers(later, [supplier])
    assert supplier in active_suppliers()


def test_a_drill_reinstatement_lifts_the_drill_suspension_only(region):
    found, supplier, suspension = _suspended(drill=True)
    _reinspect(supplier, T0 + timedelta(hours=1), found)
    _retest(supplier, found, T0 + timedelta(hours=2))
    other_drill = incident(drill=True)

    reinstate_supplier(suspension, by="commander", reason="drill", at=T0 + timedelta(hours=3))
    db.session.commit()

    assert suspension.lifted_at is not None
    assert db.session.get(Supplier, supplier.id).status == "active"
    assert supplier.id not in excluded_suppliers(found, [supplier])
    assert open_suspension(supplier, other_drill) is None


def test_another_drills_reinspection_does_not_lift_a_drill_suspension(region):
    found, supplier, suspension = _suspended(drill=True)
    other = incident(drill=True)
    _reinspect(supplier, T0 + timedelta(hours=1), other)
    _retest(supplier, other, T0 + timedelta(hours=2))

    with pytest.raises(Conflict, match="re-inspection"):
        reinstate_supplier(suspension, by="commander", reason="no", at=T0 + timedelta(hours=3))


def test_reinstatement_over_the_api_needs_the_commander_and_names_what_is_missing(app, region):
    found, supplier, suspension = _suspended(drill=True)
    set_clock(found, T0 + timedelta(hours=3))
    api = app.test_client()
    commander = bearer(make_user("commander")[1])
    inspector = bearer(make_user("inspector")[1])
    url = f"/api/suspensions/{suspension.id}/reinstate"

    by_inspector = api.post(url, json={"reason": "ok"}, headers=inspector)
    refused = api.post(url, json={"reason": "ok"}, headers=commander)
    blank = api.post(url, json={"reason": "  "}, headers=commander)
    stray = api.post(url, json={"reason": "ok", "force": True}, headers=commander)
    missing = api.post("/api/suspensions/999999/reinstate", json={"reason": "ok"},
                       headers=commander)  # fmt: skip
    _reinspect(supplier, T0 + timedelta(hours=1), found)
    _retest(supplier, found, T0 + timedelta(hours=2))
    db.session.commit()
    allowed = api.post(url, json={"reason": "整改到位"}, headers=commander)

    assert by_inspector.status_code == 403
    assert refused.status_code == 409
    assert "re-inspection" in refused.get_json()["message"]
    assert "re-test" in refused.get_json()["message"]
    assert blank.status_code == 422 and stray.status_code == 422
    assert missing.status_code == 404
    assert allowed.status_code == 200, allowed.get_data(as_text=True)
    assert allowed.get_json()["lifted_at"] == "2026-09-14T03:00:00Z"


def test_the_commander_reinstates_on_the_page(client, region):
    found, supplier, suspension = _suspended(drill=True)
    set_clock(found, T0 + timedelta(hours=3))
    make_user("commander", username="cmd", password="secret-pass-1")
    sign_in(client, "cmd", "secret-pass-1")
    page = client.get("/food-safety?lang=en").get_data(as_text=True)
    url = f"/food-safety/suspensions/{suspension.id}/reinstate?lang=en"
    form = {"csrf_token": csrf_token(page), "reason": "整改到位"}

    refused = client.post(url, data=form)
    _reinspect(supplier, T0 + timedelta(hours=1), found)
    _retest(supplier, found, T0 + timedelta(hours=2))
    db.session.commit()
    allowed = client.post(url, data=form)

    assert refused.status_code == 409 and "re-inspection" in refused.get_data(as_text=True)
    assert allowed.status_code == 302
    db.session.expire_all()
    assert db.session.get(SupplierSuspension, suspension.id).lifted_by == "cmd"


def test_meals_no_one_takes_over_are_told_to_the_commander(region, run_worker):
    """A task set by hand at a point whose demand was never opened has nowhere to move:
    the commander hears of its meals rather than losing them."""
    from app.coordination.models import Notification
    from app.supply.services import assign_by_hand, demand_point_by_code

    found = incident()
    supplier = supplier_by_code("ZH-SUP-010")
    task = assign_by_hand(found, supplier, demand_point_by_code("ZH-SH-01"), meal="lunch",
                          serve_at=LUNCH, meals=100, by_diet=None, at=T0)  # fmt: skip
    db.session.commit()

    _fail(supplier, found, T0 + timedelta(minutes=30))
    db.session.commit()
    tick(T0 + timedelta(minutes=30), [found.id])
    run_worker()

    db.session.expire_all()
    told = db.session.scalars(
        select(Notification).filter_by(incident_id=found.id, kind="meals_not_replaced")
    ).all()
    assert db.session.get(SupplyTask, task.id).status == "cancelled"
    assert len(told) == 1 and told[0].subject.endswith(supplier.name)
    assert "100" in told[0].subject
