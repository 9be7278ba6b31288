"""The trace of what reached a demand point (溯源): every batch delivered there, with its
supplier, its retained samples and the tests on them, and the trace attached to a
suspected poisoning reported at that point, whose samples it holds.

A trace is read in three queries whatever the number of batches: the batches with their
supplier and incident, their samples, and the tests on either.
"""

import logging
from datetime import timedelta

from sqlalchemy import exists, or_, select

from app.errors import InvalidInput
from app.extensions import db
from app.incidents.models import Incident
from app.incidents.services import record
from app.supply.models import Batch, Supplier, SupplyTask
from app.techsupport.batches import FUTURE_LEEWAY
from app.techsupport.models import RapidTest, RetainedSample, SampleHold
from app.techsupport.results import result_row
from app.techsupport.samples import hold_samples
from app.types import isoformat_utc

log = logging.getLogger(__name__)

# `drill_run` of trace_demand_point: batches of every incident, real and drill alike.
EVERY_INCIDENT = object()

# Hours before a suspected poisoning whose deliveries its trace covers, when the plan sets
# none: most foodborne agents act within 72 hours (toxins in under one, Salmonella and
# norovirus within three days).
POISONING_TRACE_HOURS = 72


def _check_window(start, end):
    errors = {}
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            errors[name] = ["must be an instant with its UTC offset"]
    if not errors and start is not None and end is not None and start > end:
        errors["from"] = ["must not be after to"]
    if errors:
        raise InvalidInput("trace refused", errors)


def _batch_filter(point, start, end, drill_run):
    """The conditions on Batch, SupplyTask and Incident that pick the batches traced."""
    conditions = [Batch.demand_point_id == point.id, Batch.delivered_at.is_not(None)]
    if start is not None:
        conditions.append(Batch.delivered_at >= start)
    if end is not None:
        conditions.append(Batch.delivered_at <= end)
    if drill_run is None:
        conditions.append(Incident.drill.is_(False))
    elif drill_run is not EVERY_INCIDENT:
        conditions.append(Incident.drill_run_id == drill_run.id)
    return conditions


def _joined(query):
    return query.join(SupplyTask, Batch.supply_task_id == SupplyTask.id).join(
        Incident, SupplyTask.incident_id == Incident.id
    )


def trace_demand_point(point, start=None, end=None, *, drill_run=EVERY_INCIDENT):
    """Every batch delivered to `point` (delivered_at within [start, end], either end open
    when None), oldest first, as a JSON-ready dict.

    Batches flagged on arrival are included with their status and flag: they reached the
    point though they were not served, and an investigator must see them. Batches not yet
    delivered are not. Each batch names its incident and whether that is a drill.
    `drill_run` narrows the trace to one drill run's incidents, or with None to real
    incidents only; by default every incident counts.
    """
    _check_window(start, end)
    conditions = _batch_filter(point, start, end, drill_run)
    batch_ids = _joined(select(Batch.id)).where(*conditions)
    sample_ids = select(RetainedSample.id).where(RetainedSample.batch_id.in_(batch_ids))

    rows = db.session.execute(
        _joined(select(Batch, SupplyTask.incident_id, Incident.drill, Supplier))
        .join(Supplier, Batch.supplier_id == Supplier.id)
        .where(*conditions)
        .order_by(Batch.delivered_at, Batch.id)
    ).all()
    held = (
        exists()
        .where(SampleHold.sample_id == RetainedSample.id, SampleHold.released_at.is_(None))
        .label("held")
    )
    samples = db.session.execute(
        select(RetainedSample, held)
        .where(RetainedSample.batch_id.in_(batch_ids))
        .order_by(RetainedSample.id)
    ).all()
    tests = db.session.scalars(
        select(RapidTest)
        .where(or_(RapidTest.batch_id.in_(batch_ids), RapidTest.sample_id.in_(sample_ids)))
        .order_by(RapidTest.tested_at, RapidTest.id)
    ).all()

    batches = {}
    for batch, incident_id, drill, supplier in rows:
        batches[batch.id] = _batch(batch, incident_id, drill, supplier)
    by_sample = {}
    for sample, is_held in samples:
        entry = _sample(sample, bool(is_held))
        by_sample[sample.id] = entry
        batches[sample.batch_id]["samples"].append(entry)
    for test in tests:
        if test.sample_id in by_sample:
            by_sample[test.sample_id]["tests"].append(result_row(test))
        elif test.batch_id in batches:
            batches[test.batch_id]["tests"].append(result_row(test))

    log.info("demand point %s: traced %d batches", point.code, len(batches))
    return {
        "demand_point": {"id": point.id, "code": point.code, "name": point.name},
        "from": isoformat_utc(start),
        "to": isoformat_utc(end),
        "batches": list(batches.values()),
    }


def _batch(batch, incident_id, drill, supplier):
    return {
        "id": batch.id,
        "supplier": {
            "id": supplier.id,
            "code": supplier.code,
            "name": supplier.name,
            # TODO: the stored live colour, also in a drill's trace, where the drill's own
            # colour (a supplier it suspended is red there) would be the one to show.
            "risk_colour": supplier.risk_colour,
        },
        "meal": batch.meal,
        "meals": batch.meals,
        "dishes": list(batch.dishes or []),
        "incident": incident_id,
        "drill": bool(drill),
        "cooked_at": isoformat_utc(batch.cooked_at),
        "left_at": isoformat_utc(batch.left_at),
        "delivered_at": isoformat_utc(batch.delivered_at),
        "dispatch_temp_c": batch.dispatch_temp_c,
        "arrival_temp_c": batch.arrival_temp_c,
        "status": batch.status,
        "flag": batch.flag,
        "samples": [],
        "tests": [],
    }


def _sample(sample, held):
    return {
        "id": sample.id,
        "dish": sample.dish,
        "grams": sample.grams,
        "kept_at": sample.kept_at,
        "retained_at": isoformat_utc(sample.retained_at),
        "keep_until": isoformat_utc(sample.keep_until),
        "discarded_at": isoformat_utc(sample.discarded_at),
        "held": held,
        "tests": [],
    }


def trace_samples(trace):
    """Every sample of a trace, batch by batch."""
    return [sample for batch in trace["batches"] for sample in batch["samples"]]


def attach_trace(incident, point, at):
    """Attach to a suspected-poisoning incident the trace of what reached `point` in the
    plan's `poisoning_trace_hours` before `at`, and hold every sample in it not yet
    discarded. Returns the holds made.

    A real incident traces real batches only, a drill incident its own drill run's: a
    drill's food was never eaten, and a drill must not keep a real sample past its time.
    """
    hours = (incident.plan.settings or {}).get("poisoning_trace_hours", POISONING_TRACE_HOURS)
    from app.drills.models import DrillRun

    run = db.session.get(DrillRun, incident.drill_run_id) if incident.drill_run_id else None
    # A delivery may be stamped up to FUTURE_LEEWAY ahead of the report's clock (clocks
    # differ): it reached the point all the same.
    trace = trace_demand_point(
        point, at - timedelta(hours=hours), at + FUTURE_LEEWAY, drill_run=run
    )

    keep = [s for s in trace_samples(trace) if s["discarded_at"] is None]
    reason = f"suspected poisoning at {point.name}: incident {incident.id}"
    ids = [s["id"] for s in keep]
    samples = db.session.scalars(select(RetainedSample).where(RetainedSample.id.in_(ids))).all()
    holds = hold_samples(incident, samples, reason, at) if samples else []
    for sample in keep:
        sample["held"] = True
    trace["hours"] = hours
    incident.trace = trace

    suppliers = {b["supplier"]["id"] for b in trace["batches"]}
    record(
        incident,
        "trace_attached",
        f"{point.name}: {len(trace['batches'])} batches from {len(suppliers)} suppliers in "
        f"the last {hours} h, {len(holds)} samples held",
        at,
    )
    log.info("incident %s: trace of %s attached, %d samples held", incident.id, point.code,
             len(holds))  # fmt: skip
    return holds
