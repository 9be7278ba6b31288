"""Supply services: demand per meal, optimal allocation into supply tasks, suspension and
re-allocation, the batch life of a task, and the figures of an incident."""

import logging
import uuid
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm.attributes import flag_modified

from app.coordination.services import notify
from app.coordination.sitrep_text import MEAL_NAMES
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.incidents.services import record
from app.supply import allocation, capacity
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

# The batch life of a task lives with technical support; kept importable from here.
from app.techsupport.batches import deliver_batch as deliver_batch
from app.techsupport.batches import dispatch_batch as dispatch_batch
from app.techsupport.batches import finish_cooking as finish_cooking
from app.techsupport.batches import receive_batch as receive_batch
from app.techsupport.batches import start_batch as start_batch
from app.techsupport.risk import risk_colours
from app.types import isoformat_utc, local_iso

log = logging.getLogger(__name__)

# Batches whose meals reached the point and were not flagged.
DELIVERED_BATCH_STATUSES = ("delivered", "received")


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
    db.session.flush()
    record(incident, "point_opened", f"{point.name}: {headcount}", at)
    # A point already planned for is planned again for its new headcount, in a job.
    planned = db.session.scalar(
        select(SupplyTask.id)
        .where(
            SupplyTask.incident_id == incident.id,
            SupplyTask.demand_point_id == point.id,
            SupplyTask.status.in_(OPEN_TASK_STATUSES),
            SupplyTask.serve_at >= at,
        )
        .limit(1)
    )
    if planned is not None:
        from app.clock.services import schedule

        schedule("replan_demand", incident, opening.id, at)
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


def _covered(incident, serve_at):
    """Meals each point already gets for one serving time, by diet, from live tasks."""
    covered = defaultdict(lambda: defaultdict(int))
    for task in _slot_tasks(incident, serve_at, exclude=("cancelled",)):
        for diet, meals in task.by_diet.items():
            covered[task.demand_point_id][diet] += meals
    return covered


def _slot_tasks(incident, serve_at, statuses=None, exclude=()):
    query = select(SupplyTask).where(
        SupplyTask.incident_id == incident.id, SupplyTask.serve_at == serve_at
    )
    if statuses is not None:
        query = query.where(SupplyTask.status.in_(statuses))
    if exclude:
        query = query.where(SupplyTask.status.not_in(exclude))
    return db.session.scalars(query.order_by(SupplyTask.id)).all()


def _settings(incident):
    settings = incident.plan.settings or {}
    return (
        allocation.Rules.from_settings(settings),
        set(settings.get("priority_types", [])),
        tuple(settings.get("priority_diets", [])),
    )


def supplier_node(supplier, capacity, risk_colour=None):
    """The supplier as the solver sees it; `risk_colour` is the incident's colour of it
    (the stored live colour when not given)."""
    return allocation.SupplierNode(
        id=supplier.id,
        lat=supplier.lat,
        lon=supplier.lon,
        capacity=max(0, capacity),
        diets=frozenset(d for d in allocation.DIET_KINDS if supplier.can_serve(d)),
        rating=supplier.rating,
        risk_colour=risk_colour or supplier.risk_colour,
        hot_holding=supplier.hot_holding,
        chilled=supplier.chilled,
    )


def excluded_suppliers(incident, suppliers):
    """Suppliers that may take no work now, each with the reason: suspended for this
    incident (or for real), or inside one of its hazard areas."""
    reasons = {s_id: "supplier suspended" for s_id in suspended_supplier_ids(incident)}
    for s_id, area in capacity.suppliers_in_hazard(incident, suppliers).items():
        reasons.setdefault(s_id, f"supplier inside hazard area {area}")
    return reasons


def allocate_meal(
    incident, meal, serve_at, at, *, trigger="plan", replaces=None, moves=None, demands=None
):
    """Solve the allocation for what is still uncovered at one meal and create the tasks.

    Tasks not cancelled stay where they are; only the remainder is solved, against what
    each supplier has left after its bookings. Each new task is booked and written with
    its dispatch intent in the caller's transaction.
    """
    if meal not in MEALS:
        raise InvalidInput("unknown meal", {"meal": [f"must be one of {', '.join(MEALS)}"]})
    rules, priority_types, priority_diets = _settings(incident)
    if demands is None:
        demands = build_meal_demand(incident, meal, serve_at, at)
    covered = _covered(incident, serve_at)

    active = capacity.active_suppliers()
    excluded = excluded_suppliers(incident, active)
    allowed = [s for s in active if s.id not in excluded]
    limits = capacity.capacities(incident, meal, serve_at, allowed)
    owed = capacity.booked(incident, serve_at)
    # The incident's own colours: a drill's results colour its suppliers in the drill only.
    colours = risk_colours(allowed, incident, at=at)
    suppliers = [
        supplier_node(s, limits[s.id] - owed.get(s.id, 0), colours[s.id].colour) for s in allowed
    ]
    points, nodes = {}, []
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

    matrix = capacity.travel_times(suppliers, points.values())
    solution = allocation.solve(suppliers, nodes, rules, matrix, priority_diets)
    run = AllocationRun(
        incident_id=incident.id,
        meal=meal,
        serve_at=serve_at,
        trigger=trigger,
        method="LP in priority order (HiGHS, pricing)",
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
        moves=moves,
        solved_at=at,
    )
    db.session.add(run)
    db.session.flush()

    by_id = {s.id: s for s in allowed}
    tasks = _create_tasks(incident, run, solution.assignments, at, replaces or {}, by_id, limits)
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


def _create_tasks(incident, run, assignments, at, replaces, suppliers, limits):
    """One task per supplier and point, booked and with its dispatch intent, in the same
    transaction."""
    grouped = defaultdict(lambda: {"meals": 0, "by_diet": defaultdict(int), "minutes": 0.0})
    for a in assignments:
        entry = grouped[(a.supplier_id, a.demand_id)]
        entry["meals"] += a.meals
        entry["by_diet"][a.diet] += a.meals
        entry["minutes"] = a.minutes

    # One booking per supplier for all its new tasks: one conditional UPDATE each.
    per_supplier = defaultdict(int)
    for (supplier_id, _point_id), entry in grouped.items():
        per_supplier[supplier_id] += entry["meals"]
    for supplier_id, meals in sorted(per_supplier.items()):
        capacity.book(incident, suppliers[supplier_id], run.serve_at, meals, limits[supplier_id])

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


def open_suspension(supplier, incident):
    """The suspension stopping the supplier in this incident's scope now (a real one, or
    this drill's own), or None."""
    query = select(SupplierSuspension).where(
        SupplierSuspension.supplier_id == supplier.id, SupplierSuspension.lifted_at.is_(None)
    )
    if incident is not None and incident.drill:
        query = query.where(
            or_(SupplierSuspension.drill.is_(False), SupplierSuspension.incident_id == incident.id)
        )
    else:
        query = query.where(SupplierSuspension.drill.is_(False))
    return db.session.scalar(query.order_by(SupplierSuspension.id).limit(1))


def lock_supplier(supplier):
    """Hold the supplier's row until the transaction ends, so two failed results arriving
    together make one suspension (PostgreSQL's row lock; SQLite's transactions already
    take the write lock when they begin)."""
    db.session.execute(select(Supplier.id).where(Supplier.id == supplier.id).with_for_update())


def suspend_supplier(supplier, incident, *, reason, at, rapid_test=None):
    """Stop a supplier: a drill suspension stays in the drill; a real one also marks the
    supplier. Its open tasks are re-allocated by a job on the queue: in the drill's own
    incident, or for a real suspension in every open real incident.

    A supplier already stopped in this scope is not stopped again: the suspension in force
    is returned and nothing is re-allocated twice.
    """
    from app.clock.services import schedule
    from app.incidents.models import Incident

    lock_supplier(supplier)
    existing = open_suspension(supplier, incident)
    if existing is not None:
        log.info("supplier %s: already suspended (suspension %s)", supplier.code, existing.id)
        return existing

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

    if suspension.drill:
        affected = [incident]
    else:
        # A real stop holds everywhere: every open real incident moves its tasks away.
        affected = db.session.scalars(
            select(Incident)
            .where(Incident.drill.is_(False), Incident.status != "closed")
            .order_by(Incident.id)
        ).all()
        if incident is not None and incident not in affected:
            affected.append(incident)
    for found in affected:
        schedule("reallocate_supplier", found, suspension.id, at)
        record(found, "supplier_suspended", f"{supplier.name}: {reason}", at)
    log.info("supplier %s: suspended (%s)", supplier.code, reason)
    return suspension


def reallocate_after_suspension(suspension, incident, at):
    """Move the suspended supplier's open tasks elsewhere, serving time by serving time.

    Returns the tasks moved; each new task points at the task it replaces.
    """
    slots = db.session.execute(
        select(SupplyTask.meal, SupplyTask.serve_at)
        .where(
            SupplyTask.incident_id == incident.id,
            SupplyTask.supplier_id == suspension.supplier_id,
            SupplyTask.status.in_(OPEN_TASK_STATUSES),
        )
        .distinct()
        .order_by(SupplyTask.serve_at)
    ).all()
    moved, runs = [], []
    for meal, serve_at in slots:
        run, moved_now = replan(incident, meal, serve_at, at, trigger="reallocation")
        moved += moved_now
        runs.append(run)
    name = suspension.supplier.name
    record(incident, "tasks_reallocated", f"{len(moved)} tasks of {name} moved", at)
    _tell_of_meals_not_replaced(suspension, incident, moved, runs, at)
    return moved


def _tell_of_meals_not_replaced(suspension, incident, moved, runs, at):
    """The commander hears of meals the suspended supplier was to bring that no other
    supplier took over (no capacity left, or a task set by hand at a point whose demand
    was never opened), so they are planned by hand rather than missed."""
    points = {task.demand_point_id for task in moved}
    replaced = db.session.scalar(
        select(func.coalesce(func.sum(SupplyTask.meals), 0)).where(
            SupplyTask.allocation_run_id.in_([run.id for run in runs]),
            SupplyTask.demand_point_id.in_(points),
        )
    )
    missing = sum(task.meals for task in moved) - int(replaced)
    if missing <= 0:
        return
    from app.organisation.services import commander_of

    commander = commander_of(incident, at)
    where = ", ".join(sorted({task.demand_point.name for task in moved}))
    record(incident, "meals_not_replaced", f"{missing} meals of {suspension.supplier.name}", at)
    if commander is not None:
        prefix = "[演练] " if incident.drill else ""
        notify(
            key=f"meals-not-replaced-{suspension.id}-{incident.id}",
            kind="meals_not_replaced",
            subject=f"{prefix}{missing} 份餐食无其他单位接替：{suspension.supplier.name}",
            body=f"暂停供应后未能重新分配的送达点：{where}。请人工安排。",
            incident=incident,
            person=commander,
            at=at,
        )
    log.warning("incident %s: %d meals of %s not replaced", incident.id, missing,
                suspension.supplier.code)  # fmt: skip


# Tasks the supplier has said yes to; kept before those it has only been told of.
ACCEPTED_STATUSES = ("accepted", "cooking", "sampled")


def replan(incident, meal, serve_at, at, *, trigger="replan"):
    """Solve one serving time again after a change (a supplier stopped, capacity or demand
    changed, a hazard declared), keeping every open task where it stays feasible.

    Returns (allocation run, moved tasks); the run's `moves` says which tasks moved, why,
    and which new tasks replaced them.
    """
    open_tasks = _slot_tasks(incident, serve_at, statuses=OPEN_TASK_STATUSES)
    # Accepted tasks first, then the rest by age: the later in this order, the sooner moved.
    open_tasks.sort(key=lambda t: (t.status not in ACCEPTED_STATUSES, t.id))
    reasons = _unservable(incident, open_tasks)
    _over_capacity(incident, meal, serve_at, open_tasks, reasons)
    demands = build_meal_demand(incident, meal, serve_at, at)
    _over_demand(incident, serve_at, demands, open_tasks, reasons)

    moved = [task for task in open_tasks if task.id in reasons]
    for task in moved:
        task.status = "cancelled"
        task.cancel_reason = reasons[task.id]
        task.updated_at = at
        capacity.release(incident, task)
    db.session.flush()

    moves = [_move(task) for task in moved]
    # A new task at a point stands in for the largest task moved away from it; every move
    # lists all the point's new tasks, as meals are re-planned per point, not per task.
    replaces = {}
    for task in sorted(moved, key=lambda t: t.meals):
        replaces[task.demand_point_id] = task.id
    run, tasks = allocate_meal(
        incident,
        meal,
        serve_at,
        at,
        trigger=trigger,
        replaces=replaces,
        moves=moves,
        demands=demands,
    )
    for move, task in zip(moves, moved, strict=True):
        move["replaced_by"] = [t.id for t in tasks if t.demand_point_id == task.demand_point_id]
    run.moves = moves
    flag_modified(run, "moves")  # changed in place: say so, or the JSON column is not written
    if moved:
        when = local_iso(serve_at)
        log.info("incident %s: %s %s, %d tasks moved", incident.id, meal, when, len(moved))
    return run, moved


def _unservable(incident, tasks):
    """Why each task whose supplier may no longer serve its point must move."""
    rules = _settings(incident)[0]
    suppliers = {t.supplier_id: t.supplier for t in tasks}
    excluded = excluded_suppliers(incident, list(suppliers.values()))
    matrix = capacity.travel_times(suppliers.values(), {t.demand_point for t in tasks})
    reasons = {}
    for task in tasks:
        if task.supplier_id in excluded:
            reasons[task.id] = excluded[task.supplier_id]
        elif task.supplier.status != "active":
            reasons[task.id] = f"supplier {task.supplier.status}"
        elif not _still_allowed(task, rules, matrix):
            reasons[task.id] = "supplier no longer allowed at the point"
    return reasons


def _over_capacity(incident, meal, serve_at, tasks, reasons):
    """A supplier booked beyond its capacity now sheds its last tasks until it fits."""
    suppliers = {t.supplier_id: t.supplier for t in tasks}
    limits = capacity.capacities(incident, meal, serve_at, suppliers.values())
    owed = capacity.booked(incident, serve_at)
    for supplier_id, supplier in suppliers.items():
        over = owed.get(supplier_id, 0) - limits[supplier_id]
        over -= sum(t.meals for t in tasks if t.supplier_id == supplier_id and t.id in reasons)
        for task in reversed(tasks):
            if over <= 0:
                break
            if task.supplier_id == supplier_id and task.id not in reasons:
                reasons[task.id] = f"{supplier.name} can cook {limits[supplier_id]} for {meal}"
                over -= task.meals


def _over_demand(incident, serve_at, demands, tasks, reasons):
    """A point sent more of a diet than it now needs (its `demands` rows) sheds its last
    tasks until it fits."""
    demands = {row.demand_point_id: row.by_diet for row in demands}
    sent = defaultdict(lambda: defaultdict(int))
    for task in _slot_tasks(incident, serve_at, exclude=("cancelled",)):
        if task.id not in reasons:
            for diet, meals in task.by_diet.items():
                sent[task.demand_point_id][diet] += meals
    for task in reversed(tasks):
        if task.id in reasons:
            continue
        need = demands.get(task.demand_point_id, {})
        got = sent[task.demand_point_id]
        if any(got[diet] > need.get(diet, 0) for diet in task.by_diet):
            reasons[task.id] = f"{task.demand_point.name} needs fewer meals"
            for diet, meals in task.by_diet.items():
                got[diet] -= meals


def _move(task):
    return {
        "task": task.id,
        "key": task.key,
        "supplier": task.supplier.code,
        "point": task.demand_point.code,
        "meals": task.meals,
        "status": "cancelled",
        "reason": task.cancel_reason,
    }


def _still_allowed(task, rules, matrix):
    """Whether the task's supplier still passes the hard rules for every diet it sends;
    `matrix` holds the measured minutes of the pairs concerned."""
    supplier = supplier_node(task.supplier, task.meals)
    point = task.demand_point
    node = allocation.DemandNode(point.id, point.lat, point.lon, point.type, task.by_diet)
    minutes = allocation.travel_minutes(supplier, node, rules, matrix)
    return all(
        allocation.pair_block(supplier, node, diet, minutes, rules) is None for diet in task.by_diet
    )


def replan_from(incident, at, *, meal=None, supplier_id=None, point_id=None, since=None):
    """Solve again every serving time, from `since` on, that has open tasks (of one
    supplier or point, when given) or demand; returns the tasks moved."""
    query = select(SupplyTask.meal, SupplyTask.serve_at).where(
        SupplyTask.incident_id == incident.id, SupplyTask.status.in_(OPEN_TASK_STATUSES)
    )
    if meal is not None:
        query = query.where(SupplyTask.meal == meal)
    if supplier_id is not None:
        query = query.where(SupplyTask.supplier_id == supplier_id)
    if point_id is not None:
        query = query.where(SupplyTask.demand_point_id == point_id)
    if since is not None:
        query = query.where(SupplyTask.serve_at >= since)
    moved = []
    for slot_meal, serve_at in db.session.execute(query.distinct().order_by(SupplyTask.serve_at)):
        moved += replan(incident, slot_meal, serve_at, at, trigger="replan")[1]
    return moved


def _task_for_update(task, allowed, new_status, at):
    if task.status not in allowed:
        raise Conflict(f"supply task {task.id} is {task.status}, cannot become {new_status}")
    task.status = new_status
    task.updated_at = at


def accept_task(task, at):
    _task_for_update(task, ("created", "notified"), "accepted", at)


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
    # Meals of batches that arrived and were not flagged, whatever their task's state (a
    # task may still be cooking its next batch); a task without batch rows counts whole.
    in_batches = db.session.scalar(
        select(func.coalesce(func.sum(Batch.meals), 0))
        .join(SupplyTask, Batch.supply_task_id == SupplyTask.id)
        .where(
            SupplyTask.incident_id == incident.id,
            Batch.status.in_(DELIVERED_BATCH_STATUSES),
        )
    )
    whole = db.session.scalar(
        select(func.coalesce(func.sum(SupplyTask.meals), 0)).where(
            SupplyTask.incident_id == incident.id,
            SupplyTask.status.in_(DELIVERED_TASK_STATUSES),
            ~exists().where(Batch.supply_task_id == SupplyTask.id),
        )
    )
    delivered = int(in_batches) + int(whole)
    suspended = db.session.scalar(
        select(func.count(func.distinct(SupplierSuspension.supplier_id))).filter_by(
            incident_id=incident.id
        )
    )
    return {
        "demand_meals": int(demand),
        "allocated_meals": int(allocated),
        "delivered_meals": int(delivered),
        # Meals set by hand at a point whose demand was never opened are no demand met.
        "unmet_meals": max(int(demand) - delivered, 0),
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
    meal = MEAL_NAMES[task.meal][0]
    return notify(
        key=f"supply-task-{task.key}",
        kind="supply_task",
        subject=f"{prefix}保供任务：{task.meals} 份{meal}，送达 {task.demand_point.name}",
        body=f"送达时间 {local_iso(task.serve_at)}；任务编号 {task.key}",
        incident=incident,
        supplier=task.supplier,
        at=at,
        data={"task_key": task.key, "meals": task.meals, "by_diet": task.by_diet},
    )


# A meal may be served this long before or after the plan's time for it.
SERVING_LEEWAY = timedelta(hours=2)
# Meals are planned at most this far ahead, and not for a time already past.
PLANNING_HORIZON = timedelta(days=7)


def check_serving_time(incident, meal, serve_at, at):
    """Refuse a serving time that is no such meal: far from the plan's time of that meal
    (in the region's zone), already past, or beyond the planning horizon."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    times = (incident.plan.settings or {}).get("meal_times", {})
    if serve_at < at:
        raise InvalidInput("serving time refused", {"serve_at": ["is already past"]})
    if serve_at > at + PLANNING_HORIZON:
        raise InvalidInput(
            "serving time refused",
            {"serve_at": [f"is more than {PLANNING_HORIZON.days} days ahead"]},
        )
    if meal in times:
        local = serve_at.astimezone(ZoneInfo(current_app.config["BAOGONG_TIMEZONE"]))
        hour, minute = (int(part) for part in times[meal].split(":"))
        planned = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if abs(local - planned) > SERVING_LEEWAY:
            raise InvalidInput(
                "serving time refused",
                {"serve_at": [f"{meal} is served about {times[meal]}, not at {local:%H:%M}"]},
            )


def assign_by_hand(incident, supplier, point, *, meal, serve_at, meals, by_diet, at):
    """A supply task set by the commander rather than the optimiser: the supplier must be
    free to serve, able to cook every diet asked, and have the meals left; the task is
    booked and written with its dispatch intent, or nothing is (Conflict)."""
    if meal not in MEALS:
        raise InvalidInput("unknown meal", {"meal": [f"must be one of {', '.join(MEALS)}"]})
    check_serving_time(incident, meal, serve_at, at)
    by_diet = by_diet or {"regular": meals}
    missing = [diet for diet in by_diet if by_diet[diet] and not supplier.can_serve(diet)]
    if missing:
        raise InvalidInput(
            "supply task refused", {"by_diet": [f"{supplier.code} cooks no {', '.join(missing)}"]}
        )
    reason = excluded_suppliers(incident, [supplier]).get(supplier.id)
    if reason is None and supplier.status != "active":
        reason = f"supplier {supplier.status}"
    if reason is not None:
        raise Conflict(f"{supplier.code} may take no work: {reason}")

    limit = capacity.capacities(incident, meal, serve_at, [supplier])[supplier.id]
    rules = _settings(incident)[0]
    node = supplier_node(supplier, limit)
    demand = allocation.DemandNode(point.id, point.lat, point.lon, point.type, by_diet)
    minutes = allocation.travel_minutes(
        node, demand, rules, capacity.travel_times([supplier], [point])
    )
    blocks = {allocation.pair_block(node, demand, diet, minutes, rules) for diet in by_diet}
    if "rating" in blocks:
        floor = rules.rating_floor.get(point.type)
        raise InvalidInput(
            "supply task refused",
            {"supplier": [f"a {point.type} takes {floor}-rated suppliers, {supplier.code} is "
                          f"{supplier.rating}"]},
        )  # fmt: skip
    if "reach" in blocks:
        raise InvalidInput(
            "supply task refused",
            {"supplier": [f"{minutes:.0f} minutes on the road breaks the holding window"]},
        )
    run = AllocationRun(
        incident_id=incident.id,
        meal=meal,
        serve_at=serve_at,
        trigger="by_hand",
        method="set by hand",
        cost=meals * minutes,
        demand_meals=meals,
        allocated_meals=meals,
        shortfall=[],
        solved_at=at,
    )
    db.session.add(run)
    db.session.flush()
    assignments = [
        allocation.Assignment(supplier.id, point.id, diet, count, minutes)
        for diet, count in by_diet.items()
        if count > 0
    ]
    [task] = _create_tasks(incident, run, assignments, at, {}, {supplier.id: supplier},
                           {supplier.id: limit})  # fmt: skip
    record(incident, "task_set_by_hand", f"{supplier.name} → {point.name}: {meals} {meal}", at)
    return task
