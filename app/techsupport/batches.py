"""The batches of a supply task (批次), from the stove to the point: started with its dishes
and meals, cooked, sampled, dispatched, delivered and served, each step checked against the
holding rule of the plan.

A task may be cooked in several batches whose meals add up to at most the task's meals; a
flagged batch gives its meals back, so they may be cooked again while the task is open.

The task's status follows its batches (see `follow_batches`): it stands at the least
advanced step of its batches that are not flagged, so it is cooking while any batch is,
in transit once every batch has left, delivered once every batch has arrived and received
once every batch is served; while meals are left that no batch has taken, it stays
accepted, taking batches. A task whose every batch is flagged is cancelled, with the flag
as its reason, and its meals count as not delivered.
"""

import logging
import math
from datetime import datetime, timedelta

from sqlalchemy import select

from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.supply.models import Batch
from app.types import local_iso

log = logging.getLogger(__name__)

# A batch's steps in order; "flagged" leaves the order: the batch is not served.
BATCH_STEPS = ("cooking", "cooked", "sampled", "in_transit", "delivered", "received")
BATCH_STATUSES = (*BATCH_STEPS, "flagged")
# The task's status while its least advanced batch is at a step.
TASK_STATUS_OF_STEP = {
    "cooking": "cooking",
    "cooked": "cooking",
    "sampled": "sampled",
    "in_transit": "in_transit",
    "delivered": "delivered",
    "received": "received",
}
# A task takes a new batch from its acceptance until every batch is served.
STARTABLE_TASK_STATUSES = ("accepted", "cooking", "sampled", "in_transit", "delivered")
# What a thermometer at a kitchen or a shelter can honestly read.
TEMPERATURE_RANGE_C = (-30.0, 100.0)
# Clocks of kitchens, phones and the incident differ a little; more is a typing error.
FUTURE_LEEWAY = timedelta(minutes=5)
MAX_DISHES = 30
DISH_LENGTH = 200


def batches_of(task):
    """The task's batches in the order they were started."""
    return db.session.scalars(
        select(Batch).filter_by(supply_task_id=task.id).order_by(Batch.id)
    ).all()


def meals_left(task, batches=None):
    """Meals of the task no batch (other than a flagged one) has taken yet."""
    batches = batches_of(task) if batches is None else batches
    return task.meals - sum(b.meals for b in batches if b.status != "flagged")


def incident_of(batch_or_task):
    from app.incidents.models import Incident

    task = getattr(batch_or_task, "supply_task", batch_or_task)
    return db.session.get(Incident, task.incident_id)


def holding_rules(incident):
    """The plan's holding band, windows and serving time as allocation `Rules`."""
    from app.supply.allocation import Rules

    return Rules.from_settings(incident.plan.settings or {})


def check_instant(at, field="at", clock=None):
    """Refuse an instant without an offset, or one further ahead of `clock` (the incident's
    clock, when the caller has one) than clocks differ by."""
    if not isinstance(at, datetime):
        raise InvalidInput(f"{field} refused", {field: ["must be an instant"]})
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{field} refused", {field: ["needs an offset, like +08:00 or Z"]})
    if clock is not None and at > clock + FUTURE_LEEWAY:
        ahead = (at - clock).total_seconds() / 60
        raise InvalidInput(
            f"{field} refused",
            {field: [f"is {ahead:.0f} min after the incident's clock ({local_iso(clock)})"]},
        )


def check_temperature(value, field="temp_c"):
    """A reading in °C: a finite number between -30 and 100."""
    low, high = TEMPERATURE_RANGE_C
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field} refused", {field: ["must be a number of °C"]})
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidInput(
            f"{field} refused", {field: [f"must be from {low:.0f} to {high:.0f} °C"]}
        )


def _not_before(at, earlier, field, what):
    if earlier is not None and at < earlier:
        raise InvalidInput(
            f"{field} refused", {field: [f"is before the batch {what} ({local_iso(earlier)})"]}
        )


def after_task_set(task, at, field="at"):
    """Refuse a step dated before its supply task was set: a batch cannot be cooked, nor
    its samples sealed, before anyone asked for the meals."""
    if at < task.created_at:
        raise InvalidInput(
            f"{field} refused",
            {field: [f"is before supply task {task.id} was set ({local_iso(task.created_at)})"]},
        )


def _task_open(task):
    if task.status == "cancelled":
        raise Conflict(f"supply task {task.id} is cancelled: {task.cancel_reason or ''}".strip())


def _batch_at(batch, allowed, change):
    if batch.status == "flagged":
        raise Conflict(f"batch {batch.id} is flagged and is not served: {batch.flag}")
    _task_open(batch.supply_task)
    if batch.status not in allowed:
        raise Conflict(f"batch {batch.id} is {batch.status}, it cannot be {change}")


def _dish_list(dishes):
    if isinstance(dishes, str) or not isinstance(dishes, list | tuple):
        raise InvalidInput("batch refused", {"dishes": ["must be a list of dishes"]})
    names = [d.strip() if isinstance(d, str) else d for d in dishes]
    errors = {}
    if not names:
        errors["dishes"] = ["name at least one dish"]
    elif len(names) > MAX_DISHES:
        errors["dishes"] = [f"at most {MAX_DISHES} dishes"]
    for n, name in enumerate(names):
        if not isinstance(name, str) or not name:
            errors[f"dishes.{n}"] = ["must be a dish's name"]
        elif len(name) > DISH_LENGTH:
            errors[f"dishes.{n}"] = [f"at most {DISH_LENGTH} characters"]
        elif name in names[:n]:
            errors[f"dishes.{n}"] = [f"{name} is named twice"]
    if errors:
        raise InvalidInput("batch refused", errors)
    return names


def start_batch(task, *, dishes, at, meals=None, clock=None):
    """The supplier starts cooking a batch of the task: `meals` of it (all the meals left,
    when not given) with its `dishes`. Meals beyond what is left are refused (Conflict)."""
    check_instant(at, "at", clock)
    after_task_set(task, at)
    _task_open(task)
    if task.status not in STARTABLE_TASK_STATUSES:
        raise Conflict(
            f"supply task {task.id} is {task.status}; a batch starts once it is accepted"
        )
    dishes = _dish_list(dishes)
    batches = batches_of(task)
    left = meals_left(task, batches)
    if meals is not None and (isinstance(meals, bool) or not isinstance(meals, int) or meals < 1):
        raise InvalidInput("batch refused", {"meals": ["must be a whole number from 1"]})
    if left < 1 or (meals is not None and meals > left):
        asked = f", not {meals}" if meals is not None else ""
        raise Conflict(
            f"supply task {task.id} has {left} of its {task.meals} meals left to cook{asked}"
        )
    meals = left if meals is None else meals

    # TODO: a batch keeps no start time (the model has none), so the batch page's timeline
    # begins when cooking ends and cannot show how long a batch was on the stove.
    batch = Batch(
        supply_task_id=task.id,
        supplier_id=task.supplier_id,
        demand_point_id=task.demand_point_id,
        meal=task.meal,
        meals=meals,
        dishes=dishes,
        status="cooking",
    )
    db.session.add(batch)
    db.session.flush()
    follow_batches(task, at, [*batches, batch])
    log.info("supply task %s: batch %s of %s meals started", task.id, batch.id, meals)
    return batch


def finish_cooking(batch, at, *, clock=None):
    """The batch is cooked; with a sample of every dish already kept it is ready to go."""
    check_instant(at, "at", clock)
    after_task_set(batch.supply_task, at)
    _batch_at(batch, ("cooking",), "cooked")

    batch.cooked_at = at
    batch.status = "cooked" if missing_samples(batch) else "sampled"
    follow_batches(batch.supply_task, at)


def missing_samples(batch):
    """The batch's dishes that have no retained sample yet, in the batch's order."""
    from app.techsupport.models import RetainedSample

    kept = set(db.session.scalars(select(RetainedSample.dish).filter_by(batch_id=batch.id)))
    return [dish for dish in batch.dishes if dish not in kept]


def dispatch_batch(batch, *, at, temp_c, clock=None):
    """The batch leaves the kitchen at `temp_c`; only once it is cooked and every dish
    has its retained sample (Conflict naming the dishes missing)."""
    check_instant(at, "at", clock)
    after_task_set(batch.supply_task, at)
    check_temperature(temp_c)
    if batch.status == "cooking":
        raise Conflict(f"batch {batch.id} is still cooking; it leaves once cooked and sampled")
    _batch_at(batch, ("cooked", "sampled"), "dispatched")
    missing = missing_samples(batch)
    if missing:
        raise Conflict(
            f"batch {batch.id} may not leave without a retained sample of every dish; "
            f"missing: {', '.join(missing)}"
        )
    _not_before(at, batch.cooked_at, "at", "was cooked")

    batch.left_at = at
    batch.dispatch_temp_c = float(temp_c)
    batch.status = "in_transit"
    follow_batches(batch.supply_task, at)


def deliver_batch(batch, *, at, temp_c, rules=None, clock=None):
    """Record arrival at the point at `temp_c`. A batch that could not be served within
    the holding rule of the plan's `rules` even if serving began now is flagged, not
    served, and the commander is told."""
    check_instant(at, "at", clock)
    after_task_set(batch.supply_task, at)
    check_temperature(temp_c)
    _batch_at(batch, ("in_transit",), "delivered")
    _not_before(at, batch.left_at, "at", "left the kitchen")

    batch.delivered_at = at
    batch.arrival_temp_c = float(temp_c)
    rules = rules or holding_rules(incident_of(batch))
    reason = holding_breach(batch, at, rules)
    if reason:
        flag_batch(batch, reason, at)
    else:
        batch.status = "delivered"
    follow_batches(batch.supply_task, at)


def receive_batch(batch, at, *, rules=None, clock=None):
    """The point receives the batch and serves it from `at`. The holding rule is checked
    again: a batch served too late is flagged instead of served (the batch is returned
    with status "flagged"), and a batch already flagged is refused (Conflict)."""
    check_instant(at, "at", clock)
    after_task_set(batch.supply_task, at)
    _batch_at(batch, ("delivered",), "served")
    _not_before(at, batch.delivered_at, "at", "arrived")

    rules = rules or holding_rules(incident_of(batch))
    reason = holding_breach(batch, at, rules)
    if reason:
        flag_batch(batch, reason, at)
    else:
        batch.received_at = at
        batch.status = "received"
    follow_batches(batch.supply_task, at)
    return batch


def holding_kind(batch, rules):
    """How the batch was kept, from its readings: "hot" when every reading was above the
    band, "chilled" when every one was below it, else "band" (it was in the band, or
    crossed it, so the band's window applies)."""
    low, high = rules.holding_band_c
    readings = [t for t in (batch.dispatch_temp_c, batch.arrival_temp_c) if t is not None]
    if readings and all(t > high for t in readings):
        return "hot"
    if readings and all(t < low for t in readings):
        return "chilled"
    return "band"


def holding_window(kind, rules):
    return {
        "hot": rules.hot_holding_window_minutes,
        "chilled": rules.chilled_window_minutes,
        "band": rules.holding_window_minutes,
    }[kind]


def holding_breach(batch, serving_at, rules):
    """Why the batch breaks the holding rule when its serving starts at `serving_at`, or
    None. The last meal is handed out `serving_minutes` after serving starts, and that
    must fall within the window of how the batch was kept, counted from cooking."""
    kind = holding_kind(batch, rules)
    window = holding_window(kind, rules)
    minutes = (serving_at - batch.cooked_at).total_seconds() / 60 + rules.serving_minutes
    if minutes <= window:
        return None
    low, high = rules.holding_band_c
    kept = {
        "hot": f"kept hot above {high:g} °C",
        "chilled": f"kept chilled below {low:g} °C",
        "band": f"kept between {low:g} and {high:g} °C",
    }[kind]
    readings = ", ".join(
        f"{label} {t:g} °C"
        for label, t in (("left", batch.dispatch_temp_c), ("arrived", batch.arrival_temp_c))
        if t is not None
    )
    return (
        f"holding rule broken: {minutes:.0f} min from cooking to the last meal served, "
        f"{kept} ({readings}); at most {window:.0f} min"
    )


def flag_batch(batch, reason, at):
    """The batch is not served: its meals count as not delivered and the commander is
    told once (keyed by the batch)."""
    from app.coordination.services import notify
    from app.coordination.sitrep_text import MEAL_NAMES
    from app.incidents.services import record
    from app.organisation.services import commander_of

    batch.status = "flagged"
    batch.flag = reason
    incident = incident_of(batch)
    task = batch.supply_task
    where = f"{task.supplier.name} → {task.demand_point.name}"
    record(incident, "batch_flagged", f"{where}: batch {batch.id}, {batch.meals} meals: {reason}",
           at)  # fmt: skip
    commander = commander_of(incident, at)
    if commander is not None:
        prefix = "[演练] " if incident.drill else ""
        notify(
            key=f"batch-flagged-{batch.id}",
            kind="batch_flagged",
            subject=f"{prefix}批次不得供餐：{where}，{batch.meals} 份{MEAL_NAMES[task.meal][0]}",
            body=reason,
            incident=incident,
            person=commander,
            at=at,
            data={"batch": batch.id, "task_key": task.key, "meals": batch.meals},
        )
    log.warning("batch %s: flagged, %s", batch.id, reason)


def follow_batches(task, at, batches=None):
    """Set the task's status from its batches (the rule in the module's docstring)."""
    batches = batches_of(task) if batches is None else batches
    live = [b for b in batches if b.status != "flagged"]
    if not live:
        flagged = [b for b in batches if b.status == "flagged"]
        if flagged and task.status != "cancelled":
            # TODO: the meals of a task cancelled this way are not allocated again by
            # themselves; the point stays short until the commander solves the meal again.
            task.status = "cancelled"
            task.cancel_reason = flagged[-1].flag
            task.updated_at = at
        return task.status

    least = min(live, key=lambda b: BATCH_STEPS.index(b.status))
    status = TASK_STATUS_OF_STEP[least.status]
    if meals_left(task, batches) > 0:
        # Meals no batch has taken yet (or a flagged one gave back) are still to cook: the
        # task waits at accepted, taking batches, until every meal is on its way.
        status = "accepted"
    if status != task.status:
        task.status = status
        task.updated_at = at
    return status
