"""A failed rapid test stops the supplier at once and its open tasks move elsewhere,
through a real worker; a drill never touches the supplier's own row."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock.services import tick
from app.coordination.models import Notification
from app.errors import InvalidInput
from app.extensions import db
from app.supply import dispatch
from app.supply.models import Supplier, SupplierSuspension, SupplyTask
from app.supply.services import accept_task, allocate_meal, start_batch, supplier_by_code
from app.techsupport.services import record_rapid_test, retain_samples
from tests.helpers import T0, incident, open_shelters

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
