"""Re-planning after a change keeps every task that stays feasible, moves exactly the ones
that do not, says why, and never books a supplier beyond what it can cook."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clock.services import tick
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.supply import capacity
from app.supply.models import AllocationRun, SupplierBooking, SupplyTask
from app.supply.services import (
    accept_task,
    allocate_meal,
    demand_point_by_code,
    open_point,
    replan,
    supplier_by_code,
    suspend_supplier,
)
from tests.helpers import T0, incident, open_shelters, set_clock

LUNCH = T0 + timedelta(hours=4)
# A square of about 2 km around 招宝山体育馆 (ZH-SH-01), in the old town.
OLD_TOWN = {
    "type": "Polygon",
    "coordinates": [
        [[121.69, 29.95], [121.73, 29.95], [121.73, 29.97], [121.69, 29.97], [121.69, 29.95]]
    ],
}


def _open_tasks(found):
    db.session.expire_all()
    return db.session.scalars(
        select(SupplyTask).where(
            SupplyTask.incident_id == found.id, SupplyTask.status != "cancelled"
        )
    ).all()


def _booked(found, supplier):
    return capacity.booked(found, LUNCH).get(supplier.id, 0)


@pytest.fixture
def planned(region):
    """A drill incident with two shelters planned for lunch."""
    found = incident()
    open_shelters(found, {"ZH-SH-01": 3000, "ZH-SH-09": 4000})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    db.session.commit()
    return found, tasks


def test_every_task_is_booked_from_its_supplier(planned):
    found, tasks = planned

    for task in tasks:
        assert _booked(found, task.supplier) >= task.meals
    assert sum(b.booked for b in db.session.scalars(select(SupplierBooking))) == 7000


def test_a_cut_in_capacity_moves_only_what_no_longer_fits(planned):
    found, tasks = planned
    busiest = max(tasks, key=lambda t: t.meals).supplier
    before = {t.id for t in _open_tasks(found)}
    booked = _booked(found, busiest)

    capacity.report_capacity(busiest, found, meal="lunch", meals=booked // 2, valid_from=T0, at=T0)
    run, moved = replan(found, "lunch", LUNCH, T0)
    db.session.commit()

    assert moved and all(t.supplier_id == busiest.id for t in moved)
    assert _booked(found, busiest) <= booked // 2
    kept = before - {t.id for t in moved}
    assert kept <= {t.id for t in _open_tasks(found)}  # nothing else moved
    assert sum(t.meals for t in _open_tasks(found)) == 7000
    assert {m["task"] for m in run.moves} == {t.id for t in moved}
    assert all(f"can cook {booked // 2}" in m["reason"] for m in run.moves)
    assert all(m["replaced_by"] for m in run.moves)
    # What replaced a task went to the same point, and says which task it stands in for.
    for move, task in zip(run.moves, moved, strict=True):
        for new in (db.session.get(SupplyTask, i) for i in move["replaced_by"]):
            assert new.demand_point_id == task.demand_point_id
            assert (
                db.session.get(SupplyTask, new.replaces_id).demand_point_id == new.demand_point_id
            )


def test_accepted_tasks_are_the_last_to_move(region):
    found = incident()
    open_shelters(found, {"ZH-SH-01": 3000, "ZH-SH-02": 2500, "ZH-SH-03": 1500, "ZH-SH-04": 1500})
    _, tasks = allocate_meal(found, "lunch", LUNCH, T0)
    by_supplier = {}
    for task in tasks:
        by_supplier.setdefault(task.supplier_id, []).append(task)
    supplier_id, shared = max(by_supplier.items(), key=lambda kv: len(kv[1]))
    assert len(shared) >= 2, "the instance needs one kitchen serving two shelters"
    accept_task(shared[-1], T0)
    db.session.commit()
    kitchen = shared[0].supplier

    capacity.report_capacity(
        kitchen, found, meal="lunch", meals=shared[-1].meals, valid_from=T0, at=T0
    )
    _, moved = replan(found, "lunch", LUNCH, T0)

    assert shared[-1] not in moved
    assert shared[-1].status == "accepted"
    assert {t.id for t in moved} == {t.id for t in shared[:-1]}


def test_a_hazard_area_moves_the_kitchens_inside_it(planned):
    found, tasks = planned

    hazard = capacity.declare_hazard(found, name="招宝山 内涝", geometry=OLD_TOWN, at=T0)
    inside = capacity.suppliers_in_hazard(found, [t.supplier for t in tasks])
    run, moved = replan(found, "lunch", LUNCH, T0)

    assert hazard.id and inside
    assert {t.supplier_id for t in moved} == set(inside)
    assert not {t.supplier_id for t in _open_tasks(found)} & set(inside)
    assert all("hazard area 招宝山 内涝" in m["reason"] for m in run.moves)


def test_fewer_evacuees_shed_tasks_and_more_get_new_ones(planned):
    found, _tasks = planned
    point = demand_point_by_code("ZH-SH-09")

    open_point(found, point, headcount=1000, at=T0 + timedelta(minutes=5))
    _, moved = replan(found, "lunch", LUNCH, T0 + timedelta(minutes=5))

    served = sum(t.meals for t in _open_tasks(found) if t.demand_point_id == point.id)
    assert served == 1000
    assert all(t.demand_point_id == point.id for t in moved)
    assert all("needs fewer meals" in t.cancel_reason for t in moved)


def test_a_new_headcount_at_a_planned_point_replans_through_a_worker(planned, run_worker):
    found, _tasks = planned
    point = demand_point_by_code("ZH-SH-09")

    open_point(found, point, headcount=1500, at=T0)
    db.session.commit()
    tick(T0)
    run_worker()

    served = sum(t.meals for t in _open_tasks(found) if t.demand_point_id == point.id)
    assert served == 1500


def test_a_suspension_moves_that_kitchen_and_nothing_else(planned, run_worker):
    found, tasks = planned
    kitchen = tasks[0].supplier
    others = {t.id for t in tasks if t.supplier_id != kitchen.id}

    suspend_supplier(kitchen, found, reason="rapid test failed", at=T0)
    db.session.commit()
    tick(T0)
    run_worker()

    open_now = _open_tasks(found)
    assert others <= {t.id for t in open_now}
    assert kitchen.id not in {t.supplier_id for t in open_now}
    assert sum(t.meals for t in open_now) == 7000
    assert _booked(found, kitchen) == 0


def test_a_capacity_report_replans_through_a_worker(planned, run_worker):
    found, tasks = planned
    kitchen = tasks[0].supplier

    capacity.report_capacity(kitchen, found, meal="lunch", meals=0, valid_from=T0, at=T0)
    db.session.commit()
    set_clock(found, T0)
    tick(T0)
    run_worker()

    assert kitchen.id not in {t.supplier_id for t in _open_tasks(found)}
    runs = db.session.scalars(select(AllocationRun).filter_by(trigger="replan")).all()
    assert runs and runs[-1].moves


def test_booking_beyond_capacity_is_a_conflict(planned):
    found, tasks = planned
    kitchen = tasks[0].supplier
    limit = _booked(found, kitchen)

    with pytest.raises(Conflict, match=f"{kitchen.code} can take 0 more"):
        capacity.book(found, kitchen, LUNCH, 1, limit)


def test_real_incidents_share_a_kitchen_and_a_drill_books_on_its_own(region):
    kitchen = supplier_by_code("ZH-SUP-001")
    first, second = incident(drill=False), incident(drill=False)
    drill = incident(drill=True)
    whole = kitchen.lunch_capacity

    capacity.book(first, kitchen, LUNCH, whole, whole)
    capacity.book(drill, kitchen, LUNCH, whole, whole)

    with pytest.raises(Conflict):
        capacity.book(second, kitchen, LUNCH, 1, whole)


@pytest.mark.parametrize(
    ("geometry", "says"),
    [
        ({"type": "Point", "coordinates": [121.7, 29.96]}, "Polygon"),
        ({"type": "Polygon", "coordinates": [[[29.95, 121.69], [29.97, 121.73], [29.97, 121.69],
                                              [29.95, 121.69]]]}, "longitude, latitude"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
         "crosses itself"),
        ("not json at all", "Polygon"),
    ],
)  # fmt: skip
def test_a_bad_hazard_area_is_refused_with_the_field(planned, geometry, says):
    found, _ = planned

    with pytest.raises(InvalidInput) as refused:
        capacity.declare_hazard(found, name="x", geometry=geometry, at=T0)

    assert says in str(refused.value.errors["geometry"])


@pytest.mark.parametrize("meals", [-1, 1.5, True, 10**7])
def test_an_impossible_capacity_report_is_refused(planned, meals):
    found, tasks = planned

    with pytest.raises(InvalidInput) as refused:
        capacity.report_capacity(
            tasks[0].supplier, found, meal="lunch", meals=meals, valid_from=T0, at=T0
        )

    assert "meals" in refused.value.errors
