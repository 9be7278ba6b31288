"""Supply services: demand per meal, optimal allocation into supply tasks, suspension and
re-allocation, the batch life of a task, and the figures of an incident."""

import logging
import uuid
from collections import defaultdict

from sqlalchemy import func, or_, select

from app.coordination.services import notify
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.services import record
from app.supply import allocation
from app.supply.models import (
    DELIVERED_TASK_STATUSES,
    MEALS,
    OPEN_TASK_STATUSES,
    AllocationRun,
    Batch,
    DemandPoint,
    DispatchIntent,
    MealDemand,
    PointOpening,
    Supplier,
    SupplierSuspension,
    SupplyTask,
)
from app.types import isoformat_utc, local_iso

log = logging.getLogger(__name__)


def open_point(incident, point, *, headcount, at, diets=None):
    """Open (or update, or with headcount 0 close) a demand point for an incident."""
    diets = diets or {}
    errors = {}
    if headcount < 0:
        errors["headcount"] = ["must not be negative"]
    for diet, count in diets.items():
        if diet not in allocation.DIET_KINDS[1:]:
            errors[f"diets.{diet}"] = ["unknown diet"]
        elif count < 0:
            errors[f"diets.{diet}"] = ["must not be negative"]
    if sum(diets.values()) > headcount:
        errors["diets"] = ["special diets exceed the headcount"]
    if errors:
        raise InvalidInput(f"demand point {point.code} refused", errors)

    opening = PointOpening(
        incident_id=incident.id, demand_point_id=point.id, at=at, headcount=headcount, **diets
    )
    db.session.add(opening)
    record(incident, "point_opened", f"{point.name}: {headcount}", at)
    return opening


def current_openings(incident, at):
    """The latest opening row per demand point at an instant, open ones only."""
    latest = (
        select(PointOpening.demand_point_id, func.max(PointOpening.id).label("id"))
        .where(PointOpening.incident_id == incident.id, PointOpening.at <= at)
        .group_by(PointOpening.demand_point_id)
        .subquery()
    )
    rows = db.session.scalars(select(PointOpening).join(latest, PointOpening.id == latest.c.id))
    return [row for row in rows if row.headcount > 0]


def build_meal_demand(incident, meal, serve_at, at):
    """Write (or refresh) the meals each open point needs for one meal, split by diet."""
    demands = []
    for opening in current_openings(incident, at):
        special = {d: getattr(opening, d) for d in allocation.DIET_KINDS[1:]}
        by_diet = {"regular": opening.headcount - sum(special.values()), **special}
        row = db.session.scalar(
            select(MealDemand).filter_by(
                incident_id=incident.id, demand_point_id=opening.demand_point_id, serve_at=serve_at
            )
        )
        if row is None:
            row = MealDemand(
                incident_id=incident.id,
                demand_point_id=opening.demand_point_id,
                meal=meal,
                serve_at=serve_at,
            )
            db.session.add(row)
        row.meals = opening.headcount
        row.by_diet = by_diet
        demands.append(row)
    db.session.flush()
    return demands


def suspended_supplier_ids(incident):
    """Suppliers stopped for this incident: real suspensions, plus this drill's own."""
    query = select(SupplierSuspension.supplier_id).where(SupplierSuspension.lifted_at.is_(None))
    if incident.drill:
        query = query.where(
            or_(SupplierSuspension.drill.is_(False), SupplierSuspension.incident_id == incident.id)
        )
    else:
        query = query.where(SupplierSuspension.drill.is_(False))
    return set(db.session.scalars(query))


def _committed_meals(incident, serve_at):
    """Meals each supplier already owes for this meal, and each point already gets by diet.

    TODO: only this incident's tasks are counted, so two incidents open at once can each
    book a supplier's whole capacity for the same meal.
    """
    tasks = db.session.scalars(
        select(SupplyTask).where(
            SupplyTask.incident_id == incident.id,
            SupplyTask.serve_at == serve_at,
            SupplyTask.status != "cancelled",
        )
    )
    by_supplier = defaultdict(int)
    by_point = defaultdict(lambda: defaultdict(int))
    for task in tasks:
        by_supplier[task.supplier_id] += task.meals
        for diet, meals in task.by_diet.items():
            by_point[task.demand_point_id][diet] += meals
    return by_supplier, by_point


def allocate_meal(incident, meal, serve_at, at, *, trigger="plan", replaces=None):
    """Solve the allocation for what is still uncovered at one meal and create the tasks.

    Tasks already accepted stay where they are; only the remainder is solved. Each new task
    is written with its dispatch intent in the caller's transaction.
    """
    if meal not in MEALS:
        raise InvalidInput("unknown meal", {"meal": [f"must be one of {', '.join(MEALS)}"]})
    # TODO: capacity is the supplier's standing figure; a supplier cannot yet report a
    # changed capacity for one incident, so a kitchen short of staff is over-booked.
    rules = allocation.Rules.from_settings(incident.plan.settings)
    priority_types = set(incident.plan.settings.get("priority_types", []))
    demands = build_meal_demand(incident, meal, serve_at, at)
    owed, covered = _committed_meals(incident, serve_at)
    excluded = suspended_supplier_ids(incident)

    suppliers = [
        allocation.SupplierNode(
            id=s.id,
            lat=s.lat,
            lon=s.lon,
            capacity=max(0, s.capacity_for(meal) - owed[s.id]),
            diets=frozenset(d for d in allocation.DIET_KINDS if s.can_serve(d)),
            rating=s.rating,
            risk_colour=s.risk_colour,
            hot_holding=s.hot_holding,
        )
        for s in db.session.scalars(select(Supplier).where(Supplier.status == "active"))
        if s.id not in excluded
    ]
    points = {}
    nodes = []
    for row in demands:
        point = row.demand_point
        points[point.id] = point
        residual = {
            diet: meals - covered[point.id].get(diet, 0) for diet, meals in row.by_diet.items()
        }
        nodes.append(
            allocation.DemandNode(
                id=point.id,
                lat=point.lat,
                lon=point.lon,
                type=point.type,
                by_diet={d: m for d, m in residual.items() if m > 0},
                priority=point.type in priority_types,
            )
        )

    solution = allocation.solve(suppliers, nodes, rules)
    run = AllocationRun(
        incident_id=incident.id,
        meal=meal,
        serve_at=serve_at,
        trigger=trigger,
        method="min-cost flow (OR-Tools network simplex)",
        cost=solution.cost,
        demand_meals=sum(sum(n.by_diet.values()) for n in nodes),
        allocated_meals=sum(a.meals for a in solution.assignments),
        shortfall=[
            {
                "point": points[s.demand_id].code,
                "point_name": points[s.demand_id].name,
                "meal": meal,
                "serve_at": isoformat_utc(serve_at),
                "diet": s.diet,
                "meals": s.meals,
                "reason": s.reason,
            }
            for s in solution.shortfall
        ],
        solved_at=at,
    )
    db.session.add(run)
    db.session.flush()

    tasks = _create_tasks(incident, run, solution.assignments, at, replaces or {})
    record(
        incident,
        "allocation_solved" if trigger == "plan" else "reallocation_solved",
        f"{meal} {local_iso(serve_at)}: {run.allocated_meals}/{run.demand_meals} meals, "
        f"{len(tasks)} tasks",
        at,
    )
    log.info(
        "incident %s: %s %s allocated %d of %d meals in %d tasks (%s)",
        incident.id,
        meal,
        local_iso(serve_at),
        run.allocated_meals,
        run.demand_meals,
        len(tasks),
        trigger,
    )
    return run, tasks


def _create_tasks(incident, run, assignments, at, replaces):
    """One task per supplier and point, with its dispatch intent, in the same transaction."""
    grouped = defaultdict(lambda: {"meals": 0, "by_diet": defaultdict(int), "minutes": 0.0})
    for a in assignments:
        entry = grouped[(a.supplier_id, a.demand_id)]
        entry["meals"] += a.meals
        entry["by_diet"][a.diet] += a.meals
        entry["minutes"] = a.minutes

    tasks = []
    for (supplier_id, point_id), entry in sorted(grouped.items()):
        task = SupplyTask(
            key=uuid.uuid4().hex,
            incident_id=incident.id,
            allocation_run_id=run.id,
            supplier_id=supplier_id,
            demand_point_id=point_id,
            meal=run.meal,
            serve_at=run.serve_at,
            meals=entry["meals"],
            by_diet=dict(entry["by_diet"]),
            travel_minutes=round(entry["minutes"], 1),
            created_at=at,
            replaces_id=replaces.get(point_id),
        )
        db.session.add(task)
        tasks.append(task)
    db.session.flush()
    for task in tasks:
        db.session.add(DispatchIntent(supply_task_id=task.id, created_at=at))
    db.session.flush()
    return tasks


def suspend_supplier(supplier, incident, *, reason, at, rapid_test=None):
    """Stop a supplier: a drill suspension stays in the drill; a real one also marks the
    supplier. Its open tasks are re-allocated by a job on the queue."""
    from app.clock.services import schedule

    suspension = SupplierSuspension(
        supplier_id=supplier.id,
        incident_id=incident.id if incident is not None else None,
        drill=bool(incident is not None and incident.drill),
        reason=reason,
        rapid_test_id=rapid_test.id if rapid_test is not None else None,
        started_at=at,
    )
    db.session.add(suspension)
    if not suspension.drill:
        supplier.status = "suspended"
    db.session.flush()
    # TODO: a suspension outside any incident moves no tasks; the supplier's open tasks in
    # live incidents stay with it until someone re-plans those meals.
    if incident is not None:
        schedule("reallocate_supplier", incident, suspension.id, at)
        record(incident, "supplier_suspended", f"{supplier.name}: {reason}", at)
    log.info("supplier %s: suspended (%s)", supplier.code, reason)
    return suspension


def reallocate_after_suspension(suspension, incident, at):
    """Cancel the suspended supplier's open tasks and solve their meals again elsewhere.

    Returns the cancelled tasks; each new task points at the task it replaces.
    """
    open_tasks = db.session.scalars(
        select(SupplyTask)
        .where(
            SupplyTask.incident_id == incident.id,
            SupplyTask.supplier_id == suspension.supplier_id,
            SupplyTask.status.in_(OPEN_TASK_STATUSES),
        )
        .order_by(SupplyTask.serve_at, SupplyTask.id)
    ).all()
    slots = defaultdict(dict)
    for task in open_tasks:
        task.status = "cancelled"
        task.cancel_reason = f"supplier suspended: {suspension.reason}"
        task.updated_at = at
        slots[(task.meal, task.serve_at)][task.demand_point_id] = task.id
    db.session.flush()

    for (meal, serve_at), replaces in sorted(slots.items(), key=lambda kv: kv[0][1]):
        allocate_meal(incident, meal, serve_at, at, trigger="reallocation", replaces=replaces)
    record(
        incident,
        "tasks_reallocated",
        f"{len(open_tasks)} tasks of {suspension.supplier.name} moved",
        at,
    )
    return open_tasks


def _task_for_update(task, allowed, new_status, at):
    if task.status not in allowed:
        raise Conflict(f"supply task {task.id} is {task.status}, cannot become {new_status}")
    task.status = new_status
    task.updated_at = at


def accept_task(task, at):
    _task_for_update(task, ("created", "notified"), "accepted", at)


def start_batch(task, *, dishes, at):
    """The supplier starts cooking the task's batch."""
    _task_for_update(task, ("accepted",), "cooking", at)
    batch = Batch(
        supply_task_id=task.id,
        supplier_id=task.supplier_id,
        demand_point_id=task.demand_point_id,
        meal=task.meal,
        meals=task.meals,
        dishes=list(dishes),
        status="cooking",
    )
    db.session.add(batch)
    db.session.flush()
    return batch


def finish_cooking(batch, at):
    batch.cooked_at = at
    batch.status = "cooked"


def dispatch_batch(batch, *, at, temp_c):
    _task_for_update(batch.supply_task, ("sampled",), "in_transit", at)
    batch.left_at = at
    batch.dispatch_temp_c = temp_c
    batch.status = "in_transit"


def deliver_batch(batch, *, at, temp_c, serving_minutes, window_minutes, hot_window_minutes):
    """Record arrival; a batch that breaks the holding rule is flagged and not served."""
    task = batch.supply_task
    _task_for_update(task, ("in_transit",), "delivered", at)
    batch.delivered_at = at
    batch.arrival_temp_c = temp_c
    safe_temperature = temp_c >= 60 or temp_c < 8
    window = hot_window_minutes if safe_temperature else window_minutes
    held = (at - batch.cooked_at).total_seconds() / 60 + serving_minutes
    if held > window:
        batch.status = "flagged"
        batch.flag = f"holding rule broken: {held:.0f} min from cooking to serving at {temp_c} °C"
        task.status = "cancelled"
        task.cancel_reason = batch.flag
    else:
        batch.status = "delivered"


def receive_batch(batch, at):
    _task_for_update(batch.supply_task, ("delivered",), "received", at)
    batch.received_at = at
    batch.status = "received"


def incident_figures(incident):
    """Meals demanded, allocated, delivered and unmet, and suppliers suspended, for one
    incident only."""
    demand = db.session.scalar(
        select(func.coalesce(func.sum(MealDemand.meals), 0)).filter_by(incident_id=incident.id)
    )
    allocated = db.session.scalar(
        select(func.coalesce(func.sum(SupplyTask.meals), 0)).where(
            SupplyTask.incident_id == incident.id, SupplyTask.status != "cancelled"
        )
    )
    delivered = db.session.scalar(
        select(func.coalesce(func.sum(SupplyTask.meals), 0)).where(
            SupplyTask.incident_id == incident.id,
            SupplyTask.status.in_(DELIVERED_TASK_STATUSES),
        )
    )
    suspended = db.session.scalar(
        select(func.count(func.distinct(SupplierSuspension.supplier_id))).filter_by(
            incident_id=incident.id
        )
    )
    return {
        "demand_meals": int(demand),
        "allocated_meals": int(allocated),
        "delivered_meals": int(delivered),
        "unmet_meals": int(demand) - int(delivered),
        "suppliers_suspended": int(suspended),
    }


def demand_point_by_code(code):
    point = db.session.scalar(select(DemandPoint).filter_by(code=code))
    if point is None:
        raise InvalidInput("unknown demand point", {"demand_point": [f"no point {code!r}"]})
    return point


def supplier_by_code(code):
    supplier = db.session.scalar(select(Supplier).filter_by(code=code))
    if supplier is None:
        raise InvalidInput("unknown supplier", {"supplier": [f"no supplier {code!r}"]})
    return supplier


def notify_supplier_of_task(task, at):
    """The supplier's inbox gets the task once, keyed by the task's stable key."""
    from app.incidents.models import Incident

    incident = db.session.get(Incident, task.incident_id)
    prefix = "[演练] " if incident.drill else ""
    return notify(
        key=f"supply-task-{task.key}",
        kind="supply_task",
        subject=f"{prefix}保供任务：{task.meals} 份{task.meal}，送达 {task.demand_point.name}",
        body=f"送达时间 {local_iso(task.serve_at)}；任务编号 {task.key}",
        incident=incident,
        supplier=task.supplier,
        at=at,
        data={"task_key": task.key, "meals": task.meals, "by_diet": task.by_diet},
    )
